//! The route's `filter_metadata.jwt_guard`, read through proxy-wasm's property API and handed
//! to the core's [`route_binding`] (which decides what binds the route).

use crate::adapters::proxy_wasm::header_map;
use crate::adapters::proxy_wasm::host;
use crate::request::{MetadataMember, route_binding};

/// Where a route names its rule: `metadata: {filter_metadata: {jwt_guard: {rule: <name>}}}`.
/// The whole namespace is read, so that a binding whose name is empty or null is told apart
/// from no binding at all (Envoy answers both `rule: ""` and a missing `rule` as not found).
const ROUTE_METADATA: &[u8] = b"xds\0route_metadata\0filter_metadata\0jwt_guard\0";

/// The route's `filter_metadata.jwt_guard`, as Envoy serialises a Struct: the header-map
/// encoding of its members, each value's bytes (a string's text; other types as raw bytes no
/// rule name can equal). A namespace Envoy cannot serialise (a `null` member) is one that
/// binds no rule.
pub enum RouteMetadata {
    Absent,
    Members(Vec<(String, Vec<u8>)>),
    Unreadable,
}

impl RouteMetadata {
    pub fn read() -> RouteMetadata {
        match host::property(ROUTE_METADATA) {
            Ok(None) => RouteMetadata::Absent,
            Ok(Some(bytes)) => {
                header_map::decode(&bytes).map_or(RouteMetadata::Unreadable, RouteMetadata::Members)
            }
            Err(_) => RouteMetadata::Unreadable,
        }
    }

    pub fn rule(&self) -> Option<&[u8]> {
        match self {
            RouteMetadata::Absent => None,
            RouteMetadata::Members(members) => {
                let members: Vec<MetadataMember> = members
                    .iter()
                    .map(|(name, value)| (name.as_str(), Some(value.as_slice())))
                    .collect();
                route_binding(Some(&members))
            }
            RouteMetadata::Unreadable => route_binding(Some(&[])),
        }
    }
}
