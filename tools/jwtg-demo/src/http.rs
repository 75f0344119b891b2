//! Just enough HTTP/1.1 for the demo's services and its client: one message head, then a body
//! framed by `Content-Length`, by chunks, or (responses only) by the end of the connection.
//! Header values are read as text (bytes that are not UTF-8 become U+FFFD).

use std::io::{self, BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Larger heads are refused (Envoy's own default limit is 60 KiB).
pub const MAX_HEAD: usize = 256 * 1024;
/// Larger bodies are refused.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// A request or response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// `GET /x HTTP/1.1` or `HTTP/1.1 200 OK`.
    pub start: String,
    /// Names as sent, values without surrounding white space, in order.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of a header (names compared without case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether any value of a comma-separated header holds `token` (`Connection: close`).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

pub fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// One line without its CRLF (or LF); `None` at the end of the stream before any byte.
fn read_line<R: BufRead>(r: &mut R, limit: usize) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = r.take(limit as u64 + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if n > limit {
        return Err(invalid("line too long"));
    }
    if line.pop() != Some(b'\n') {
        return Err(invalid("connection closed inside a line"));
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(line))
}

/// Reads one message head. `Ok(None)` when the peer closed the connection between messages.
pub fn read_head<R: BufRead>(r: &mut R) -> io::Result<Option<Head>> {
    let mut lines: Vec<String> = Vec::new();
    let mut total = 0;
    loop {
        let Some(line) = read_line(r, MAX_HEAD - total)? else {
            if lines.is_empty() {
                return Ok(None);
            }
            return Err(invalid("connection closed inside a message head"));
        };
        total += line.len() + 2;
        if total > MAX_HEAD {
            return Err(invalid("message head too large"));
        }
        if line.is_empty() {
            if lines.is_empty() {
                continue; // RFC 9112 §2.2: ignore empty lines before a request line
            }
            break;
        }
        lines.push(String::from_utf8_lossy(&line).into_owned());
    }
    let mut lines = lines.into_iter();
    let start = lines.next().unwrap_or_default();
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("header line without a colon: {line:?}")))?;
        if name.is_empty() || name.trim() != name {
            return Err(invalid(format!("bad header name: {name:?}")));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(Some(Head { start, headers }))
}

/// How a message's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

fn content_length(head: &Head) -> io::Result<Option<usize>> {
    let mut found: Option<usize> = None;
    for (_, v) in head
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        let n: usize = v
            .parse()
            .map_err(|_| invalid(format!("bad Content-Length: {v:?}")))?;
        if found.is_some_and(|f| f != n) {
            return Err(invalid("two different Content-Length values"));
        }
        found = Some(n);
    }
    match found {
        Some(n) if n > MAX_BODY => Err(invalid(format!("body of {n} bytes is too large"))),
        other => Ok(other),
    }
}

/// A request's body framing (a request without either header has no body).
pub fn request_framing(head: &Head) -> io::Result<Framing> {
    if head.has_token("transfer-encoding", "chunked") {
        return Ok(Framing::Chunked);
    }
    Ok(content_length(head)?.map_or(Framing::None, Framing::Length))
}

/// A response's body framing, given the request's method and the response's status.
pub fn response_framing(head: &Head, method: &str, status: u16) -> io::Result<Framing> {
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304
    {
        return Ok(Framing::None);
    }
    if head.has_token("transfer-encoding", "chunked") {
        return Ok(Framing::Chunked);
    }
    Ok(content_length(head)?.map_or(Framing::UntilClose, Framing::Length))
}

pub fn read_body<R: BufRead>(r: &mut R, framing: Framing) -> io::Result<Vec<u8>> {
    match framing {
        Framing::None => Ok(Vec::new()),
        Framing::Length(n) => {
            let mut body = vec![0; n];
            r.read_exact(&mut body)?;
            Ok(body)
        }
        Framing::UntilClose => {
            let mut body = Vec::new();
            r.take(MAX_BODY as u64 + 1).read_to_end(&mut body)?;
            if body.len() > MAX_BODY {
                return Err(invalid("body too large"));
            }
            Ok(body)
        }
        Framing::Chunked => read_chunked(r),
    }
}

fn read_chunked<R: BufRead>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line =
            read_line(r, 1024)?.ok_or_else(|| invalid("connection closed before a chunk"))?;
        let line = String::from_utf8_lossy(&line);
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| invalid(format!("bad chunk size: {size:?}")))?;
        if size == 0 {
            // Trailer fields, then the empty line.
            while read_line(r, MAX_HEAD)?.is_some_and(|l| !l.is_empty()) {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err(invalid("body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        if let Some(chunk) = body.get_mut(start..) {
            r.read_exact(chunk)?;
        }
        let end = read_line(r, 2)?;
        if end.as_deref() != Some(b"".as_slice()) {
            return Err(invalid("chunk not followed by CRLF"));
        }
    }
}

/// The reason phrase of the statuses the services send.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        _ => "",
    }
}

/// Writes a complete response; `head_only` leaves the body out (the answer to a `HEAD`).
pub fn write_response<W: Write>(
    w: &mut W,
    status: u16,
    content_type: &str,
    body: &[u8],
    head_only: bool,
    close: bool,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n",
        reason(status),
        body.len()
    );
    if close {
        out.push_str("connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(body);
    }
    w.write_all(&bytes)?;
    w.flush()
}

/// A request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// What came back, and the two ends of the connection it came on.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub local: SocketAddr,
    pub peer: SocketAddr,
}

/// The bytes of a request to `authority`: `Host` unless the request has one, `Content-Length`
/// with a body, and `Connection: close` (one request per connection).
pub fn encode_request(authority: &str, req: &Request) -> Vec<u8> {
    let mut out = format!("{} {} HTTP/1.1\r\n", req.method, req.path);
    if !req
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("host"))
    {
        out.push_str(&format!("Host: {authority}\r\n"));
    }
    for (k, v) in &req.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(body) = &req.body {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    if let Some(body) = &req.body {
        bytes.extend_from_slice(body);
    }
    bytes
}

fn connect(authority: &str, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{authority}: no address"));
    for addr in authority.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(io::Error::new(last.kind(), format!("{authority}: {last}")))
}

/// Sends one request on a new connection to `authority` (`host:port`) and reads the answer.
pub fn send(authority: &str, req: &Request, timeout: Duration) -> io::Result<Answer> {
    let stream = connect(authority, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let (local, peer) = (stream.local_addr()?, stream.peer_addr()?);
    let mut writer = stream.try_clone()?;
    writer.write_all(&encode_request(authority, req))?;
    writer.flush()?;
    let mut reader = io::BufReader::new(stream);
    let head =
        read_head(&mut reader)?.ok_or_else(|| invalid("connection closed before an answer"))?;
    let status = parse_status(&head.start)?;
    let body = read_body(&mut reader, response_framing(&head, &req.method, status)?)?;
    Ok(Answer {
        status,
        headers: head.headers,
        body,
        local,
        peer,
    })
}

/// The status code of `HTTP/1.1 200 OK`.
pub fn parse_status(start: &str) -> io::Result<u16> {
    let mut parts = start.splitn(3, ' ');
    match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") && code.len() == 3 => code
            .parse()
            .map_err(|_| invalid(format!("bad status line: {start:?}"))),
        _ => Err(invalid(format!("bad status line: {start:?}"))),
    }
}

/// `http://host:port/path` → (`host:port`, `/path`). Only plain `http`, the port required.
pub fn split_url(url: &str) -> io::Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid(format!("not an http:// URL: {url}")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if !authority.contains(':') {
        return Err(invalid(format!("the URL needs a port: {url}")));
    }
    Ok((authority.to_string(), path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn head(text: &str) -> Head {
        read_head(&mut Cursor::new(text.as_bytes().to_vec()))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_head_is_read_up_to_the_empty_line() {
        let mut r = Cursor::new(
            b"\r\nGET /x?a=1 HTTP/1.1\r\nHost: e\r\nX-A:  1 \r\nx-a: 2\r\n\r\nrest".to_vec(),
        );
        let h = read_head(&mut r).unwrap().unwrap();
        assert_eq!(h.start, "GET /x?a=1 HTTP/1.1");
        assert_eq!(
            h.headers,
            vec![
                ("Host".into(), "e".into()),
                ("X-A".into(), "1".into()),
                ("x-a".into(), "2".into())
            ]
        );
        assert_eq!(h.get("x-a"), Some("1"));
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "rest");
    }

    #[test]
    fn end_of_stream_between_messages_is_none_inside_one_an_error() {
        assert_eq!(read_head(&mut Cursor::new(Vec::new())).unwrap(), None);
        assert!(read_head(&mut Cursor::new(b"GET / HTTP/1.1\r\nHost: e\r\n".to_vec())).is_err());
        assert!(
            read_head(&mut Cursor::new(
                b"GET / HTTP/1.1\r\nno colon\r\n\r\n".to_vec()
            ))
            .is_err()
        );
        assert!(
            read_head(&mut Cursor::new(
                b"GET / HTTP/1.1\r\n x: y\r\n\r\n".to_vec()
            ))
            .is_err()
        );
        let huge = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(read_head(&mut Cursor::new(huge.into_bytes())).is_err());
    }

    #[test]
    fn bodies_by_length_chunks_or_close() {
        let h = head("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(request_framing(&h).unwrap(), Framing::Length(3));
        assert_eq!(
            read_body(&mut Cursor::new(b"abcdef".to_vec()), Framing::Length(3)).unwrap(),
            b"abc"
        );
        let h = head("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(request_framing(&h).unwrap(), Framing::Chunked);
        let chunked = b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\nnext".to_vec();
        let mut r = Cursor::new(chunked);
        assert_eq!(read_body(&mut r, Framing::Chunked).unwrap(), b"abcde");
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "next");
        assert!(
            read_body(
                &mut Cursor::new(b"3\r\nabcX\r\n0\r\n\r\n".to_vec()),
                Framing::Chunked
            )
            .is_err()
        );
        assert!(read_body(&mut Cursor::new(b"zz\r\n".to_vec()), Framing::Chunked).is_err());
        assert_eq!(
            request_framing(&head("GET / HTTP/1.1\r\n\r\n")).unwrap(),
            Framing::None
        );
        let r = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(
            response_framing(&r, "GET", 200).unwrap(),
            Framing::UntilClose
        );
        assert_eq!(response_framing(&r, "HEAD", 200).unwrap(), Framing::None);
        assert_eq!(response_framing(&r, "GET", 204).unwrap(), Framing::None);
        let two = head("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n");
        assert!(request_framing(&two).is_err());
        let big = head(&format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        ));
        assert!(request_framing(&big).is_err());
    }

    #[test]
    fn requests_are_encoded_with_host_length_and_close() {
        let req = Request {
            method: "POST".into(),
            path: "/orders".into(),
            headers: vec![("Authorization".into(), "Bearer t".into())],
            body: Some(b"{}".to_vec()),
        };
        assert_eq!(
            String::from_utf8(encode_request("envoy:10000", &req)).unwrap(),
            "POST /orders HTTP/1.1\r\nHost: envoy:10000\r\nAuthorization: Bearer t\r\n\
             Content-Length: 2\r\nConnection: close\r\n\r\n{}"
        );
        let own_host = Request {
            method: "GET".into(),
            path: "/".into(),
            headers: vec![("host".into(), "api".into())],
            body: None,
        };
        assert_eq!(
            String::from_utf8(encode_request("envoy:10000", &own_host)).unwrap(),
            "GET / HTTP/1.1\r\nhost: api\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn status_lines_and_urls() {
        assert_eq!(parse_status("HTTP/1.1 401 Unauthorized").unwrap(), 401);
        assert_eq!(parse_status("HTTP/1.0 200").unwrap(), 200);
        assert!(parse_status("HTTP/1.1 20 OK").is_err());
        assert!(parse_status("SSH-2.0").is_err());
        assert_eq!(
            split_url("http://127.0.0.1:9901/ready").unwrap(),
            ("127.0.0.1:9901".into(), "/ready".into())
        );
        assert_eq!(
            split_url("http://envoy:10000").unwrap(),
            ("envoy:10000".into(), "/".into())
        );
        assert!(split_url("https://envoy:10000/").is_err());
        assert!(split_url("http://envoy/").is_err());
    }
}
