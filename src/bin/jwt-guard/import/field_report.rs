//! The per-field report of an import: what became of every field of the source policy.

use std::fmt::Write;

/// What became of one field of the source policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Same meaning in jwt-guard.
    Translated,
    /// Translated, but jwt-guard's default differs and was kept or set: the text names it.
    ChangedDefault(String),
    /// jwt-guard cannot express it: the text says why (the import exits non-zero unless
    /// `--allow-lossy`).
    NotExpressible(String),
    /// Read but without effect on requests (names, annotations): reported for completeness.
    Ignored(String),
}

/// One line per field, in the order read; `path` as the source spells it
/// (`providers.corp.remote_jwks.cache_duration`, `AuthorizationPolicy/ns/name.spec.rules[0]`).
#[derive(Debug, Default)]
pub struct FieldReport {
    entries: Vec<(String, Fate)>,
}

impl FieldReport {
    pub fn add(&mut self, path: impl Into<String>, fate: Fate) {
        self.entries.push((path.into(), fate));
    }

    pub fn translated(&mut self, path: impl Into<String>) {
        self.add(path, Fate::Translated);
    }

    pub fn changed_default(&mut self, path: impl Into<String>, why: impl Into<String>) {
        self.add(path, Fate::ChangedDefault(why.into()));
    }

    pub fn not_expressible(&mut self, path: impl Into<String>, why: impl Into<String>) {
        self.add(path, Fate::NotExpressible(why.into()));
    }

    pub fn ignored(&mut self, path: impl Into<String>, why: impl Into<String>) {
        self.add(path, Fate::Ignored(why.into()));
    }

    pub fn is_lossy(&self) -> bool {
        self.entries
            .iter()
            .any(|(_, fate)| matches!(fate, Fate::NotExpressible(_)))
    }

    #[cfg(test)]
    pub fn entries(&self) -> &[(String, Fate)] {
        &self.entries
    }

    /// `translated       providers.corp.issuer` — one line per field, the fate first.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (path, fate) in &self.entries {
            let _ = match fate {
                Fate::Translated => writeln!(out, "translated       {path}"),
                Fate::ChangedDefault(why) => writeln!(out, "changed default  {path}: {why}"),
                Fate::NotExpressible(why) => writeln!(out, "NOT EXPRESSIBLE  {path}: {why}"),
                Fate::Ignored(why) => writeln!(out, "ignored          {path}: {why}"),
            };
        }
        out
    }
}
