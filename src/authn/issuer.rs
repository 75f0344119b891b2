//! A provider's `issuer`: one fixed text, or a template with `{name}` placeholders for
//! multi-tenant identity providers (`https://login.microsoftonline.com/{tenant}/v2.0`), each
//! placeholder with its allow-list (`issuer_params`).
//!
//! A placeholder matches 1 or more of `A-Z a-z 0-9 - . _`, never `/`. Two placeholders must be
//! separated by a literal holding some other byte (a `/`, say), so a token's `iss` fits a
//! template in at most one way: the values are never a guess, and matching needs no
//! backtracking and no allocation.

use crate::request::path_pattern::is_param_name;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issuer {
    Fixed(String),
    Template(IssuerTemplate),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerTemplate {
    text: String,
    parts: Vec<Part>,
    /// Per placeholder, in the order they appear: its name and allowed values.
    params: Vec<(String, Allowed)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// Index into `params`.
    Param(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// `["*"]`: any value of the placeholder's alphabet (weaker: any tenant of the IdP).
    Any,
    Values(Vec<String>),
}

/// What a configuration error is about: `issuer` or `issuer_params…`, and why.
pub type IssuerError = (String, String);

fn is_value_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}

impl Issuer {
    /// `params`: the provider's `issuer_params` (name, values), required exactly when `text`
    /// has placeholders. (A list, not a map: the `.wasm` has no other use for a map's removal.)
    pub fn parse(
        text: &str,
        params: Option<Vec<(String, Vec<String>)>>,
    ) -> Result<Issuer, IssuerError> {
        let err = |member: &str, why: String| Err((member.to_string(), why));
        if !text.contains(['{', '}']) {
            return match params {
                Some(_) => err(
                    "issuer_params",
                    "the issuer has no {name} placeholder".into(),
                ),
                None => Ok(Issuer::Fixed(text.into())),
            };
        }
        let mut parts = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                if rest.contains('}') {
                    return err("issuer", "a '}' without its '{'".into());
                }
                parts.push(Part::Literal(rest.into()));
                break;
            };
            let (literal, after) = rest.split_at(open);
            if literal.contains('}') {
                return err("issuer", "a '}' without its '{'".into());
            }
            if !literal.is_empty() {
                parts.push(Part::Literal(literal.into()));
            }
            let Some(close) = after.find('}') else {
                return err("issuer", "a '{' without its '}'".into());
            };
            let name = &after[1..close];
            if !is_param_name(name) {
                return err(
                    "issuer",
                    format!("{{{name}}}: a placeholder name is [a-z_][a-z0-9_]*"),
                );
            }
            if names.iter().any(|n| n == name) {
                return err("issuer", format!("{{{name}}} stands twice"));
            }
            // The literal since the previous placeholder must end its value unambiguously.
            if matches!(parts.last(), Some(Part::Param(_))) {
                return err(
                    "issuer",
                    format!("{{{name}}} follows another placeholder directly"),
                );
            }
            if let (Some(Part::Literal(between)), [.., Part::Param(_), _]) =
                (parts.last(), parts.as_slice())
                && between.bytes().all(is_value_byte)
            {
                return err(
                    "issuer",
                    format!(
                        "{{{name}}}: the text {between:?} before it cannot separate two placeholders (values may hold it); put a '/' between them"
                    ),
                );
            }
            parts.push(Part::Param(names.len()));
            names.push(name.into());
            rest = &after[close + 1..];
        }
        let Some(mut given) = params else {
            return err(
                "issuer_params",
                format!(
                    "required: the allowed values of {}",
                    names
                        .iter()
                        .map(|n| format!("{{{n}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        };
        let mut params = Vec::with_capacity(names.len());
        for name in names {
            let at = format!("issuer_params.{name}");
            let Some(found) = given.iter().position(|(n, _)| *n == name) else {
                return err(
                    &at,
                    "missing: every placeholder needs its allow-list".into(),
                );
            };
            let (_, values) = given.swap_remove(found);
            let allowed = match values.as_slice() {
                [] => return err(&at, "must not be empty".into()),
                [any] if any == "*" => Allowed::Any,
                _ => {
                    if let Some((index, bad)) = values
                        .iter()
                        .enumerate()
                        .find(|(_, v)| v.is_empty() || !v.bytes().all(is_value_byte))
                    {
                        return err(
                            &format!("{at}[{index}]"),
                            format!(
                                "{bad:?}: a value is 1 or more of A-Z, a-z, 0-9, '-', '.' and '_' (or [\"*\"] alone for any)"
                            ),
                        );
                    }
                    Allowed::Values(values)
                }
            };
            params.push((name, allowed));
        }
        if let Some((extra, _)) = given.first() {
            return err(
                &format!("issuer_params.{extra}"),
                "the issuer has no such placeholder".into(),
            );
        }
        Ok(Issuer::Template(IssuerTemplate {
            text: text.into(),
            parts,
            params,
        }))
    }

    /// The issuer as configured (a template with its placeholders).
    pub fn as_str(&self) -> &str {
        match self {
            Issuer::Fixed(text) => text,
            Issuer::Template(template) => &template.text,
        }
    }

    pub fn is_template(&self) -> bool {
        matches!(self, Issuer::Template(_))
    }

    /// The token's `iss` is this issuer: equal to the fixed text, or fitting the template with
    /// an allowed value for every placeholder.
    pub fn accepts(&self, iss: Option<&str>) -> bool {
        let Some(iss) = iss else {
            return false;
        };
        match self {
            Issuer::Fixed(text) => iss == text,
            Issuer::Template(template) => template.fit(iss, usize::MAX, true).is_some(),
        }
    }

    /// The token's `iss` has this template's form, whatever the values: the provider to judge
    /// a token no provider accepts (its keys, then `bad_issuer`, rather than another
    /// provider's keys). A fixed issuer never resembles anything.
    pub fn resembles(&self, iss: Option<&str>) -> bool {
        match (self, iss) {
            (Issuer::Template(template), Some(iss)) => {
                template.fit(iss, usize::MAX, false).is_some()
            }
            _ => false,
        }
    }

    /// The value of placeholder `name` in an accepted `iss`.
    pub fn param<'i>(&self, iss: &'i str, name: &str) -> Option<&'i str> {
        let Issuer::Template(template) = self else {
            return None;
        };
        let wanted = template.params.iter().position(|(n, _)| n == name)?;
        template.fit(iss, wanted, true)
    }

    /// Whether `name` is one of the placeholders.
    pub fn has_param(&self, name: &str) -> bool {
        matches!(self, Issuer::Template(t) if t.params.iter().any(|(n, _)| n == name))
    }
}

impl IssuerTemplate {
    /// Matches `iss` against the whole template with allowed values. `Some` of the value of
    /// placeholder `wanted` (or of "" when `wanted` is none of them) when it fits.
    /// `allowed_only: false` ignores the allow-lists.
    fn fit<'i>(&self, iss: &'i str, wanted: usize, allowed_only: bool) -> Option<&'i str> {
        let bytes = iss.as_bytes();
        let mut pos = 0;
        let mut found = "";
        for (index, part) in self.parts.iter().enumerate() {
            match part {
                Part::Literal(literal) => {
                    if !bytes.get(pos..)?.starts_with(literal.as_bytes()) {
                        return None;
                    }
                    pos += literal.len();
                }
                Part::Param(param) => {
                    let run = bytes
                        .get(pos..)?
                        .iter()
                        .take_while(|b| is_value_byte(**b))
                        .count();
                    // The next literal's leading value bytes belong to it, not to the value.
                    let next_keeps = match self.parts.get(index + 1) {
                        Some(Part::Literal(next)) => {
                            next.bytes().take_while(|b| is_value_byte(*b)).count()
                        }
                        _ => 0,
                    };
                    let len = run.checked_sub(next_keeps).filter(|len| *len > 0)?;
                    let value = iss.get(pos..pos + len)?;
                    let (_, allowed) = self.params.get(*param)?;
                    let ok = match allowed {
                        _ if !allowed_only => true,
                        Allowed::Any => true,
                        Allowed::Values(values) => values.iter().any(|v| v == value),
                    };
                    if !ok {
                        return None;
                    }
                    if *param == wanted {
                        found = value;
                    }
                    pos += len;
                }
            }
        }
        (pos == bytes.len()).then_some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Params = Option<Vec<(String, Vec<String>)>>;

    fn params(pairs: &[(&str, &[&str])]) -> Params {
        Some(
            pairs
                .iter()
                .map(|(n, vs)| (n.to_string(), vs.iter().map(|v| v.to_string()).collect()))
                .collect(),
        )
    }

    const ENTRA: &str = "https://login.microsoftonline.com/{tenant}/v2.0";

    #[test]
    fn templates_accept_allowed_values_only() {
        let entra = Issuer::parse(ENTRA, params(&[("tenant", &["t-1", "t.2"])])).unwrap();
        let cases: &[(&str, bool)] = &[
            ("https://login.microsoftonline.com/t-1/v2.0", true),
            ("https://login.microsoftonline.com/t.2/v2.0", true),
            ("https://login.microsoftonline.com/t-3/v2.0", false),
            // Look-alikes: an extra segment, a prefix, a suffix, another case, nothing.
            ("https://login.microsoftonline.com/a/b/v2.0", false),
            ("https://login.microsoftonline.com/t-1/x/v2.0", false),
            ("https://login.microsoftonline.com/t-1/v2.0/", false),
            ("https://login.microsoftonline.com/t-1/v2.00", false),
            ("https://login.microsoftonline.com//v2.0", false),
            ("https://login.microsoftonline.com/T-1/v2.0", false),
            ("https://login.microsoftonline.com.evil/t-1/v2.0", false),
            ("https://login.microsoftonline.com/{tenant}/v2.0", false),
            ("", false),
        ];
        for &(iss, expected) in cases {
            assert_eq!(entra.accepts(Some(iss)), expected, "{iss}");
        }
        assert!(!entra.accepts(None));
        assert_eq!(
            entra.param("https://login.microsoftonline.com/t.2/v2.0", "tenant"),
            Some("t.2")
        );
        assert_eq!(
            entra.param("https://login.microsoftonline.com/t-9/v2.0", "tenant"),
            None
        );
        assert_eq!(entra.as_str(), ENTRA);
        assert!(entra.has_param("tenant") && !entra.has_param("region"));
        assert!(entra.resembles(Some("https://login.microsoftonline.com/t-3/v2.0")));
        assert!(!entra.resembles(Some("https://login.microsoftonline.com/a/b/v2.0")));
        assert!(!Issuer::Fixed("x".into()).resembles(Some("x")));
    }

    #[test]
    fn placeholders_bounded_by_value_bytes_and_any() {
        let auth0 =
            Issuer::parse("https://{tenant}.auth0.com/", params(&[("tenant", &["*"])])).unwrap();
        assert_eq!(
            auth0.param("https://acme.eu.auth0.com/", "tenant"),
            Some("acme.eu")
        );
        assert!(auth0.accepts(Some("https://x.auth0.com/")));
        assert!(!auth0.accepts(Some("https://.auth0.com/")));
        assert!(!auth0.accepts(Some("https://a/b.auth0.com/")));
        assert!(!auth0.accepts(Some("https://a.auth0.com/x")));
        let cognito = Issuer::parse(
            "https://cognito-idp.{region}.amazonaws.com/{pool}",
            params(&[("region", &["eu-west-1"]), ("pool", &["p1", "p2"])]),
        )
        .unwrap();
        let iss = "https://cognito-idp.eu-west-1.amazonaws.com/p2";
        assert!(cognito.accepts(Some(iss)));
        assert_eq!(cognito.param(iss, "region"), Some("eu-west-1"));
        assert_eq!(cognito.param(iss, "pool"), Some("p2"));
        assert!(!cognito.accepts(Some("https://cognito-idp.eu-west-1.amazonaws.com/p3")));
        assert!(!cognito.accepts(Some("https://cognito-idp.us-east-1.amazonaws.com/p1")));
        assert!(!cognito.accepts(Some("https://cognito-idp.eu-west-1.amazonaws.com/p1/x")));
        let fixed = Issuer::parse("https://idp.example.com", None).unwrap();
        assert!(fixed.accepts(Some("https://idp.example.com")));
        assert!(!fixed.accepts(Some("https://idp.example.com/")));
        assert_eq!(fixed.param("https://idp.example.com", "tenant"), None);
    }

    #[test]
    fn refused_templates_name_the_member() {
        let any: &[&str] = &["*"];
        let cases: Vec<(&str, Params, &str)> = vec![
            ("https://a/{t}", None, "issuer_params"),
            ("https://a/", params(&[("t", any)]), "issuer_params"),
            ("https://a/{T}", params(&[("T", any)]), "issuer"),
            ("https://a/{t", params(&[("t", any)]), "issuer"),
            ("https://a/t}", params(&[("t", any)]), "issuer"),
            ("https://a/{t}/{t}", params(&[("t", any)]), "issuer"),
            (
                "https://a/{t}{u}",
                params(&[("t", any), ("u", any)]),
                "issuer",
            ),
            (
                "https://a/{t}.{u}",
                params(&[("t", any), ("u", any)]),
                "issuer",
            ),
            ("https://a/{t}", params(&[("t", &[])]), "issuer_params.t"),
            (
                "https://a/{t}",
                params(&[("t", &["*", "x"])]),
                "issuer_params.t[0]",
            ),
            (
                "https://a/{t}",
                params(&[("t", &["x", "a/b"])]),
                "issuer_params.t[1]",
            ),
            (
                "https://a/{t}",
                params(&[("t", &[""])]),
                "issuer_params.t[0]",
            ),
            ("https://a/{t}", params(&[("u", any)]), "issuer_params.t"),
            (
                "https://a/{t}",
                params(&[("t", any), ("u", any)]),
                "issuer_params.u",
            ),
        ];
        for (text, given, member) in cases {
            match Issuer::parse(text, given) {
                Err((at, _)) => assert_eq!(at, member, "{text}"),
                Ok(_) => panic!("{text} was accepted"),
            }
        }
        assert!(Issuer::parse("https://a/{t}/{u}", params(&[("t", any), ("u", any)])).is_ok());
    }
}
