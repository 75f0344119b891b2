//! Envoy counters per outcome and reason (overall, per rule, per provider), and each
//! refusal's local reply, encoded once per configuration.

use proxy_wasm::types::Action;

use crate::adapters::proxy_wasm::header_map;
use crate::adapters::proxy_wasm::host::{self, LOG_ERROR};
use crate::config::Config;
use crate::decision::{Decision, Refused, Verdict};
use crate::reason::{AuthFailure, Forbidden, Refusal};

/// Envoy counters (shown as `wasmcustom.jwt_guard.*`), one per outcome and reason, overall,
/// per rule and per provider, and each refusal's local reply, encoded once per configuration.
pub(super) struct Outcomes {
    pub(super) total: Tally,
    /// One per rule, as `Config::rules`: `jwt_guard.rule.<name>.*`.
    pub(super) rules: Vec<Tally>,
    /// One per provider, as `Config::providers`: `jwt_guard.provider.<name>.*`.
    pub(super) providers: Vec<Tally>,
    pub(super) cache_hit: Option<u32>,
    pub(super) cache_miss: Option<u32>,
    pub(super) route_rule_unknown: Option<u32>,
    pub(super) refused: Vec<PreparedRefusal>,
}

/// `<prefix>.allowed`, `<prefix>.dry_run` and `<prefix>.refused.<status>.<reason>`; the last
/// indexed as `Outcomes::refused`.
pub(super) struct Tally {
    pub(super) allowed: Option<u32>,
    pub(super) dry_run: Option<u32>,
    pub(super) refused: Vec<Option<u32>>,
}

impl Tally {
    pub(super) fn define(prefix: &str) -> Tally {
        let counter = |name: String| host::define_counter(&name).ok();
        Tally {
            allowed: counter(format!("{prefix}.allowed")),
            dry_run: counter(format!("{prefix}.dry_run")),
            // Per rule or provider, "no rule" cannot happen: no series for it.
            refused: all_refusals()
                .map(|r| {
                    (r != Refusal::Forbidden(Forbidden::NoMatchingRule))
                        .then(|| counter(format!("{prefix}.refused.{}.{}", r.status(), r.code())))?
                })
                .collect(),
        }
    }

    pub(super) fn count(&self, decision: &Decision, refusal_index: Option<usize>) {
        let id = match decision {
            Decision::Allow { dry_run: None, .. } => self.allowed,
            Decision::Allow {
                dry_run: Some(_), ..
            } => self.dry_run,
            Decision::Refuse(_) => {
                refusal_index.and_then(|i| self.refused.get(i).copied().flatten())
            }
        };
        Outcomes::count(id);
    }
}

pub(super) fn all_refusals() -> impl Iterator<Item = Refusal> {
    AuthFailure::ALL
        .iter()
        .map(|f| Refusal::Unauthorized(*f))
        .chain(Forbidden::ALL.iter().map(|f| Refusal::Forbidden(*f)))
}

pub(super) struct PreparedRefusal {
    pub(super) refusal: Refusal,
    pub(super) response: PreparedResponse,
}

/// A local reply with its header map already in the ABI's encoding.
pub(super) struct PreparedResponse {
    pub(super) status: u32,
    pub(super) headers: Vec<u8>,
    pub(super) body: Vec<u8>,
}

impl PreparedResponse {
    pub(super) fn of(refused: &Refused, realm: &str) -> PreparedResponse {
        let response = refused.response(realm);
        let headers: Vec<(&str, &[u8])> = response
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_bytes()))
            .collect();
        PreparedResponse {
            status: response.status,
            headers: header_map::encode(&headers),
            body: response.body.into_bytes(),
        }
    }

    /// Answers with it. If even that fails, the request is still not let through: the stream
    /// stays paused until Envoy's timeouts end it.
    pub(super) fn send(&self) -> Action {
        if let Err(status) = host::send_local_response(self.status, &self.headers, &self.body) {
            host::log(
                LOG_ERROR,
                &format!("jwt-guard: cannot send refusal: {status:?}"),
            );
        }
        Action::Pause
    }
}

impl Outcomes {
    pub(super) fn define(config: &Config) -> Outcomes {
        let counter = |name: &str| host::define_counter(name).ok();
        Outcomes {
            total: Tally {
                allowed: counter("jwt_guard.allowed"),
                dry_run: counter("jwt_guard.dry_run"),
                refused: all_refusals()
                    .map(|r| counter(&format!("jwt_guard.refused.{}.{}", r.status(), r.code())))
                    .collect(),
            },
            rules: config
                .rules
                .iter()
                .map(|rule| Tally::define(&format!("jwt_guard.rule.{}", rule.label)))
                .collect(),
            providers: config
                .providers
                .iter()
                .map(|p| Tally::define(&format!("jwt_guard.provider.{}", p.name)))
                .collect(),
            cache_hit: counter("jwt_guard.token_cache.hit"),
            cache_miss: counter("jwt_guard.token_cache.miss"),
            route_rule_unknown: counter("jwt_guard.route_rule_unknown"),
            refused: all_refusals()
                .map(|refusal| PreparedRefusal {
                    refusal,
                    response: PreparedResponse::of(
                        &Refused {
                            refusal,
                            scope_hint: None,
                            dpop: None,
                            custom: None,
                        },
                        &config.realm,
                    ),
                })
                .collect(),
        }
    }

    /// Counts the verdict overall, under its rule and under its provider.
    pub(super) fn tally(&self, verdict: &Verdict) {
        let refusal_index = match &verdict.decision {
            Decision::Refuse(refused) => self
                .refused
                .iter()
                .position(|p| p.refusal == refused.refusal),
            Decision::Allow { .. } => None,
        };
        self.total.count(&verdict.decision, refusal_index);
        if let Some(rule) = verdict.rule.and_then(|i| self.rules.get(i)) {
            rule.count(&verdict.decision, refusal_index);
        }
        if let Some(provider) = verdict.provider.and_then(|i| self.providers.get(i)) {
            provider.count(&verdict.decision, refusal_index);
        }
        if verdict.unknown_route_rule {
            Outcomes::count(self.route_rule_unknown);
        }
    }

    pub(super) fn count(id: Option<u32>) {
        if let Some(id) = id {
            host::increment_counter(id);
        }
    }

    /// Answers a refusal (a `missing_scope` challenge names the rule's scopes, so that one is
    /// encoded on the spot).
    pub(super) fn refuse(&self, refused: &Refused, realm: &str) -> Action {
        let prepared = self.refused.iter().find(|p| p.refusal == refused.refusal);
        match prepared {
            Some(prepared) if refused.is_plain() => prepared.response.send(),
            _ => PreparedResponse::of(refused, realm).send(),
        }
    }
}
