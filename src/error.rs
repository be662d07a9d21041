//! vmpath's one error type. Each variant says what happened and carries the exit code it gives
//! (`Error::exit_code`); every message names what failed and what to do about it.
//!
//! A source that fails during a walk does not abort it: its checks say `unknown`. `Error` is for
//! what stops a command (or, inside the collectors, what a failed read turns into an `unknown`
//! check). Typed errors of one source (`BgpError`) stay where they are and convert into this.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::exit;

/// Serialized (in captured facts) as `{"kind": "unknown", "message": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum Error {
    /// Bad usage: unknown option, malformed target, bad config file (exit 64).
    Usage(String),
    /// The target names nothing on this host: no port (or router) matches it (exit 64). `walk`
    /// tries the gateway path on this error and on no other.
    NotHere(String),
    /// Refused to act: the host's records disagree, an interface is not the port's tap (exit 64).
    Refused(String),
    /// Missing privileges: not root, no CAP_NET_ADMIN or CAP_NET_RAW (exit 3).
    Privilege(String),
    /// Another run holds the per-host lock (exit 3).
    Busy(String),
    /// Could not determine: a source did not answer or could not be read (exit 3).
    Unknown(String),
    /// A change to the host failed (exit 2: the repair did not happen).
    Change(String),
}

impl Error {
    pub fn usage(m: impl Into<String>) -> Self {
        Error::Usage(m.into())
    }
    pub fn not_here(m: impl Into<String>) -> Self {
        Error::NotHere(m.into())
    }
    pub fn refused(m: impl Into<String>) -> Self {
        Error::Refused(m.into())
    }
    pub fn privilege(m: impl Into<String>) -> Self {
        Error::Privilege(m.into())
    }
    pub fn busy(m: impl Into<String>) -> Self {
        Error::Busy(m.into())
    }
    pub fn unknown(m: impl Into<String>) -> Self {
        Error::Unknown(m.into())
    }
    pub fn change(m: impl Into<String>) -> Self {
        Error::Change(m.into())
    }

    /// The process exit code this error ends a command with (README "Exit codes").
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::NotHere(_) | Error::Refused(_) => exit::USAGE,
            Error::Privilege(_) | Error::Busy(_) | Error::Unknown(_) => exit::UNKNOWN,
            Error::Change(_) => exit::FAIL,
        }
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        match self {
            Error::Usage(m)
            | Error::NotHere(m)
            | Error::Refused(m)
            | Error::Privilege(m)
            | Error::Busy(m)
            | Error::Unknown(m)
            | Error::Change(m) => m,
        }
    }

    /// The same kind of error with `what: ` in front of its message.
    pub fn context(self, what: impl fmt::Display) -> Self {
        self.map(|m| format!("{what}: {m}"))
    }

    /// The same kind of error with its message rewritten.
    pub fn map(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            Error::Usage(m) => Error::Usage(f(m)),
            Error::NotHere(m) => Error::NotHere(f(m)),
            Error::Refused(m) => Error::Refused(f(m)),
            Error::Privilege(m) => Error::Privilege(f(m)),
            Error::Busy(m) => Error::Busy(f(m)),
            Error::Unknown(m) => Error::Unknown(f(m)),
            Error::Change(m) => Error::Change(f(m)),
        }
    }
}

/// What `--json` prints on stdout when a command ends with an error:
/// `{"error": {"kind": "usage", "message": "…", "exit_code": 64}}` (README "JSON output").
#[derive(Debug, Serialize)]
pub struct Document<'a> {
    pub error: DocumentBody<'a>,
}

/// The error's `kind` and `message` (its serialized form) and the exit code it ends with.
#[derive(Debug, Serialize)]
pub struct DocumentBody<'a> {
    #[serde(flatten)]
    pub error: &'a Error,
    pub exit_code: u8,
}

impl Error {
    /// The JSON error document of this error.
    pub fn document(&self) -> Document<'_> {
        Document {
            error: DocumentBody {
                error: self,
                exit_code: self.exit_code(),
            },
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Error {}

/// A failed read of the host (a file, a socket, the kernel) is "could not determine".
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Unknown(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_exit_code_and_keeps_it_through_context() {
        assert_eq!(Error::usage("x").exit_code(), 64);
        assert_eq!(Error::not_here("x").exit_code(), 64);
        assert_eq!(Error::refused("x").exit_code(), 64);
        assert_eq!(Error::privilege("x").exit_code(), 3);
        assert_eq!(Error::busy("x").exit_code(), 3);
        assert_eq!(Error::unknown("x").exit_code(), 3);
        assert_eq!(Error::change("x").exit_code(), 2);
        let doc = serde_json::to_value(Error::privilege("needs CAP_NET_ADMIN").document())
            .expect("serializes");
        assert_eq!(
            doc,
            serde_json::json!({"error": {"kind": "privilege", "message": "needs CAP_NET_ADMIN", "exit_code": 3}})
        );
        let doc = serde_json::to_value(Error::not_here("x").document()).expect("serializes");
        assert_eq!(doc["error"]["kind"], "not_here");
        let e = Error::not_here("no port").context("walk 198.51.100.9");
        assert!(matches!(e, Error::NotHere(_)));
        assert_eq!(e.to_string(), "walk 198.51.100.9: no port");
    }
}
