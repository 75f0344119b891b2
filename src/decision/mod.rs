//! The decision for one request: the rule ([`select`], by route binding or in order),
//! authentication, authorization and what changes upstream ([`decide`](mod@decide)), and the answer with
//! its facts ([`verdict`]; [`outcome`] renders it for access logs).

pub mod counters;
pub mod decide;
pub mod outcome;
pub mod select;
pub mod verdict;

pub use decide::{decide, decide_traced};
pub use select::{MatchPart, select_rule};
pub use verdict::{Decision, LocalResponse, Refused, Verdict, dry_run_line, refusal_line};

#[cfg(test)]
mod match_tests;
#[cfg(test)]
mod tests;
