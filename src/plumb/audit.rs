//! The audit log: one JSON line per applied run (who, when, what target, the plan, the outcome),
//! appended to a file that is opened before anything changes.

use std::fs::File;

use crate::collect::files::Existing;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Error;
use serde::Serialize;

/// Default audit log (`--audit-log`, `VMPATH_PLUMB_AUDIT`).
pub const DEFAULT_AUDIT: &str = "/var/log/vmpath/plumb.log";

/// RFC 3339 UTC time with seconds (`2026-11-02T03:04:05Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The user behind the run: the login name of the real uid, and sudo's caller when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Who {
    pub user: String,
    pub uid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sudo_user: Option<String>,
}

impl Who {
    pub fn current() -> Who {
        let uid = nix::unistd::getuid();
        let user = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| format!("uid {uid}"));
        Who {
            user,
            uid: uid.as_raw(),
            sudo_user: std::env::var("SUDO_USER").ok().filter(|s| !s.is_empty()),
        }
    }
}

/// One line of the log.
pub fn line<T: Serialize>(record: &T) -> Result<String, Error> {
    serde_json::to_string(record)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| Error::unknown(format!("cannot encode the audit record: {e}")))
}

/// The log, opened for appending (created with mode 0640, directories as needed).
pub struct AuditLog {
    file: File,
    pub path: std::path::PathBuf,
}

impl AuditLog {
    pub fn open(path: &Path) -> Result<AuditLog, Error> {
        let fail = |what: &str, e: std::io::Error| {
            Error::unknown(format!(
                "cannot {what} audit log {}: {e} — run as root, or point --audit-log at a writable file",
                path.display()
            ))
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| fail("create the directory of the", e))?;
        }
        // Not through a symlink, and only a regular file.
        let file = crate::collect::files::open_private(path, 0o640, Existing::Append)
            .map_err(|e| fail("open the", e))?;
        Ok(AuditLog {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Append one record in a single write (O_APPEND keeps concurrent lines whole).
    pub fn append(&mut self, line: &str) -> Result<(), Error> {
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.sync_data())
            .map_err(|e| {
                Error::unknown(format!(
                    "cannot append to audit log {}: {e}",
                    self.path.display()
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400 + 3723)),
            "2000-02-29T01:02:03Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_798_761_599)),
            "2026-12-31T23:59:59Z"
        );
    }

    #[test]
    fn lines_are_one_json_document_each_and_append() {
        #[derive(Serialize)]
        struct R {
            target: &'static str,
            n: u32,
        }
        let l = line(&R {
            target: "x\ny",
            n: 1,
        })
        .expect("line");
        assert_eq!(l.matches('\n').count(), 1, "{l:?}");
        let dir = std::env::temp_dir().join(format!("vmpath-audit-test-{}", std::process::id()));
        let path = dir.join("a/plumb.log");
        let mut log = AuditLog::open(&path).expect("open");
        log.append(&l).expect("append");
        let mut log = AuditLog::open(&path).expect("reopen");
        log.append(&l).expect("append");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 2);
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            assert_eq!(v["n"], 1);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
