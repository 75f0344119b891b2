//! Explain's input model: the request given on the command line (method, path, host, headers,
//! peer address, route name and route metadata) and the clock, checked as they are read.

use std::time::{SystemTime, UNIX_EPOCH};

use jwt_guard::authz::address::parse_address;
use jwt_guard::request::{MetadataMember, ROUTE_RULE_MEMBER, route_binding};

use crate::args::Args;
use crate::envoy_headers;
use crate::report::Failure;

/// The request as given on the command line.
pub struct Input {
    pub method: String,
    pub path: String,
    pub host: String,
    pub headers: Vec<(String, String)>,
    pub peer: Option<String>,
    pub route_name: Option<String>,
    /// The rule the route binds (see [`route_binding`]); `None`: no binding.
    pub route_rule: Option<Vec<u8>>,
    pub now: u64,
}

impl Input {
    pub fn from_args(args: &Args) -> Result<Input, Failure> {
        let path = args
            .one("path")
            .ok_or_else(|| args.usage("--path is missing"))?
            .to_string();
        let mut headers = Vec::new();
        for header in args.all("header") {
            let Some((name, value)) = header.split_once(':') else {
                return Err(args.usage(format!(
                    "--header {:?}: write it as 'NAME: VALUE'",
                    shorten(header)
                )));
            };
            let name = name.trim();
            if name.is_empty()
                || name
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            {
                return Err(args.usage(format!("--header: {name:?} is not a header name")));
            }
            headers.push((
                name.to_ascii_lowercase(),
                value.trim_matches([' ', '\t']).to_string(),
            ));
        }
        let peer = args.one("peer").map(str::to_string);
        if let Some(peer) = &peer
            && parse_address(peer).is_none()
        {
            return Err(args.usage(format!(
                "--peer {peer:?} is not an address (10.1.2.3, 10.1.2.3:5000, ::1 or [::1]:5000)"
            )));
        }
        let now = match args.number::<u64>("now")? {
            Some(now) => now,
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_err(|_| Failure::input("the system clock is before 1970: give --now"))?
                .as_secs(),
        };
        Ok(Input {
            method: args.one("method").unwrap_or("GET").to_string(),
            path,
            host: args.one("host").unwrap_or("localhost").to_string(),
            headers,
            peer,
            route_name: args.one("route-name").map(str::to_string),
            route_rule: route_rule(args)?,
            now,
        })
    }

    /// The header map as Envoy hands it to the filter: pseudo-headers first, names lower-case,
    /// the repeated lines of an inline header joined with `,` into the first one's place.
    pub fn headers(&self) -> Vec<(String, Vec<u8>)> {
        let mut headers = vec![
            (":authority".to_string(), self.host.clone().into_bytes()),
            (":path".to_string(), self.path.clone().into_bytes()),
            (":method".to_string(), self.method.clone().into_bytes()),
            (":scheme".to_string(), b"http".to_vec()),
        ];
        for (name, value) in &self.headers {
            envoy_headers::add(&mut headers, name, value.as_bytes());
        }
        headers
    }
}

/// `--route-rule NAME` (a namespace with that one member) or `--route-metadata JSON` (the whole
/// namespace), read as the filter reads the route's metadata.
fn route_rule(args: &Args) -> Result<Option<Vec<u8>>, Failure> {
    match (args.one("route-rule"), args.one("route-metadata")) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(args.usage("give --route-rule or --route-metadata, not both")),
        (Some(name), None) => Ok(route_binding(Some(&[(
            ROUTE_RULE_MEMBER,
            Some(name.as_bytes()),
        )]))
        .map(<[u8]>::to_vec)),
        (None, Some(json)) => {
            let Ok(serde_json::Value::Object(namespace)) = serde_json::from_str(json) else {
                return Err(args.usage(format!(
                    "--route-metadata {:?}: give the route's filter_metadata.jwt_guard as a JSON object, e.g. '{{\"rule\": \"admin\"}}'",
                    shorten(json)
                )));
            };
            let members: Vec<MetadataMember> = namespace
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str().map(str::as_bytes)))
                .collect();
            Ok(route_binding(Some(&members)).map(<[u8]>::to_vec))
        }
    }
}

/// An argument quoted in an error message, cut short (it may hold a token).
fn shorten(text: &str) -> String {
    match text.char_indices().nth(24) {
        Some((at, _)) => format!("{}…", text.get(..at).unwrap_or_default()),
        None => text.to_string(),
    }
}
