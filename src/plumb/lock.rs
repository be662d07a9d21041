//! One `plumb --apply` per host at a time: an exclusive `flock` on a lock file that holds the
//! holder's pid and start time, so that a second run can say who holds it.

use std::fs::File;

use crate::collect::files::Existing;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};

/// Default lock file (`--lock-file`, `VMPATH_PLUMB_LOCK`).
pub const DEFAULT_LOCK: &str = "/run/vmpath/plumb.lock";

/// The held lock; released when dropped (and by the kernel when the process dies).
pub struct PlumbLock {
    _file: Flock<File>,
    pub path: PathBuf,
}

#[derive(Debug, PartialEq, Eq)]
pub enum LockError {
    /// Another run holds it: "pid N since T" as that run wrote it.
    Busy(String),
    Io(String),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Busy(h) => write!(f, "busy: held by {h}"),
            LockError::Io(e) => f.write_str(e),
        }
    }
}

impl From<LockError> for crate::error::Error {
    fn from(e: LockError) -> Self {
        match e {
            LockError::Busy(_) => crate::error::Error::Busy(e.to_string()),
            LockError::Io(m) => crate::error::Error::Unknown(m),
        }
    }
}

/// What the holder writes into the lock file.
pub fn holder_text(pid: u32, since: &str) -> String {
    format!("pid {pid} since {since}")
}

/// Take the lock without waiting.
pub fn acquire(path: &Path, now: &str) -> Result<PlumbLock, LockError> {
    let io = |what: &str, e: std::io::Error| {
        LockError::Io(format!(
            "cannot {what} lock file {}: {e} — run as root, or point --lock-file at a writable place",
            path.display()
        ))
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("create the directory of the", e))?;
    }
    // Not through a symlink, only a regular file, and emptied only once locked.
    let file = crate::collect::files::open_private(path, 0o600, Existing::Keep)
        .map_err(|e| io("open the", e))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut f) => {
            f.set_len(0).map_err(|e| io("truncate the", e))?;
            f.rewind().map_err(|e| io("rewind the", e))?;
            writeln!(f, "{}", holder_text(std::process::id(), now))
                .and_then(|_| f.flush())
                .map_err(|e| io("write the", e))?;
            Ok(PlumbLock {
                _file: f,
                path: path.to_path_buf(),
            })
        }
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            // The holder writes its line right after locking: give it a moment (bounded).
            let mut text = String::new();
            for _ in 0..20 {
                text.clear();
                let _ = file.rewind();
                let _ = file.read_to_string(&mut text);
                if !text.trim().is_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let holder = text.trim();
            Err(LockError::Busy(if holder.is_empty() {
                "another vmpath plumb (it has not written its pid yet)".into()
            } else {
                holder.to_string()
            }))
        }
        Err((_, e)) => Err(LockError::Io(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_told_who_holds_it() {
        let dir = std::env::temp_dir().join(format!("vmpath-lock-test-{}", std::process::id()));
        let path = dir.join("sub/plumb.lock");
        let first = acquire(&path, "2026-01-02T03:04:05Z").expect("first");
        // flock locks belong to the open file description: a second open conflicts even in
        // the same process.
        let second = acquire(&path, "later");
        assert_eq!(
            second.err(),
            Some(LockError::Busy(holder_text(
                std::process::id(),
                "2026-01-02T03:04:05Z"
            )))
        );
        assert_eq!(
            LockError::Busy("pid 7 since T".into()).to_string(),
            "busy: held by pid 7 since T"
        );
        drop(first);
        assert!(acquire(&path, "again").is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
