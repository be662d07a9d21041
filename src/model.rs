//! The check model shared by every subcommand: a check has a stable dotted id, the hop it
//! belongs to, a status, a one-line summary, the evidence it saw and, when not ok, the fix.
//!
//! The JSON shape produced from these types is documented in README.md ("JSON output") and is
//! stable: fields are only ever added, never renamed or removed.

use serde::{Deserialize, Serialize};

/// Outcome of one check. Ordered by severity so that `max()` gives the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    /// Could not be determined (daemon unreachable, missing privilege, no data).
    Unknown,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Unknown => "unknown",
            Status::Fail => "fail",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable dotted id, e.g. `tap.proxy_arp`. Listed in README.md and the man page.
    pub id: &'static str,
    /// The hop of the path this check looks at (`tap`, `route`, `bgp`, ...).
    pub hop: &'static str,
    /// What the check is about when one id repeats (a BGP peer, a VM address); omitted otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub status: Status,
    /// One line for people.
    pub summary: String,
    /// What was seen on the host, verbatim where possible.
    pub evidence: Vec<String>,
    /// One-line fix; present whenever status is not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn new(id: &'static str, status: Status, summary: impl Into<String>) -> Self {
        let hop = id.split('.').next().unwrap_or(id);
        // `hop` must be 'static: take it from the id itself.
        let hop: &'static str = &id[..hop.len()];
        Check {
            id,
            hop,
            subject: None,
            status,
            summary: summary.into(),
            evidence: Vec::new(),
            fix: None,
        }
    }
    pub fn ok(id: &'static str, summary: impl Into<String>) -> Self {
        Self::new(id, Status::Ok, summary)
    }
    pub fn warn(id: &'static str, summary: impl Into<String>) -> Self {
        Self::new(id, Status::Warn, summary)
    }
    pub fn fail(id: &'static str, summary: impl Into<String>) -> Self {
        Self::new(id, Status::Fail, summary)
    }
    pub fn unknown(id: &'static str, summary: impl Into<String>) -> Self {
        Self::new(id, Status::Unknown, summary)
    }
    pub fn subject(mut self, s: impl Into<String>) -> Self {
        self.subject = Some(s.into());
        self
    }
    pub fn evidence(mut self, e: impl Into<String>) -> Self {
        self.evidence.push(e.into());
        self
    }
    pub fn evidences<I, S>(mut self, e: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.evidence.extend(e.into_iter().map(Into::into));
        self
    }
    pub fn fix(mut self, f: impl Into<String>) -> Self {
        self.fix = Some(f.into());
        self
    }
}

/// Overall verdict of a run: the worst status of its checks.
pub fn verdict<'a>(checks: impl IntoIterator<Item = &'a Check>) -> Status {
    checks
        .into_iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Unknown)
}

/// Process exit codes, documented in `--help`, README.md and the man page.
pub mod exit {
    /// Every check ok.
    pub const OK: u8 = 0;
    /// The worst finding is a warning.
    pub const WARN: u8 = 1;
    /// At least one check failed.
    pub const FAIL: u8 = 2;
    /// Could not determine: a source was unreachable and nothing failed, or privileges are missing.
    pub const UNKNOWN: u8 = 3;
    /// Bad usage: unknown flag, malformed target.
    pub const USAGE: u8 = 64;
}

/// Exit code for a verdict.
pub fn exit_code(v: Status) -> u8 {
    match v {
        Status::Ok => exit::OK,
        Status::Warn => exit::WARN,
        Status::Unknown => exit::UNKNOWN,
        Status::Fail => exit::FAIL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_is_the_first_id_component() {
        let c = Check::ok("tap.proxy_arp", "x");
        assert_eq!(c.hop, "tap");
        let c = Check::ok("bgp", "x");
        assert_eq!(c.hop, "bgp");
    }

    #[test]
    fn verdict_is_the_worst_and_fail_beats_unknown() {
        let cs = [
            Check::ok("a.b", ""),
            Check::unknown("a.c", ""),
            Check::warn("a.d", ""),
        ];
        assert_eq!(verdict(&cs), Status::Unknown);
        let cs = [Check::unknown("a.c", ""), Check::fail("a.e", "")];
        assert_eq!(verdict(&cs), Status::Fail);
        assert_eq!(exit_code(Status::Warn), 1);
        assert_eq!(verdict(&[]), Status::Unknown);
    }

    #[test]
    fn json_shape_is_stable() {
        let c = Check::fail("route.host", "no /32")
            .evidence("ip route: none")
            .fix("ip route add 198.51.100.11/32 dev tapX");
        let v = serde_json::to_value(&c).expect("serialize");
        assert_eq!(v["id"], "route.host");
        assert_eq!(v["hop"], "route");
        assert_eq!(v["status"], "fail");
        assert!(v.get("subject").is_none());
        assert_eq!(v["evidence"][0], "ip route: none");
    }
}
