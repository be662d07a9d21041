//! Facts from many network namespaces at once (a gateway node's `qrouter-*` and `qdhcp-*`):
//! a few worker threads each enter namespaces one after the other with setns (per thread, never
//! a process per namespace) and read links, addresses, routes and neighbours over rtnetlink and
//! the namespace's conntrack counters from /proc.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::netlink::{HostNet, Netlink};
use crate::error::Error;

/// One namespace under the netns directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NsEntry {
    pub name: String,
    pub path: PathBuf,
}

/// Conntrack state of one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conntrack {
    /// `nf_conntrack_count` of the namespace (`None`: conntrack not loaded/used there).
    pub count: Option<u64>,
    /// Packets dropped because the table was full (summed over CPUs).
    pub drop: u64,
    pub early_drop: u64,
    pub insert_failed: u64,
}

/// What was read in one namespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NsFacts {
    pub name: String,
    pub net: Result<HostNet, Error>,
    pub conntrack: Conntrack,
}

/// The namespaces in `dir` (default `/run/netns`) whose name starts with one of `prefixes`,
/// sorted by name.
pub fn list(dir: &Path, prefixes: &[&str]) -> std::io::Result<Vec<NsEntry>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let Ok(e) = e else { continue };
        let Some(name) = e.file_name().to_str().map(String::from) else {
            continue;
        };
        if prefixes.iter().any(|p| name.starts_with(p)) {
            out.push(NsEntry {
                path: e.path(),
                name,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Sum the `drop`, `early_drop` and `insert_failed` columns of `/proc/net/stat/nf_conntrack`
/// (a header line, then one line of hex counters per CPU).
pub fn parse_ct_stat(text: &str) -> (u64, u64, u64) {
    let mut lines = text.lines();
    let Some(head) = lines.next() else {
        return (0, 0, 0);
    };
    let cols: Vec<&str> = head.split_whitespace().collect();
    let idx = |name: &str| cols.iter().position(|c| *c == name);
    let (d, e, f) = (idx("drop"), idx("early_drop"), idx("insert_failed"));
    let mut sum = (0u64, 0u64, 0u64);
    for l in lines {
        let v: Vec<u64> = l
            .split_whitespace()
            .map(|x| u64::from_str_radix(x, 16).unwrap_or(0))
            .collect();
        let get = |i: Option<usize>| i.and_then(|i| v.get(i)).copied().unwrap_or(0);
        sum.0 = sum.0.saturating_add(get(d));
        sum.1 = sum.1.saturating_add(get(e));
        sum.2 = sum.2.saturating_add(get(f));
    }
    sum
}

/// The global `nf_conntrack_max` (read-only inside namespaces, the same everywhere).
pub fn conntrack_max() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Read the current thread's namespace (after setns, or the caller's own).
pub fn read_here(name: &str, timeout: Duration) -> NsFacts {
    let net = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(async {
            let nl = Netlink::open().map_err(|e| Error::unknown(e.to_string()))?;
            match tokio::time::timeout(timeout, nl.snapshot()).await {
                Ok(r) => r.map_err(|e| Error::unknown(e.to_string())),
                Err(_) => Err(Error::unknown(format!(
                    "rtnetlink did not answer within {timeout:?}"
                ))),
            }
        }),
        Err(e) => Err(Error::unknown(format!("cannot start a runtime: {e}"))),
    };
    // /proc/sys/net and /proc/thread-self/net resolve to this thread's namespace.
    let count = std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_count")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let (drop, early_drop, insert_failed) =
        std::fs::read_to_string("/proc/thread-self/net/stat/nf_conntrack")
            .map(|t| parse_ct_stat(&t))
            .unwrap_or((0, 0, 0));
    NsFacts {
        name: name.to_string(),
        net,
        conntrack: Conntrack {
            count,
            drop,
            early_drop,
            insert_failed,
        },
    }
}

/// Read every namespace of `entries` with up to `workers` threads. The result is in the order
/// of `entries`; a namespace that cannot be entered has an error in `net`.
pub fn scan(entries: &[NsEntry], workers: usize, timeout: Duration) -> Vec<NsFacts> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<NsFacts>>> =
        Mutex::new((0..entries.len()).map(|_| None).collect());
    let workers = workers.clamp(1, 64).min(entries.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                // A dedicated thread: it may change namespaces as often as it likes and ends
                // with the scan.
                for _ in 0..entries.len() {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(e) = entries.get(i) else { break };
                    let facts = match std::fs::File::open(&e.path) {
                        Ok(f) => {
                            // SAFETY: setns on a descriptor we own; it changes only this thread.
                            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
                                read_here(&e.name, timeout)
                            } else {
                                failed(
                                    &e.name,
                                    format!(
                                        "cannot enter {}: {}",
                                        e.path.display(),
                                        std::io::Error::last_os_error()
                                    ),
                                )
                            }
                        }
                        Err(err) => {
                            failed(&e.name, format!("cannot open {}: {err}", e.path.display()))
                        }
                    };
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(facts);
                    }
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    results
        .into_iter()
        .zip(entries)
        .map(|(r, e)| r.unwrap_or_else(|| failed(&e.name, "not read".into())))
        .collect()
}

/// Run `f(i)` inside the namespace `paths[i]` for every i, on up to `workers` threads (setns per
/// thread). Sockets opened by `f` stay bound to that namespace and may be used from anywhere.
pub fn run_in_each<T, F>(paths: &[PathBuf], workers: usize, f: F) -> Vec<Result<T, Error>>
where
    T: Send,
    F: Fn(usize) -> T + Sync,
{
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<T, Error>>>> =
        Mutex::new((0..paths.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, 64).min(paths.len().max(1)) {
            s.spawn(|| {
                for _ in 0..paths.len() {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = paths.get(i) else { break };
                    let r = match std::fs::File::open(p) {
                        // SAFETY: setns on a descriptor we own; it changes only this thread.
                        Ok(file)
                            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }
                                == 0 =>
                        {
                            Ok(f(i))
                        }
                        Ok(_) => Err(Error::unknown(format!(
                            "cannot enter {}: {}",
                            p.display(),
                            std::io::Error::last_os_error()
                        ))),
                        Err(e) => Err(Error::unknown(format!("cannot open {}: {e}", p.display()))),
                    };
                    if let Ok(mut v) = results.lock() {
                        v[i] = Some(r);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::unknown("not run"))))
        .collect()
}

fn failed(name: &str, why: String) -> NsFacts {
    NsFacts {
        name: name.to_string(),
        net: Err(Error::Unknown(why)),
        conntrack: Conntrack::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conntrack_stat_columns_are_summed_over_cpus() {
        let t = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n\
                 00000010  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000002 0000000a 00000001 00000000  00000000 00000000 00000000 00000000\n\
                 00000010  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001 00000005 00000000 00000000  00000000 00000000 00000000 00000000\n";
        assert_eq!(parse_ct_stat(t), (15, 1, 3));
        assert_eq!(parse_ct_stat(""), (0, 0, 0));
        assert_eq!(parse_ct_stat("drop\nzz\n"), (0, 0, 0));
    }

    #[test]
    fn a_namespace_that_cannot_be_opened_is_an_error_not_a_panic() {
        let e = vec![NsEntry {
            name: "qrouter-x".into(),
            path: "/nonexistent/qrouter-x".into(),
        }];
        let r = scan(&e, 4, Duration::from_secs(1));
        assert_eq!(r.len(), 1);
        assert!(r[0]
            .net
            .as_ref()
            .is_err_and(|m| m.message().contains("cannot open")));
    }
}
