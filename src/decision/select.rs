//! Which rule judges a request: the one its route's metadata binds, or the first whose `match`
//! fits its method, path, host and route name.

use crate::config::{Config, Matcher, PathMatch, RuleAction};
use crate::request::{Request, Selection};
/// The route's metadata binds a rule by name, whatever the order and `match`; otherwise the
/// first rule whose `match` fits.
pub fn select_rule(config: &Config, request: &Request<'_>) -> Selection {
    if let Some(bound) = request.route_rule {
        return config
            .rules
            .iter()
            .position(|rule| {
                rule.action == RuleAction::Allow
                    && rule.name.as_deref().map(str::as_bytes) == Some(bound)
            })
            .map_or(Selection::UnknownRouteRule, Selection::Rule);
    }
    let target = Target::of(request);
    // When rules match on hosts, a host that is not a plain name or address matches none of
    // them: Envoy forwards `a,b` (its join of two `Host` lines; RFC 9112 §3.2 says 400),
    // `user@admin.example.com` or `admin%2eexample.com`, and an upstream that builds a URL
    // from it may well see `admin.example.com` where a rule saw something else.
    if config.needs_host && !is_plain_host(target.host) {
        return Selection::NoRule;
    }
    first_allow_rule(config, &target, 0).map_or(Selection::NoRule, Selection::Rule)
}

/// The first allow rule from index `from` on whose `match` fits (deny rules are never
/// selected).
fn first_allow_rule(config: &Config, target: &Target<'_>, from: usize) -> Option<usize> {
    config
        .rules
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, rule)| {
            rule.action == RuleAction::Allow
                && rule.matcher.as_ref().is_some_and(|m| m.matches(target))
        })
        .map(|(index, _)| index)
}

/// The allow rule a `fall_through` from rule `after` tries: the next one whose `match` fits.
pub fn next_allow_rule(config: &Config, request: &Request<'_>, after: usize) -> Option<usize> {
    if config.needs_host && !is_plain_host(request.host()) {
        return None;
    }
    first_allow_rule(config, &Target::of(request), after + 1)
}

/// Whether a deny rule applies: its `match` fits (no `match`: every request). A host that is
/// not a plain name fits no `hosts` list but does not stop a deny rule without one.
pub fn deny_rule_applies(matcher: Option<&Matcher>, request: &Request<'_>) -> bool {
    let Some(matcher) = matcher else {
        return true;
    };
    let target = Target::of(request);
    // A host that is not a plain name (see `select_rule`) could be the listed one to an
    // upstream: a deny rule that names hosts applies to it when the rest fits (fail closed).
    matcher.matches(&target)
        || (!matcher.hosts.is_empty()
            && !is_plain_host(target.host)
            && matcher.mismatches(request) == [MatchPart::Host])
}

/// The parts of a request that rules match on, read from the headers once per request.
struct Target<'r> {
    method: &'r [u8],
    path: &'r [u8],
    host: &'r [u8],
    route_name: Option<&'r str>,
}

impl<'r> Target<'r> {
    fn of(request: &Request<'r>) -> Target<'r> {
        Target {
            method: request.method(),
            path: request.path(),
            host: request.host(),
            route_name: request.route_name,
        }
    }
}

/// One part of a rule's `match`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchPart {
    Path,
    Method,
    Host,
    RouteName,
    /// The path is one of `not_paths`.
    NotPath,
    /// The method is one of `not_methods`.
    NotMethod,
    /// The host is one of `not_hosts`.
    NotHost,
}

impl Matcher {
    fn matches(&self, target: &Target<'_>) -> bool {
        self.fits_path(target)
            && self.fits_method(target)
            && self.fits_host(target)
            && self.fits_route_name(target)
            && self.fits_not_path(target)
            && self.fits_not_method(target)
            && self.fits_not_host(target)
    }

    /// The parts of this `match` that the request does not fit, in order (none: it matches).
    /// Only for explaining a decision; `decide` never calls it.
    pub fn mismatches(&self, request: &Request<'_>) -> Vec<MatchPart> {
        let target = Target::of(request);
        [
            (MatchPart::Path, self.fits_path(&target)),
            (MatchPart::Method, self.fits_method(&target)),
            (MatchPart::Host, self.fits_host(&target)),
            (MatchPart::RouteName, self.fits_route_name(&target)),
            (MatchPart::NotPath, self.fits_not_path(&target)),
            (MatchPart::NotMethod, self.fits_not_method(&target)),
            (MatchPart::NotHost, self.fits_not_host(&target)),
        ]
        .into_iter()
        .filter_map(|(part, fits)| (!fits).then_some(part))
        .collect()
    }

    fn fits_path(&self, target: &Target<'_>) -> bool {
        match &self.path {
            PathMatch::Any => true,
            PathMatch::Prefix(prefix) => target.path.starts_with(prefix.as_bytes()),
            PathMatch::Exact(path) => target.path == path.as_bytes(),
            PathMatch::Patterns(patterns) => patterns.iter().any(|p| p.matches(target.path)),
        }
    }

    /// The first of `paths` that the request's path fits: the one whose captures `bind` reads.
    pub fn matching_path_pattern(&self, request: &Request<'_>) -> Option<usize> {
        let PathMatch::Patterns(patterns) = &self.path else {
            return None;
        };
        let path = request.path();
        patterns.iter().position(|p| p.matches(path))
    }

    fn fits_method(&self, target: &Target<'_>) -> bool {
        self.methods.is_empty() || self.methods.iter().any(|m| m.as_bytes() == target.method)
    }

    fn fits_host(&self, target: &Target<'_>) -> bool {
        self.hosts.is_empty()
            || self
                .hosts
                .iter()
                .any(|pattern| host_matches(pattern, target.host))
    }

    fn fits_not_path(&self, target: &Target<'_>) -> bool {
        !self.not_paths.iter().any(|p| p.matches(target.path))
    }

    fn fits_not_method(&self, target: &Target<'_>) -> bool {
        !self
            .not_methods
            .iter()
            .any(|m| m.as_bytes() == target.method)
    }

    fn fits_not_host(&self, target: &Target<'_>) -> bool {
        !self
            .not_hosts
            .iter()
            .any(|pattern| host_matches(pattern, target.host))
    }

    fn fits_route_name(&self, target: &Target<'_>) -> bool {
        self.route_name
            .as_deref()
            .is_none_or(|name| target.route_name == Some(name))
    }
}

/// Letters, digits, `-`, `.` and `_` (a DNS name), or `:` inside an IPv6 literal; nothing
/// that a URL parser could read as userinfo, a list, an escape or a path.
pub(super) fn is_plain_host(host: &[u8]) -> bool {
    host.iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'))
}

/// `pattern` is lower-case (compiled so); the host is compared without regard to case.
pub(super) fn host_matches(pattern: &str, host: &[u8]) -> bool {
    let pattern = pattern.as_bytes();
    match pattern.strip_prefix(b"*") {
        Some(suffix) => {
            host.len() > suffix.len()
                && host
                    .get(host.len() - suffix.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
        }
        None => pattern.eq_ignore_ascii_case(host),
    }
}
