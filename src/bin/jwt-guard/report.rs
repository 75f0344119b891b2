//! What a command hands back to `main`: its exit code and output (`Report`), or why it stopped
//! (`Failure`). Every command module returns these; `main` prints them.

/// Exit codes (also in `jwt-guard --help` and docs/cli.md).
pub mod exit {
    /// Done: the configuration is valid, the request would be let through, the token is minted.
    pub const OK: u8 = 0;
    /// The configuration is refused (the filter would refuse it too).
    pub const INVALID_CONFIG: u8 = 1;
    /// The command line is wrong.
    pub const USAGE: u8 = 2;
    /// `explain`: the request would be refused (401 or 403).
    pub const REFUSED: u8 = 3;
    /// A file cannot be read or used (a key, a key set, claims).
    pub const INPUT: u8 = 4;
    /// `import`: a field of the source policy cannot be expressed (without `--allow-lossy`).
    pub const LOSSY: u8 = 5;
}

/// What a command prints, and its exit code.
#[derive(Debug, Default)]
pub struct Report {
    pub code: u8,
    pub stdout: String,
    pub stderr: String,
}

impl Report {
    pub fn ok(stdout: String) -> Report {
        Report {
            code: exit::OK,
            stdout,
            stderr: String::new(),
        }
    }
}

/// Why a command stopped; the message goes to stderr.
#[derive(Debug)]
pub enum Failure {
    /// Printed as `jwt-guard: <message>` with a pointer to `--help`.
    Usage {
        command: &'static str,
        message: String,
    },
    /// A refused configuration: the line the filter logs, printed as it is.
    InvalidConfig(String),
    /// Printed as `jwt-guard: <message>`.
    Input(String),
}

impl Failure {
    pub fn usage(command: &'static str, message: impl Into<String>) -> Failure {
        Failure::Usage {
            command,
            message: message.into(),
        }
    }

    pub fn input(message: impl Into<String>) -> Failure {
        Failure::Input(message.into())
    }
}
