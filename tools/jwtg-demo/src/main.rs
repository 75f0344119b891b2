//! jwtg-demo: the services around Envoy in jwt-guard's Docker Compose demo, as one small
//! binary (a `FROM scratch` image with it is a few MB; see `make images`).
//!
//! ```text
//! jwtg-demo echo   [--listen 127.0.0.1:10001]
//!     the upstream: answers every request 200 with the JSON {"method", "path", "headers"} it
//!     received (header names lower-case, repeated headers joined with ", ", cookies with "; "),
//!     as scripts/echo_upstream.py does, and prints that JSON as one line per request
//! jwtg-demo jwks   --file PATH [--path /jwks.json] [--listen 127.0.0.1:10002]
//!     the identity provider's key set: GET PATH answers the file (read again on every
//!     request), any other path 404; one line per request
//! jwtg-demo client [--target envoy:10000] < requests.json > answers.json
//!     sends each request of a JSON array [{"method", "path", "headers": [[name, value]],
//!     "body"}] on its own connection and prints a JSON array of answers {"status",
//!     "headers": [[name, value]], "body", "local", "peer"} (or {"error"}): local is this
//!     client's address as the server saw it
//! jwtg-demo get    URL
//!     GET http://host:port/path, prints the body; exit 0 on 2xx, 1 on other statuses, 2 when
//!     there is no answer (health checks, Envoy's admin /ready and /stats)
//! jwtg-demo idle
//!     waits for ever: a container to run `client` or `get` in with `docker exec`
//! ```

mod http;

use std::io::{self, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::http::{Head, Request, invalid};

const USAGE: &str = "usage:
  jwtg-demo echo   [--listen 127.0.0.1:10001]
  jwtg-demo jwks   --file PATH [--path /jwks.json] [--listen 127.0.0.1:10002]
  jwtg-demo client [--target envoy:10000] [--timeout-ms 10000]  < requests.json
  jwtg-demo get    URL
  jwtg-demo idle";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("jwtg-demo: {e}");
            ExitCode::from(2)
        }
    }
}

/// `--name value` options after the subcommand; anything else is an error.
fn options(args: &[String], known: &[&str]) -> io::Result<Map<String, Value>> {
    let mut out = Map::new();
    let mut it = args.iter();
    while let Some(name) = it.next() {
        let key = name
            .strip_prefix("--")
            .filter(|k| known.contains(k))
            .ok_or_else(|| invalid(format!("unknown argument {name:?}\n{USAGE}")))?;
        let value = it
            .next()
            .ok_or_else(|| invalid(format!("{name} needs a value")))?;
        out.insert(key.to_string(), Value::String(value.clone()));
    }
    Ok(out)
}

fn opt<'a>(opts: &'a Map<String, Value>, name: &str, default: &'a str) -> &'a str {
    opts.get(name).and_then(Value::as_str).unwrap_or(default)
}

fn run(args: &[String]) -> io::Result<ExitCode> {
    let (cmd, rest) = args
        .split_first()
        .ok_or_else(|| invalid(USAGE.to_string()))?;
    match cmd.as_str() {
        "echo" => {
            let o = options(rest, &["listen"])?;
            serve(opt(&o, "listen", "127.0.0.1:10001"), "echo", Arc::new(echo))?;
        }
        "jwks" => {
            let o = options(rest, &["listen", "file", "path"])?;
            let file = o
                .get("file")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("jwks needs --file\n{USAGE}")))?
                .to_string();
            // Refuse to start with a file that is not there or not JSON: a typo in a volume
            // mount should fail the container, not serve 500s.
            check_json_file(&file)?;
            let path = opt(&o, "path", "/jwks.json").to_string();
            let handler = move |req: &Incoming| jwks(req, &path, &file);
            serve(
                opt(&o, "listen", "127.0.0.1:10002"),
                "jwks",
                Arc::new(handler),
            )?;
        }
        "client" => {
            let o = options(rest, &["target", "timeout-ms"])?;
            let timeout: u64 = opt(&o, "timeout-ms", "10000")
                .parse()
                .map_err(|_| invalid("--timeout-ms needs a number"))?;
            let mut input = String::new();
            io::stdin().read_to_string(&mut input)?;
            let answers = client(
                opt(&o, "target", "envoy:10000"),
                &input,
                Duration::from_millis(timeout),
            )?;
            let mut out = io::stdout().lock();
            writeln!(out, "{answers}")?;
        }
        "get" => {
            let [url] = rest else {
                return Err(invalid(format!("get needs one URL\n{USAGE}")));
            };
            return get(url);
        }
        "idle" => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        "-h" | "--help" | "help" => println!("{USAGE}"),
        other => return Err(invalid(format!("unknown command {other:?}\n{USAGE}"))),
    }
    Ok(ExitCode::SUCCESS)
}

// ------------------------------------------------------------------------------ servers

/// A request as a service sees it.
#[derive(Debug)]
struct Incoming {
    method: String,
    target: String,
    head: Head,
}

struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

type Handler = dyn Fn(&Incoming) -> Reply + Send + Sync;

/// Accepts connections for ever; one thread per connection, keep-alive honoured.
fn serve(listen: &str, name: &'static str, handler: Arc<Handler>) -> io::Result<()> {
    let listener = TcpListener::bind(listen)
        .map_err(|e| io::Error::new(e.kind(), format!("bind {listen}: {e}")))?;
    println!("{name}: listening on {}", listener.local_addr()?);
    accept_loop(listener, name, handler);
    Ok(())
}

fn accept_loop(listener: TcpListener, name: &'static str, handler: Arc<Handler>) {
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let handler = Arc::clone(&handler);
                std::thread::spawn(move || {
                    if let Err(e) = connection(stream, handler.as_ref()) {
                        eprintln!("{name}: {e}");
                    }
                });
            }
            Err(e) => eprintln!("{name}: accept: {e}"),
        }
    }
}

fn connection(stream: TcpStream, handler: &Handler) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let head = match http::read_head(&mut reader) {
            Ok(Some(head)) => head,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                http::write_response(
                    &mut writer,
                    400,
                    "text/plain",
                    e.to_string().as_bytes(),
                    false,
                    true,
                )?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let mut parts = head.start.split(' ');
        let (method, target, version) =
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(m), Some(t), Some(v), None) if !m.is_empty() && t.starts_with('/') => {
                    (m.to_string(), t.to_string(), v.to_string())
                }
                _ => {
                    http::write_response(
                        &mut writer,
                        400,
                        "text/plain",
                        b"bad request line",
                        false,
                        true,
                    )?;
                    return Err(invalid(format!("bad request line {:?}", head.start)));
                }
            };
        // Read (and drop) the body, so the next request on the connection starts where it should.
        http::read_body(&mut reader, http::request_framing(&head)?)?;
        let close = head.has_token("connection", "close") || version == "HTTP/1.0";
        let req = Incoming {
            method,
            target,
            head,
        };
        let reply = handler(&req);
        let head_only = req.method.eq_ignore_ascii_case("HEAD");
        http::write_response(
            &mut writer,
            reply.status,
            reply.content_type,
            &reply.body,
            head_only,
            close,
        )?;
        if close {
            return Ok(());
        }
    }
}

/// {"method", "path", "headers"}: names lower-case, repeated headers joined as
/// scripts/echo_upstream.py joins them.
fn echo_payload(req: &Incoming) -> Value {
    let mut headers: Map<String, Value> = Map::new();
    for (k, v) in &req.head.headers {
        let k = k.to_ascii_lowercase();
        let joined = match headers.get(&k).and_then(Value::as_str) {
            Some(prev) => format!("{prev}{}{v}", if k == "cookie" { "; " } else { ", " }),
            None => v.clone(),
        };
        headers.insert(k, Value::String(joined));
    }
    json!({"method": req.method, "path": req.target, "headers": headers})
}

fn echo(req: &Incoming) -> Reply {
    let payload = echo_payload(req).to_string();
    println!("{payload}");
    Reply {
        status: 200,
        content_type: "application/json",
        body: payload.into_bytes(),
    }
}

fn check_json_file(file: &str) -> io::Result<()> {
    let text = std::fs::read(file).map_err(|e| io::Error::new(e.kind(), format!("{file}: {e}")))?;
    serde_json::from_slice::<Value>(&text)
        .map_err(|e| invalid(format!("{file}: not JSON: {e}")))?;
    Ok(())
}

fn jwks(req: &Incoming, path: &str, file: &str) -> Reply {
    let asked = req.target.split('?').next().unwrap_or_default();
    let reply = if !matches!(req.method.as_str(), "GET" | "HEAD") {
        Reply {
            status: 405,
            content_type: "application/json",
            body: b"{\"error\": \"method not allowed\"}".to_vec(),
        }
    } else if asked != path {
        Reply {
            status: 404,
            content_type: "application/json",
            body: b"{\"error\": \"not found\"}".to_vec(),
        }
    } else {
        match std::fs::read(file) {
            Ok(body) => Reply {
                status: 200,
                content_type: "application/json",
                body,
            },
            Err(e) => {
                eprintln!("jwks: {file}: {e}");
                Reply {
                    status: 500,
                    content_type: "application/json",
                    body: b"{\"error\": \"key set unreadable\"}".to_vec(),
                }
            }
        }
    };
    let host = req.head.get("host").unwrap_or("-");
    println!(
        "jwks: {} {} (host {host}) -> {} ({} bytes)",
        req.method,
        req.target,
        reply.status,
        reply.body.len()
    );
    reply
}

// ------------------------------------------------------------------------------ client

fn parse_request(v: &Value) -> io::Result<Request> {
    let obj = v
        .as_object()
        .ok_or_else(|| invalid("each request must be a JSON object"))?;
    let text = |name: &str| obj.get(name).and_then(Value::as_str).map(str::to_string);
    let path = text("path").ok_or_else(|| invalid("a request needs \"path\""))?;
    let mut headers = Vec::new();
    match obj.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Array(pairs)) => {
            for pair in pairs {
                match pair.as_array().map(Vec::as_slice) {
                    Some([Value::String(k), Value::String(v)]) => {
                        headers.push((k.clone(), v.clone()))
                    }
                    _ => return Err(invalid(format!("a header must be [name, value]: {pair}"))),
                }
            }
        }
        Some(Value::Object(map)) => {
            for (k, v) in map {
                let v = v
                    .as_str()
                    .ok_or_else(|| invalid(format!("header {k}: the value must be a string")))?;
                headers.push((k.clone(), v.to_string()));
            }
        }
        Some(other) => {
            return Err(invalid(format!(
                "\"headers\" must be a list or an object: {other}"
            )));
        }
    }
    for (k, v) in &headers {
        if k.is_empty()
            || k.bytes().any(|b| b <= b' ' || b == b':')
            || v.bytes().any(|b| b == b'\r' || b == b'\n')
        {
            return Err(invalid(format!("header {k:?} cannot be sent as it is")));
        }
    }
    Ok(Request {
        method: text("method").unwrap_or_else(|| "GET".to_string()),
        path,
        headers,
        body: text("body").map(String::into_bytes),
    })
}

fn answer_json(answer: &http::Answer) -> Value {
    let headers: Vec<Value> = answer
        .headers
        .iter()
        .map(|(k, v)| json!([k.to_ascii_lowercase(), v]))
        .collect();
    json!({
        "status": answer.status,
        "headers": headers,
        "body": String::from_utf8_lossy(&answer.body),
        "local": answer.local.to_string(),
        "peer": answer.peer.to_string(),
    })
}

/// Sends every request of the JSON array `input`; a request that fails is {"error": ...}
/// in its place, and the others are still sent.
fn client(target: &str, input: &str, timeout: Duration) -> io::Result<Value> {
    let input: Value =
        serde_json::from_str(input).map_err(|e| invalid(format!("stdin: not JSON: {e}")))?;
    let list = input
        .as_array()
        .ok_or_else(|| invalid("stdin: a JSON array of requests"))?;
    let requests = list
        .iter()
        .map(parse_request)
        .collect::<io::Result<Vec<_>>>()?;
    let answers = requests
        .iter()
        .map(|req| match http::send(target, req, timeout) {
            Ok(answer) => answer_json(&answer),
            Err(e) => json!({"error": e.to_string()}),
        })
        .collect();
    Ok(Value::Array(answers))
}

fn get(url: &str) -> io::Result<ExitCode> {
    let (authority, path) = http::split_url(url)?;
    let req = Request {
        method: "GET".into(),
        path,
        headers: Vec::new(),
        body: None,
    };
    let answer = match http::send(&authority, &req, Duration::from_secs(5)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("jwtg-demo get {url}: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    io::stdout().lock().write_all(&answer.body)?;
    if (200..300).contains(&answer.status) {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("jwtg-demo get {url}: HTTP {}", answer.status);
        Ok(ExitCode::from(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service on 127.0.0.1, port picked by the system, for the rest of the test process.
    fn start(handler: Arc<Handler>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || accept_loop(listener, "test", handler));
        addr
    }

    fn requests(json: Value) -> String {
        json.to_string()
    }

    #[test]
    fn the_client_and_echo_agree_on_what_was_sent() {
        let addr = start(Arc::new(echo));
        let input = requests(json!([
            {"path": "/orders/42?x=1", "headers": [["X-Forwarded-For", "10.1.2.3"], ["x-forwarded-for", "10.9.9.9"],
                                                  ["Cookie", "a=1"], ["cookie", "b=2"]]},
            {"method": "POST", "path": "/orders", "headers": {"content-type": "application/json"}, "body": "{\"n\": 1}"},
            {"method": "HEAD", "path": "/h"},
        ]));
        let answers = client(&addr, &input, Duration::from_secs(5)).unwrap();
        let answers = answers.as_array().unwrap();
        assert_eq!(answers.len(), 3);
        let first = &answers[0];
        assert_eq!(first["status"], 200);
        assert_eq!(first["peer"], addr.as_str());
        assert!(first["local"].as_str().unwrap().starts_with("127.0.0.1:"));
        let echoed: Value = serde_json::from_str(first["body"].as_str().unwrap()).unwrap();
        assert_eq!(echoed["method"], "GET");
        assert_eq!(echoed["path"], "/orders/42?x=1");
        assert_eq!(echoed["headers"]["x-forwarded-for"], "10.1.2.3, 10.9.9.9");
        assert_eq!(echoed["headers"]["cookie"], "a=1; b=2");
        assert_eq!(echoed["headers"]["host"], addr.as_str());
        assert_eq!(echoed["headers"]["connection"], "close");
        let second: Value = serde_json::from_str(answers[1]["body"].as_str().unwrap()).unwrap();
        assert_eq!(second["method"], "POST");
        assert_eq!(second["headers"]["content-length"], "8");
        assert!(
            answers[1]["headers"]
                .as_array()
                .unwrap()
                .contains(&json!(["content-type", "application/json"]))
        );
        assert_eq!(answers[2]["status"], 200);
        assert_eq!(answers[2]["body"], "");
    }

    #[test]
    fn echo_keeps_a_connection_alive_across_requests() {
        let addr = start(Arc::new(echo));
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream
            .write_all(
                b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n\
                  GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
        assert!(
            out.contains("\"path\":\"/a\"") && out.contains("\"path\":\"/b\""),
            "{out}"
        );
        assert!(out.ends_with('}'), "{out}");
    }

    #[test]
    fn a_bad_request_line_gets_400() {
        let addr = start(Arc::new(echo));
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream.write_all(b"GET\r\n\r\n").unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
    }

    #[test]
    fn jwks_serves_the_file_at_its_path_only_and_reads_it_again_each_time() {
        let dir = std::env::temp_dir().join(format!("jwtg-demo-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("jwks.json");
        std::fs::write(&file, br#"{"keys": []}"#).unwrap();
        let f = file.to_string_lossy().into_owned();
        let addr = start(Arc::new(move |req: &Incoming| jwks(req, "/certs", &f)));
        let one = |method: &str, path: &str| {
            let input = requests(json!([{"method": method, "path": path}]));
            client(&addr, &input, Duration::from_secs(5)).unwrap()[0].clone()
        };
        let ok = one("GET", "/certs?x=1");
        assert_eq!(ok["status"], 200);
        assert_eq!(ok["body"], r#"{"keys": []}"#);
        std::fs::write(&file, br#"{"keys": [{"kid": "new"}]}"#).unwrap();
        assert_eq!(
            one("GET", "/certs")["body"],
            r#"{"keys": [{"kid": "new"}]}"#
        );
        assert_eq!(one("GET", "/other")["status"], 404);
        assert_eq!(one("POST", "/certs")["status"], 405);
        std::fs::remove_file(&file).unwrap();
        assert_eq!(one("GET", "/certs")["status"], 500);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(check_json_file(&file.to_string_lossy()).is_err());
    }

    #[test]
    fn client_input_is_checked_and_a_dead_target_is_an_error_in_place() {
        assert!(client("127.0.0.1:9", "{}", Duration::from_secs(1)).is_err());
        assert!(
            client(
                "127.0.0.1:9",
                r#"[{"method": "GET"}]"#,
                Duration::from_secs(1)
            )
            .is_err()
        );
        assert!(
            client(
                "127.0.0.1:9",
                r#"[{"path": "/", "headers": [["a"]]}]"#,
                Duration::from_secs(1)
            )
            .is_err()
        );
        assert!(
            client(
                "127.0.0.1:9",
                r#"[{"path": "/", "headers": {"a": "b\r\nc: d"}}]"#,
                Duration::from_secs(1)
            )
            .is_err()
        );
        // Port 1 on loopback: nothing listens there (connection refused).
        let answers = client("127.0.0.1:1", r#"[{"path": "/"}]"#, Duration::from_secs(1)).unwrap();
        assert!(
            answers[0]["error"]
                .as_str()
                .unwrap()
                .contains("127.0.0.1:1"),
            "{answers}"
        );
    }

    #[test]
    fn options_are_checked() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(options(&args(&["--listen", "x"]), &["listen"]).is_ok());
        assert!(options(&args(&["--lisen", "x"]), &["listen"]).is_err());
        assert!(options(&args(&["--listen"]), &["listen"]).is_err());
        assert!(run(&args(&["nope"])).is_err());
        assert!(run(&args(&["jwks"])).is_err());
        assert!(run(&args(&["get"])).is_err());
    }
}
