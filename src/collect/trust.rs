//! Which processes vmpath trusts as a source of paths, sockets and signals. vmpath runs as root
//! and finds its sources from processes (dnsmasq, BIRD, FRR, keepalived, ovsdb-server,
//! ovs-vswitchd, Neutron's agents) by their names and command lines; any user can start a
//! process of that name. A
//! process is trusted when all of these hold:
//! - it runs in vmpath's own user namespace (capabilities mean nothing in another);
//! - it runs as root, or holds permitted capabilities (a daemon started by root that dropped to
//!   its own user keeps some: dnsmasq as nobody keeps CAP_NET_ADMIN, bgpd as frr keeps several),
//!   or runs as an account the config names (`trusted_accounts`);
//! - its executable is a regular file owned by root that neither its group nor others may write.
//!
//! An untrusted process's paths and sockets are not used; the checks that needed them say
//! unknown, with the reason. vmpath never executes a binary a process names (not even
//! `/proc/PID/exe`): it runs the system's own, found by path ([`system_binary`]).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::procs::{Cred, Process};

/// Accounts the config trusts besides root (`trusted_accounts`), as uids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub uids: Vec<u32>,
}

/// Is `p` a trusted source? `Err` says why not, for the evidence of the checks that needed it.
pub fn judge(p: &Process, policy: &Policy) -> Result<(), String> {
    let who = format!("{} pid {}", p.name, p.pid);
    let Some(c) = &p.cred else {
        return Err(format!("{who}: its owner and executable could not be read"));
    };
    judge_cred(&who, c, policy)
}

fn judge_cred(who: &str, c: &Cred, policy: &Policy) -> Result<(), String> {
    if !c.same_userns {
        return Err(format!("{who} runs in another user namespace"));
    }
    if c.uid != 0 && c.cap_permitted == 0 && !policy.uids.contains(&c.uid) {
        return Err(format!(
            "{who} runs as uid {} without the privileges of a system daemon (not root, no \
             capabilities, not in trusted_accounts)",
            c.uid
        ));
    }
    match (&c.exe, c.exe_safe) {
        (Some(_), true) => Ok(()),
        (Some(e), false) => Err(format!(
            "{who}'s executable {e} is not a root-owned file closed to writes by others"
        )),
        (None, _) => Err(format!("{who}'s executable cannot be read")),
    }
}

pub use super::files::{root_only, safe_executable};

/// The system's own `name` binary (PATH, then the sbin directories), when it is safe to run.
pub fn system_binary(name: &str) -> Option<PathBuf> {
    super::child::find_bin(name).filter(|p| safe_executable(p))
}

/// May vmpath write into `dir` on behalf of a daemon running as `uid`: a directory (followed)
/// owned by root, that uid or a trusted account, that neither group nor others may write, and
/// that the daemon can read. Otherwise another user could swap what is written, or the daemon
/// would never see it.
pub fn writable_dir(dir: &Path, uid: u32, policy: &Policy) -> Result<(), String> {
    let md = std::fs::metadata(dir).map_err(|e| format!("hosts dir {}: {e}", dir.display()))?;
    if !md.is_dir() {
        return Err(format!("hosts dir {} is not a directory", dir.display()));
    }
    if md.uid() != 0 && md.uid() != uid && !policy.uids.contains(&md.uid()) {
        return Err(format!(
            "hosts dir {} belongs to uid {}, neither root, the daemon's uid {uid} nor a trusted account",
            dir.display(),
            md.uid()
        ));
    }
    if md.mode() & 0o022 != 0 {
        return Err(format!(
            "hosts dir {} may be written by its group or others (mode {:o})",
            dir.display(),
            md.mode() & 0o7777
        ));
    }
    super::files::readable_by(&md, uid).map_err(|why| format!("hosts dir {}: {why}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(cred: Option<Cred>) -> Process {
        Process {
            pid: 42,
            name: "dnsmasq".into(),
            args: vec!["dnsmasq".into()],
            cred,
        }
    }

    fn cred(uid: u32, caps: u64) -> Cred {
        Cred {
            uid,
            cap_permitted: caps,
            same_userns: true,
            exe: Some("/usr/sbin/dnsmasq".into()),
            exe_safe: true,
        }
    }

    #[test]
    fn root_or_a_daemon_that_kept_capabilities_is_trusted_others_are_not() {
        let none = Policy::default();
        assert!(judge(&p(Some(cred(0, 0))), &none).is_ok());
        // dnsmasq after dropping to nobody: CAP_NET_ADMIN and CAP_NET_RAW kept.
        assert!(judge(&p(Some(cred(65534, 0x3000))), &none).is_ok());
        // Anyone else starting a process named dnsmasq.
        let e = judge(&p(Some(cred(1000, 0))), &none).expect_err("user");
        assert!(
            e.contains("uid 1000") && e.contains("trusted_accounts"),
            "{e}"
        );
        assert!(judge(&p(Some(cred(1000, 0))), &Policy { uids: vec![1000] }).is_ok());
        let mut c = cred(0, 0);
        c.same_userns = false;
        assert!(judge(&p(Some(c)), &none).is_err());
        let mut c = cred(0, 0);
        c.exe_safe = false;
        assert!(judge(&p(Some(c)), &none)
            .expect_err("exe")
            .contains("not a root-owned file"));
        assert!(judge(&p(None), &none).is_err());
    }

    #[test]
    fn system_binaries_are_checked_before_they_run() {
        assert!(safe_executable(Path::new("/bin/sh")) || !Path::new("/bin/sh").exists());
        assert!(!safe_executable(Path::new("/tmp")));
        assert!(!safe_executable(Path::new("/nonexistent/keepalived")));
    }
}
