//! `jwt-guard import jwt-authn`: see [`super`].

use crate::report::{Failure, Report};

pub fn run(_argv: &[String]) -> Result<Report, Failure> {
    Err(Failure::usage("import", "not implemented yet"))
}
