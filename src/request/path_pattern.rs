//! `match.paths` and `match.not_paths` entries, compiled once at configuration: Istio's
//! wildcards (`/a/b`, `/a/*`, `*/b`, `*`) and path templates (`/tenants/{tenant}/{*}/{**}`).
//!
//! A path is compared as Envoy hands it over (after its own normalisation), without the query
//! string, byte for byte: no percent-decoding, no case folding. Matching allocates nothing;
//! a template's captures are found by segment position, computed at configuration.

/// One compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// `*`: every path.
    Any,
    /// `/a/b`: that path only.
    Exact(String),
    /// `/a/*`: every path that starts with `/a/` (the text before the `*`).
    Prefix(String),
    /// `*/b`: every path that ends with `/b` (the text after the `*`).
    Suffix(String),
    Template(Template),
}

/// A path template: segments, the last of which may be `{**}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The pattern as written, for explanations.
    pub text: String,
    segments: Vec<Segment>,
    /// Ends with `{**}`: any number of further segments (none included).
    rest: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`: one non-empty segment, captured.
    Param(String),
    /// `{*}`: one non-empty segment.
    One,
}

const NAME_RULE: &str = "a parameter name is [a-z_][a-z0-9_]*";

impl PathPattern {
    /// Compiles one entry; the error says what is wrong (the caller names the field).
    pub fn parse(text: &str) -> Result<PathPattern, String> {
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        if text.contains(['?', '#']) {
            return Err("a path pattern never holds '?' or '#' (the query is not compared)".into());
        }
        if text.contains(['{', '}']) {
            return Template::parse(text).map(PathPattern::Template);
        }
        match text.matches('*').count() {
            0 if text.starts_with('/') => Ok(PathPattern::Exact(text.into())),
            0 => Err("must start with '/' (or '*')".into()),
            1 if text == "*" => Ok(PathPattern::Any),
            1 if text.starts_with('*') => Ok(PathPattern::Suffix(text[1..].into())),
            1 if text.ends_with('*') && text.starts_with('/') => {
                Ok(PathPattern::Prefix(text[..text.len() - 1].into()))
            }
            1 if text.ends_with('*') => Err("must start with '/' (or '*')".into()),
            _ => Err(
                "'*' may stand only once, as the first or the last character (use {*} or {**} inside a path)"
                    .into(),
            ),
        }
    }

    pub fn matches(&self, path: &[u8]) -> bool {
        match self {
            PathPattern::Any => true,
            PathPattern::Exact(exact) => path == exact.as_bytes(),
            PathPattern::Prefix(prefix) => path.starts_with(prefix.as_bytes()),
            PathPattern::Suffix(suffix) => path.ends_with(suffix.as_bytes()),
            PathPattern::Template(template) => template.matches(path),
        }
    }

    /// The segment position (0 = the first after the leading `/`) that captures `name`.
    pub fn param_position(&self, name: &str) -> Option<usize> {
        match self {
            PathPattern::Template(template) => template
                .segments
                .iter()
                .position(|s| matches!(s, Segment::Param(p) if p == name)),
            _ => None,
        }
    }

    /// The names this pattern captures, in order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        let segments = match self {
            PathPattern::Template(template) => template.segments.as_slice(),
            _ => &[],
        };
        segments.iter().filter_map(|s| match s {
            Segment::Param(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// The pattern as written.
    pub fn text(&self) -> String {
        match self {
            PathPattern::Any => "*".into(),
            PathPattern::Exact(exact) => exact.clone(),
            PathPattern::Prefix(prefix) => format!("{prefix}*"),
            PathPattern::Suffix(suffix) => format!("*{suffix}"),
            PathPattern::Template(template) => template.text.clone(),
        }
    }
}

/// The `position`th segment of `path` (after the leading `/`), when the path has one. Only
/// meaningful for a path the pattern matched.
pub fn path_segment(path: &[u8], position: usize) -> Option<&[u8]> {
    path.strip_prefix(b"/")?.split(|b| *b == b'/').nth(position)
}

impl Template {
    fn parse(text: &str) -> Result<Template, String> {
        let Some(body) = text.strip_prefix('/') else {
            return Err("a template must start with '/'".into());
        };
        if text.contains('*') && !text.contains("{*}") && !text.contains("{**}") {
            return Err("a pattern with '{' may not use the bare '*' forms".into());
        }
        let parts: Vec<&str> = body.split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        let mut rest = false;
        for (index, part) in parts.iter().enumerate() {
            let last = index + 1 == parts.len();
            match *part {
                "{**}" if last => rest = true,
                "{**}" => return Err("{**} may only be the last segment".into()),
                "{*}" => segments.push(Segment::One),
                _ if part.starts_with('{') && part.ends_with('}') => {
                    let name = &part[1..part.len() - 1];
                    if !is_param_name(name) {
                        return Err(format!("{{{name}}}: {NAME_RULE}"));
                    }
                    if segments
                        .iter()
                        .any(|s| matches!(s, Segment::Param(p) if p == name))
                    {
                        return Err(format!("{{{name}}} is captured twice"));
                    }
                    segments.push(Segment::Param(name.into()));
                }
                _ if part.contains(['{', '}', '*']) => {
                    return Err(format!(
                        "segment {part:?}: {{name}}, {{*}} and {{**}} must be a whole segment, and '*' stands only inside them"
                    ));
                }
                _ => segments.push(Segment::Literal((*part).into())),
            }
        }
        Ok(Template {
            text: text.into(),
            segments,
            rest,
        })
    }

    fn matches(&self, path: &[u8]) -> bool {
        let Some(body) = path.strip_prefix(b"/") else {
            return false;
        };
        let mut parts = body.split(|b| *b == b'/');
        for segment in &self.segments {
            let Some(part) = parts.next() else {
                return false;
            };
            let fits = match segment {
                Segment::Literal(literal) => part == literal.as_bytes(),
                Segment::Param(_) | Segment::One => !part.is_empty(),
            };
            if !fits {
                return false;
            }
        }
        // `/a/{**}` takes `/a` too: the rest is zero or more segments.
        self.rest || parts.next().is_none()
    }
}

/// `[a-z_][a-z0-9_]*`: path parameters and issuer placeholders.
pub fn is_param_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fits(pattern: &str, path: &str) -> bool {
        PathPattern::parse(pattern)
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
            .matches(path.as_bytes())
    }

    /// Istio's AuthorizationPolicy `paths` examples (exact, prefix, suffix, presence), and its
    /// path templates (`{*}` one segment, `{**}` the rest).
    #[test]
    fn istio_forms_and_templates() {
        let cases: &[(&str, &str, bool)] = &[
            ("/info", "/info", true),
            ("/info", "/info/", false),
            ("/info", "/Info", false),
            ("/info", "/info2", false),
            ("/test/*", "/test/", true),
            ("/test/*", "/test/a/b", true),
            ("/test/*", "/test", false),
            ("/test*", "/test", true),
            ("/test*", "/testing", true),
            ("*/test", "/a/test", true),
            ("*/test", "/test", true),
            ("*/test", "/a/test/", false),
            ("*.png", "/img/a.png", true),
            ("*", "/", true),
            ("*", "/anything/at/all", true),
            ("/foo/{*}", "/foo/bar", true),
            ("/foo/{*}", "/foo/bar/baz", false),
            ("/foo/{*}", "/foo/", false),
            ("/foo/{*}", "/foo", false),
            ("/foo/{*}/bar", "/foo/x/bar", true),
            ("/foo/{*}/bar", "/foo//bar", false),
            ("/foo/{**}", "/foo", true),
            ("/foo/{**}", "/foo/", true),
            ("/foo/{**}", "/foo/a/b/c", true),
            ("/foo/{**}", "/foobar", false),
            ("/foo/{**}", "/bar/foo", false),
            ("/tenants/{tenant}/orders", "/tenants/acme/orders", true),
            ("/tenants/{tenant}/orders", "/tenants/acme/orders/", false),
            ("/tenants/{tenant}/orders", "/tenants//orders", false),
            ("/tenants/{tenant}/orders", "/Tenants/acme/orders", false),
            ("/tenants/{tenant}/{**}", "/tenants/acme", true),
            ("/tenants/{tenant}/{**}", "/tenants/acme/x/y", true),
            ("/tenants/{tenant}/{**}", "/tenants/", false),
            ("/tenants/{tenant}/{**}", "/tenants", false),
            ("/a/{x}/{y}", "/a/1/2", true),
            ("/a/{x}/{y}", "/a/1", false),
            ("/", "/", true),
        ];
        for &(pattern, path, expected) in cases {
            assert_eq!(fits(pattern, path), expected, "{pattern} vs {path}");
        }
        // Not a path Envoy would send, but never a match for a template.
        assert!(!fits("/a/{x}", "a/b"));
        assert!(!fits("/a/{x}", ""));
        // Bytes, not text: a non-UTF-8 segment is still a segment.
        assert!(
            PathPattern::parse("/t/{tenant}")
                .unwrap()
                .matches(b"/t/\xff")
        );
    }

    #[test]
    fn refused_patterns_say_why() {
        for bad in [
            "",
            "info",
            "info*",
            "/a/*/b",
            "*/a*",
            "**",
            "/a?b",
            "/a#b",
            "/a/{X}",
            "/a/{1x}",
            "/a/{}",
            "/a/{x}/{x}",
            "/a/{**}/b",
            "/a/x{y}",
            "/a/{y}z",
            "/a/{y",
            "/a/{x}/*",
            "*/{x}",
            "/a/{x}/b*",
        ] {
            assert!(PathPattern::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn captures_by_position() {
        let pattern = PathPattern::parse("/tenants/{tenant}/users/{user}/{**}").unwrap();
        assert_eq!(pattern.param_position("tenant"), Some(1));
        assert_eq!(pattern.param_position("user"), Some(3));
        assert_eq!(pattern.param_position("other"), None);
        assert_eq!(
            pattern.param_names().collect::<Vec<_>>(),
            ["tenant", "user"]
        );
        let path = b"/tenants/acme/users/u1/x/y";
        assert!(pattern.matches(path));
        assert_eq!(path_segment(path, 1), Some(&b"acme"[..]));
        assert_eq!(path_segment(path, 3), Some(&b"u1"[..]));
        assert_eq!(
            PathPattern::parse("/a/*").unwrap().param_position("a"),
            None
        );
        for text in ["*", "/a", "/a/*", "*/b", "/t/{t}/{*}/{**}"] {
            assert_eq!(PathPattern::parse(text).unwrap().text(), text);
        }
    }
}
