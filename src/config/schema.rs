//! The JSON contract as users write it: serde structs that refuse unknown fields. Only
//! [`super::compile`] reads them; nothing at run time does.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    /// The JSON Schema's address, for editors (schema/jwt-guard.schema.json); ignored.
    #[serde(rename = "$schema")]
    pub(super) _schema: Option<String>,
    pub(super) realm: Option<String>,
    #[serde(default)]
    pub(super) providers: BTreeMap<String, RawProvider>,
    pub(super) rules: Vec<RawRule>,
    pub(super) roles_claim: Option<String>,
    pub(super) scopes_claim: Option<String>,
    pub(super) client_ip: Option<RawClientIp>,
    pub(super) geo: Option<RawGeo>,
    #[serde(default)]
    pub(super) dry_run: bool,
    #[serde(default, deserialize_with = "whole_number")]
    pub(super) token_cache_size: Option<usize>,
    pub(super) signature_backend: Option<String>,
    pub(super) outcome_in_filter_state: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub(super) issuer: String,
    /// The allowed values of each `{name}` of a templated `issuer`; read by
    /// [`super::provider`] (serde derives cost the `.wasm` path-tracking code).
    pub(super) issuer_params: Option<Value>,
    pub(super) audiences: Option<Vec<String>>,
    pub(super) jwks: Option<Value>,
    pub(super) remote_jwks: Option<RawRemoteJwks>,
    pub(super) from_headers: Option<Vec<RawHeaderLocation>>,
    pub(super) from_params: Option<Vec<String>>,
    pub(super) from_cookies: Option<Vec<String>>,
    #[serde(default, deserialize_with = "whole_number")]
    pub(super) clock_skew_seconds: Option<u64>,
    #[serde(default, deserialize_with = "whole_number")]
    pub(super) max_lifetime_seconds: Option<u64>,
    pub(super) require_expiration: Option<bool>,
    pub(super) forward: Option<bool>,
    pub(super) claim_to_headers: Option<Vec<RawClaimHeader>>,
    pub(super) forward_payload_header: Option<String>,
    pub(super) certificate_binding: Option<RawCertificateBinding>,
    #[serde(default)]
    pub(super) accept_unchecked_bindings: bool,
    /// Read member by member by [`super::dpop`] (its serde derive alone cost the `.wasm` 27 KB of
    /// path-tracking code, for a configuration-time check).
    pub(super) dpop: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCertificateBinding {
    #[serde(default)]
    pub(super) required: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClaimHeader {
    pub(super) claim: String,
    pub(super) header: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRemoteJwks {
    pub(super) cluster: String,
    pub(super) uri: Option<String>,
    #[serde(default, deserialize_with = "whole_number")]
    pub(super) refresh_seconds: Option<u64>,
    #[serde(default, deserialize_with = "whole_number")]
    pub(super) timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "whole_number")]
    pub(super) min_refetch_seconds: Option<u64>,
    #[serde(default, deserialize_with = "whole_number")]
    pub(super) max_stale_seconds: Option<u64>,
    #[serde(default)]
    pub(super) discovery: bool,
    pub(super) discovery_uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeaderLocation {
    pub(super) name: String,
    #[serde(default)]
    pub(super) value_prefix: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub(super) name: Option<String>,
    #[serde(rename = "match")]
    pub(super) matcher: Option<RawMatch>,
    pub(super) provider: Option<String>,
    pub(super) providers: Option<Vec<String>>,
    /// `Option`s so that a deny rule can refuse them even when written `false`.
    pub(super) allow_anonymous: Option<bool>,
    pub(super) disabled: Option<bool>,
    pub(super) dry_run: Option<bool>,
    pub(super) roles: Option<RawAnyAll>,
    pub(super) scopes: Option<RawAnyAll>,
    pub(super) claims: Option<Vec<RawClaim>>,
    pub(super) source_ips: Option<RawAllowDeny>,
    pub(super) countries: Option<RawAllowDeny>,
    pub(super) bind_ip_claim: Option<String>,
    pub(super) action: Option<String>,
    pub(super) fall_through: Option<bool>,
    /// `principals`, `headers` and `refusal` are read member by member by [`super::rule`], as
    /// `dpop` is: serde derives cost the `.wasm` far more than the few lines that read them.
    pub(super) principals: Option<Value>,
    pub(super) headers: Option<Value>,
    pub(super) refusal: Option<Value>,
    /// Read by [`super::request_binding`] (serde derives cost the `.wasm` path-tracking code).
    pub(super) bind: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMatch {
    pub(super) prefix: Option<String>,
    pub(super) path: Option<String>,
    pub(super) methods: Option<Vec<String>>,
    pub(super) hosts: Option<Vec<String>>,
    pub(super) route_name: Option<String>,
    pub(super) paths: Option<Vec<String>>,
    pub(super) not_paths: Option<Vec<String>>,
    pub(super) not_methods: Option<Vec<String>>,
    pub(super) not_hosts: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAnyAll {
    #[serde(default)]
    pub(super) any: Vec<String>,
    #[serde(default)]
    pub(super) all: Vec<String>,
    #[serde(default)]
    pub(super) none: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClaim {
    pub(super) name: String,
    pub(super) values: Option<Vec<Value>>,
    pub(super) not_values: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAllowDeny {
    #[serde(default)]
    pub(super) allow: Vec<String>,
    #[serde(default)]
    pub(super) deny: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClientIp {
    pub(super) from: String,
    #[serde(default, deserialize_with = "whole_number")]
    pub(super) trusted_hops: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGeo {
    pub(super) country_header: Option<String>,
    pub(super) country_claim: Option<String>,
}

/// Integer fields (counts, seconds, milliseconds) take any JSON number with a whole value, so
/// `1000` and `1000.0` both mean 1000: configurations that went through a protobuf `Struct`
/// (Istio's `WasmPlugin.pluginConfig`) hold every number as a double, and some marshallers print
/// `1000.0` (Python's `json_format` does; Istio's Go marshaller prints `1000`). A fraction, a
/// negative number or one too large for the field is refused, naming the field.
pub(super) fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    struct Whole;
    impl serde::de::Visitor<'_> for Whole {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative whole number")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
            // 2^64 is exactly representable; every whole double below it fits in a u64.
            if v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v) {
                Ok(v as u64)
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
            }
        }
    }
    struct Optional;
    impl<'de> serde::de::Visitor<'de> for Optional {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative whole number")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Option<u64>, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Option<u64>, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<u64>, D::Error> {
            d.deserialize_any(Whole).map(Some)
        }
    }
    match deserializer.deserialize_option(Optional)? {
        None => Ok(None),
        Some(v) => T::try_from(v).map(Some).map_err(|_| {
            serde::de::Error::invalid_value(
                serde::de::Unexpected::Unsigned(v),
                &"a smaller whole number",
            )
        }),
    }
}
