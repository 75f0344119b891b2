//! `jwt-guard explain CONFIG --path /x ...`: decides one request with the filter's own
//! `decide` (through `decide_traced`, which records each step) and renders what happened.
//!
//! The verdict printed is `decide`'s; the steps only describe how it got there. Signatures are
//! checked in Rust (`PureRustVerifier`): Envoy checks RS*/ES* with BoringSSL when it can, with
//! the same answers (both backends pass the same tests). Nothing here prints the token itself:
//! request header values are not shown, and the token appears as a SHA-256 fingerprint.
//!
//! The command (this module) reads its arguments into an [`input::Input`], compiles the
//! configuration, puts `--jwks` keys in force ([`keys`]), runs `decide_traced` and hands the
//! result ([`explained::Explained`]) to [`render`] for text or JSON. `render` assembles the
//! sections, three of which have modules of their own ([`rule`], [`authn`], [`policy`]).

mod authn;
pub mod bind;
mod explained;
mod input;
mod keys;
mod policy;
mod render;
mod rule;

use jwt_guard::authn::Authenticator;
use jwt_guard::authn::cache::TokenCache;
use jwt_guard::authn::verify::PureRustVerifier;
use jwt_guard::decision::{Decision, decide_traced};
use jwt_guard::request::Request;
use jwt_guard::trace::Step;

use crate::args::{self, Args, Opt};
use crate::compiled::compile;
use crate::report::{Failure, Report, exit};
use crate::source;

use explained::Explained;
use input::Input;

pub const HELP: &str = "\
Usage: jwt-guard explain CONFIG --path PATH [OPTIONS]

Decides one request as the filter would, with the filter's own code, and shows how: the rule
that applies (and the rules skipped before it), where the token was found, the provider that
judged it, its header (alg, kid), the key and signature, each registered-claim check (exp,
nbf, iat, iss, aud, lifetime), each deny rule and policy check (source_ips, bind_ip_claim,
countries, headers, principals, roles, scopes, claims) and each fall_through, then the
decision: status and reason, and for a refusal the response Envoy sends (WWW-Authenticate and
body), for a request let through the headers removed or set before it goes upstream. The token itself is never printed (only its SHA-256 fingerprint).

Options:
  --path PATH            the request's :path, query string included (required)
  --method METHOD        :method (default GET)
  --host HOST            :authority (default localhost)
  --header 'NAME: VALUE' a request header, as Envoy hands it to the filter (repeatable), e.g.
                         --header \"authorization: Bearer $TOKEN\"
  --peer IP              the client address Envoy decided on (source.address), e.g. 10.1.2.3
  --route-name NAME      Envoy's route name (xds.route_name), for rules with match.route_name
  --route-rule NAME      the rule the route's metadata names (filter_metadata.jwt_guard.rule);
                         '' is a binding to an empty name (refused, as in Envoy)
  --route-metadata JSON  the route's whole filter_metadata.jwt_guard, e.g. '{\"rule\": null}':
                         any namespace binds the route, to the name in its one member `rule`,
                         or to no rule (refused) when that is missing, empty, not text, or has
                         other members beside it
  --now UNIX             the clock, in seconds since 1970 (default: now)
  --jwks PROVIDER=FILE   keys for a provider with remote_jwks, as its JWKS URL would serve
                         them (repeatable); without it such a provider has its inline jwks,
                         or none (401 keys_unavailable)
  --index N              which configuration of an Envoy YAML file holding several (1-based)
  --json                 one JSON object instead of text: decision, status, reason, rule,
                         provider, response, upstream changes, outcome and the steps

Repeated --header lines are handed over as Envoy 1.40 hands them to filters: the lines of a
header Envoy keeps inline (authorization, user-agent, x-forwarded-for, …) joined with `,` into
one value, the others (cookie, x-user-sub, …) as separate values.

What Envoy does before the filter is not simulated: give the path as Envoy normalised it, the
client address its original-IP detection decided (--peer), and headers as earlier filters left
them (a geoip filter's country header, say).

Exit codes: 0 the request would go upstream (dry runs included); 3 it would be refused
(401/403); 1 the configuration is invalid (the filter's line on stderr); 2 wrong command line;
4 a file cannot be read or used.
";

const SPEC: &[Opt] = &[
    args::value("path"),
    args::value("method"),
    args::value("host"),
    args::values("header"),
    args::value("peer"),
    args::value("route-name"),
    args::value("route-rule"),
    args::value("route-metadata"),
    args::value("now"),
    args::values("jwks"),
    args::value("index"),
    args::flag("json"),
];

pub fn run(argv: &[String]) -> Result<Report, Failure> {
    let args = Args::parse("explain", argv, SPEC)?;
    if args.help {
        return Ok(Report::ok(HELP.to_string()));
    }
    let config_path = args.single_positional("CONFIG")?;
    let input = Input::from_args(&args)?;
    let found = source::read_one(config_path, args.number::<usize>("index")?)?;
    let config = compile(&found.json).map_err(Failure::InvalidConfig)?;
    let notes = keys::load(&config, &args)?;
    let headers = input.headers();
    let peer = input.peer.clone();
    let peer_address = move || peer.clone();
    let request = Request {
        headers: &headers,
        peer_address: &peer_address,
        // explain sees no TLS connection: a certificate-bound token is judged as without one.
        peer_certificate_digest: &|| None,
        route_name: input.route_name.as_deref(),
        route_rule: input.route_rule.as_deref(),
    };
    let now = input.now;
    let clock = move || Some(now);
    let mut cache = TokenCache::new(0);
    let mut auth = Authenticator {
        verifier: &PureRustVerifier,
        cache: &mut cache,
        clock: &clock,
        judged_by: None,
        replay: &jwt_guard::authn::dpop::MemoryReplayStore::default(),
        presented_with_dpop: false,
        dpop_nonce: None,
    };
    let mut steps: Vec<Step> = Vec::new();
    let verdict = decide_traced(&config, &request, &mut auth, &mut steps);
    let explained = Explained {
        config: &config,
        request: &request,
        input: &input,
        steps: &steps,
        verdict: &verdict,
    };
    let code = match verdict.decision {
        Decision::Allow { .. } => exit::OK,
        Decision::Refuse(_) => exit::REFUSED,
    };
    let stdout = if args.flag("json") {
        let mut text = render::json(&explained, &notes).to_string();
        text.push('\n');
        text
    } else {
        render::text(&explained, &notes)
    };
    Ok(Report {
        code,
        stdout,
        stderr: String::new(),
    })
}
