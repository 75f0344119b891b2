//! A small command-line parser: positional arguments, `--name VALUE` / `--name=VALUE` options
//! (some repeatable), `--flag`s, `--` to end options, and `-h`/`--help` anywhere.

use crate::report::Failure;

/// An option a command accepts.
pub struct Opt {
    pub name: &'static str,
    /// Takes a value (`--name VALUE` or `--name=VALUE`); otherwise a flag.
    pub value: bool,
    pub repeatable: bool,
}

pub const fn value(name: &'static str) -> Opt {
    Opt {
        name,
        value: true,
        repeatable: false,
    }
}

pub const fn values(name: &'static str) -> Opt {
    Opt {
        name,
        value: true,
        repeatable: true,
    }
}

pub const fn flag(name: &'static str) -> Opt {
    Opt {
        name,
        value: false,
        repeatable: false,
    }
}

pub struct Args {
    command: &'static str,
    pub positionals: Vec<String>,
    /// In command-line order.
    options: Vec<(&'static str, String)>,
    pub help: bool,
}

impl Args {
    pub fn parse(command: &'static str, argv: &[String], spec: &[Opt]) -> Result<Args, Failure> {
        let mut args = Args {
            command,
            positionals: Vec::new(),
            options: Vec::new(),
            help: false,
        };
        let mut rest = argv.iter();
        while let Some(arg) = rest.next() {
            if arg == "--" {
                args.positionals.extend(rest.by_ref().cloned());
                break;
            }
            if arg == "-h" || arg == "--help" {
                args.help = true;
                continue;
            }
            let Some(option) = arg.strip_prefix("--") else {
                if arg.starts_with('-') && arg.len() > 1 {
                    return Err(Failure::usage(command, format!("unknown option {arg:?}")));
                }
                args.positionals.push(arg.clone());
                continue;
            };
            let (name, inline) = match option.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (option, None),
            };
            let Some(opt) = spec.iter().find(|opt| opt.name == name) else {
                return Err(Failure::usage(command, format!("unknown option --{name}")));
            };
            let value = match (opt.value, inline) {
                (true, Some(value)) => value,
                (true, None) => rest
                    .next()
                    .cloned()
                    .ok_or_else(|| Failure::usage(command, format!("--{name} needs a value")))?,
                (false, None) => String::new(),
                (false, Some(_)) => {
                    return Err(Failure::usage(command, format!("--{name} takes no value")));
                }
            };
            if !opt.repeatable && args.options.iter().any(|(n, _)| *n == opt.name) {
                return Err(Failure::usage(command, format!("--{name} given twice")));
            }
            args.options.push((opt.name, value));
        }
        Ok(args)
    }

    /// The value of a non-repeatable option.
    pub fn one(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable option, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.options
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn flag(&self, name: &str) -> bool {
        self.options.iter().any(|(n, _)| *n == name)
    }

    /// The one positional argument, called `what` in the message when it is missing.
    pub fn single_positional(&self, what: &str) -> Result<&str, Failure> {
        match self.positionals.as_slice() {
            [one] => Ok(one),
            [] => Err(Failure::usage(self.command, format!("{what} is missing"))),
            [_, extra, ..] => Err(Failure::usage(
                self.command,
                format!("unexpected argument {extra:?}"),
            )),
        }
    }

    pub fn no_positionals(&self) -> Result<(), Failure> {
        match self.positionals.first() {
            None => Ok(()),
            Some(extra) => Err(Failure::usage(
                self.command,
                format!("unexpected argument {extra:?}"),
            )),
        }
    }

    /// A number option.
    pub fn number<N: std::str::FromStr>(&self, name: &str) -> Result<Option<N>, Failure> {
        self.one(name)
            .map(|text| {
                text.parse::<N>().map_err(|_| {
                    Failure::usage(
                        self.command,
                        format!("--{name} must be a whole number, not {text:?}"),
                    )
                })
            })
            .transpose()
    }

    pub fn usage(&self, message: impl Into<String>) -> Failure {
        Failure::usage(self.command, message)
    }
}
