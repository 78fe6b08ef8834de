//! Config errors: every one names the file, the line, the option path and what was
//! expected, because the server refuses to start rather than guess (DESIGN.md, Config).

use std::fmt;
use std::path::PathBuf;

/// Where a config came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// The default config compiled into the binary (no `--config`).
    Embedded,
    /// A file given with `--config`.
    File(PathBuf),
}

impl fmt::Display for ConfigOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigOrigin::Embedded => f.write_str("the embedded default config"),
            ConfigOrigin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// What is wrong with an option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The file is not TOML.
    Syntax(String),
    /// The file could not be read at all.
    Unreadable(String),
    /// A key this table does not know; `known` lists the keys it does.
    UnknownOption {
        /// The keys accepted in this table.
        known: Vec<String>,
    },
    /// The value has the wrong TOML type.
    WrongType {
        /// What the option takes.
        expected: String,
        /// What was found, described.
        got: String,
    },
    /// The value has the right type but is out of range or not one of the choices.
    BadValue {
        /// What the option takes.
        expected: String,
        /// What was found, described.
        got: String,
    },
    /// A required option is absent.
    Missing {
        /// What the option takes.
        expected: String,
    },
    /// A file the option names cannot be read or does not hold what it should.
    File {
        /// The file as written in the config.
        file: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The options are each fine but do not fit together (unknown shaper, duplicate
    /// listener, ...).
    Conflict(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Syntax(m) => write!(f, "invalid TOML: {m}"),
            Problem::Unreadable(m) => write!(f, "cannot read the file: {m}"),
            Problem::UnknownOption { known } if known.is_empty() => {
                f.write_str("unknown option (this section takes no options)")
            }
            Problem::UnknownOption { known } => {
                write!(f, "unknown option (expected one of: {})", known.join(", "))
            }
            Problem::WrongType { expected, got } | Problem::BadValue { expected, got } => {
                write!(f, "expected {expected}, got {got}")
            }
            Problem::Missing { expected } => write!(f, "required option is missing (expected {expected})"),
            Problem::File { file, reason } => write!(f, "cannot use {:?}: {reason}", file.display()),
            Problem::Conflict(m) => f.write_str(m),
        }
    }
}

/// A config the server cannot run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or the embedded default).
    pub origin: ConfigOrigin,
    /// 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// Option path in TOML terms, e.g. `listen.c2s[0].tls.mode`; empty for syntax errors.
    pub path: String,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config error in {}", self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl std::error::Error for ConfigError {}
