//! The BGP hop: find the routing daemon of this network namespace (BIRD 2 or FRR), ask it
//! whether the VM's /32 (/128) is in its table, learned from the kernel, and advertised to
//! every peer. The daemon-specific clients live in `bird.rs` and `frr.rs`, the facts they produce in
//! `facts.rs`; this file finds the speakers and asks them.
//!
//! Everything is blocking std I/O bounded by one deadline: `collect()` never takes longer
//! than the timeout it is given (connect included).

pub mod bird;
mod facts;
pub mod frr;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use facts::*;

use crate::collect::deadline::Deadline;
use crate::collect::procs::{Process, ProcessSource};

/// Find the BGP speakers of this network namespace (`procs` must be limited to it, as
/// `ProcTable::scan()` is). An override replaces discovery for its daemon.
pub fn discover(
    procs: &dyn ProcessSource,
    ov: &Overrides,
    policy: &crate::collect::trust::Policy,
) -> Vec<Speaker> {
    let mut out: Vec<Speaker> = Vec::new();
    let mut push = |s: Speaker| {
        if !out.iter().any(|o| o.endpoint == s.endpoint) {
            out.push(s);
        }
    };

    if let Some(sock) = &ov.bird_socket {
        push(Speaker {
            kind: SpeakerKind::Bird,
            pid: None,
            endpoint: Endpoint::BirdSocket(sock.clone()),
            origin: "--bird-socket flag".to_string(),
            uid: None,
            untrusted: None,
        });
    } else {
        for name in ["bird", "bird6"] {
            for p in procs.find(name) {
                push(vetted(bird_from_process(p), p, policy));
            }
        }
    }

    if let Some(dir) = &ov.frr_dir {
        push(Speaker {
            kind: SpeakerKind::Frr,
            pid: None,
            endpoint: frr_endpoint(dir, None),
            origin: "--frr-dir flag".to_string(),
            uid: None,
            untrusted: None,
        });
    } else {
        for p in procs.find("bgpd") {
            push(vetted(frr_from_process(p), p, policy));
        }
    }
    out
}

/// A speaker found from process `p`, with its owner and whether `p` is trusted.
fn vetted(mut s: Speaker, p: &Process, policy: &crate::collect::trust::Policy) -> Speaker {
    s.uid = p.cred.as_ref().map(|c| c.uid);
    s.untrusted = crate::collect::trust::judge(p, policy).err();
    s
}

fn bird_from_process(p: &Process) -> Speaker {
    let (path, how) = match p.opt("--socket", Some("-s")) {
        Some(s) => (p.path(s), format!("-s {s}")),
        None => {
            let defaults: &[&str] = if p.name == "bird6" {
                &BIRD6_DEFAULT_SOCKETS
            } else {
                &BIRD_DEFAULT_SOCKETS
            };
            let found = defaults.iter().map(|d| p.path(d)).find(|c| c.exists());
            let path = found.unwrap_or_else(|| p.path(defaults[0]));
            let how = format!("default socket {}", path.display());
            (path, how)
        }
    };
    Speaker {
        kind: SpeakerKind::Bird,
        pid: Some(p.pid),
        endpoint: Endpoint::BirdSocket(path),
        origin: format!("{} pid {} {how}", p.name, p.pid),
        uid: None,
        untrusted: None,
    }
}

fn frr_from_process(p: &Process) -> Speaker {
    let ns = p
        .opt("--pathspace", Some("-N"))
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let (dir, how) = if let Some(d) = p.opt("--vty_socket", None) {
        (p.path(d), format!("--vty_socket {d}"))
    } else {
        let candidates: Vec<String> = FRR_DEFAULT_DIRS
            .iter()
            .map(|d| match &ns {
                Some(n) => format!("{d}/{n}"),
                None => (*d).to_string(),
            })
            .collect();
        let found = candidates
            .iter()
            .map(|c| p.path(c))
            .find(|c| c.join("bgpd.vty").exists());
        let dir = found.unwrap_or_else(|| p.path(&candidates[0]));
        let how = match &ns {
            Some(n) => format!("-N {n}"),
            None => "default vty dir".to_string(),
        };
        (dir, how)
    };
    Speaker {
        kind: SpeakerKind::Frr,
        pid: Some(p.pid),
        endpoint: frr_endpoint(&dir, ns),
        origin: format!("bgpd pid {} {how} ({})", p.pid, dir.display()),
        uid: None,
        untrusted: None,
    }
}

fn frr_endpoint(dir: &Path, pathspace: Option<String>) -> Endpoint {
    Endpoint::FrrVty {
        bgpd: dir.join("bgpd.vty"),
        zebra: dir.join("zebra.vty"),
        pathspace,
    }
}

/// Ask a speaker about `prefixes` (host routes of the VM: address and prefix length).
/// One connection per daemon socket, two round trips at most; never longer than `timeout`.
pub fn collect(
    speaker: &Speaker,
    prefixes: &[(IpAddr, u8)],
    timeout: Duration,
) -> Result<BgpFacts, BgpError> {
    if let Some(why) = &speaker.untrusted {
        return Err(BgpError::new(
            BgpErrorKind::Untrusted,
            speaker.describe(),
            format!("not trusted as a source: {why}"),
            "if it is this host's routing daemon, add its account to trusted_accounts in /etc/vmpath/config.toml",
        ));
    }
    if let Some(uid) = speaker.uid {
        socket_owned_by(&speaker.endpoint, uid)?;
    }
    let deadline = Deadline::after(timeout);
    let prefixes: Vec<String> = prefixes
        .iter()
        .map(|(ip, len)| format!("{ip}/{len}"))
        .collect();
    let mut facts = match &speaker.endpoint {
        Endpoint::BirdSocket(path) => bird::collect(path, &prefixes, deadline)?,
        Endpoint::FrrVty {
            bgpd,
            zebra,
            pathspace,
        } => frr::collect(bgpd, zebra, pathspace.as_deref(), &prefixes, deadline)?,
    };
    facts.control = speaker.control_command();
    Ok(facts)
}

/// A daemon's control socket must be its own or root's: otherwise anyone could stand in for it.
fn socket_owned_by(ep: &Endpoint, uid: u32) -> Result<(), BgpError> {
    use std::os::unix::fs::MetadataExt;
    let paths: Vec<&Path> = match ep {
        Endpoint::BirdSocket(p) => vec![p.as_path()],
        Endpoint::FrrVty { bgpd, zebra, .. } => vec![bgpd.as_path(), zebra.as_path()],
    };
    for p in paths {
        // A missing socket is reported when connecting.
        if let Ok(md) = std::fs::metadata(p) {
            if md.uid() != 0 && md.uid() != uid {
                return Err(BgpError::new(
                    BgpErrorKind::Untrusted,
                    p.display().to_string(),
                    format!(
                        "the socket belongs to uid {}, neither root nor the daemon's uid {uid}",
                        md.uid()
                    ),
                    "check who created the socket: it should be the routing daemon",
                ));
            }
        }
    }
    Ok(())
}

/// A collection running on its own thread.
pub struct Collecting {
    pub speaker: Speaker,
    handle: std::thread::JoinHandle<Result<BgpFacts, BgpError>>,
}

/// What one BGP speaker said when asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spoken {
    pub speaker: Speaker,
    pub answer: Answer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Facts(BgpFacts),
    Failed(BgpError),
    /// The collector thread died (a vmpath bug, never the daemon's fault).
    Panicked,
}

/// Ask every speaker about `prefixes` at once, one thread each; [`join`] them when the answers
/// are needed (each is bounded by `timeout`).
pub fn spawn_collect(
    speakers: Vec<Speaker>,
    prefixes: &[(IpAddr, u8)],
    timeout: Duration,
) -> Vec<Collecting> {
    speakers
        .into_iter()
        .map(|speaker| {
            let (pfx, sp) = (prefixes.to_vec(), speaker.clone());
            Collecting {
                speaker,
                handle: std::thread::spawn(move || collect(&sp, &pfx, timeout)),
            }
        })
        .collect()
}

/// Wait for every collection.
pub fn join(running: Vec<Collecting>) -> Vec<Spoken> {
    running
        .into_iter()
        .map(|c| Spoken {
            answer: match c.handle.join() {
                Ok(Ok(f)) => Answer::Facts(f),
                Ok(Err(e)) => Answer::Failed(e),
                Err(_) => Answer::Panicked,
            },
            speaker: c.speaker,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::deadline::{connect_unix, Deadline};
    use crate::collect::procs::ProcTable;
    use crate::collect::trust::Policy;
    use std::io;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;
    use std::time::Instant;

    fn proc(pid: u32, argv: &str) -> Process {
        let args: Vec<String> = argv.split(' ').map(String::from).collect();
        let name = args[0].rsplit('/').next().unwrap_or("").to_string();
        Process {
            pid,
            name,
            args,
            cred: None,
        }
    }

    fn table(ps: Vec<Process>) -> ProcTable {
        ProcTable { procs: ps }
    }

    #[test]
    fn discovers_bird_with_socket_flag_and_frr_with_pathspace() {
        let t = table(vec![
            proc(
                812,
                "bird -f -c /run/bird/a.conf -s /run/bird/hv1.ctl -P /run/bird/a.pid",
            ),
            proc(
                900,
                "/usr/lib/frr/bgpd -d -N hv2 -P 0 -i /run/frr/hv2/bgpd.pid",
            ),
            proc(901, "/usr/lib/frr/zebra -d -N hv2"),
            proc(1, "/sbin/init"),
        ]);
        let s = discover(&t, &Overrides::default(), &Policy::default());
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].kind, SpeakerKind::Bird);
        assert_eq!(s[0].pid, Some(812));
        assert_eq!(
            s[0].endpoint,
            Endpoint::BirdSocket(PathBuf::from("/run/bird/hv1.ctl"))
        );
        assert_eq!(s[0].origin, "bird pid 812 -s /run/bird/hv1.ctl");
        assert_eq!(s[0].control_command(), "birdc -s /run/bird/hv1.ctl");
        assert_eq!(s[1].kind, SpeakerKind::Frr);
        assert_eq!(
            s[1].endpoint,
            Endpoint::FrrVty {
                bgpd: PathBuf::from("/run/frr/hv2/bgpd.vty"),
                zebra: PathBuf::from("/run/frr/hv2/zebra.vty"),
                pathspace: Some("hv2".into()),
            }
        );
        assert_eq!(s[1].control_command(), "vtysh -N hv2");
        assert_eq!(s[1].describe(), "FRR via /run/frr/hv2/bgpd.vty");
    }

    #[test]
    fn bird_without_socket_flag_uses_a_default_and_frr_vty_socket_option() {
        let t = table(vec![
            proc(5, "bird -R -d -c /etc/calico/confd/config/bird.cfg"),
            proc(6, "/usr/lib/frr/bgpd -d --vty_socket /srv/frr"),
        ]);
        let s = discover(&t, &Overrides::default(), &Policy::default());
        match &s[0].endpoint {
            Endpoint::BirdSocket(p) => {
                assert!(BIRD_DEFAULT_SOCKETS.iter().any(|d| p == Path::new(d)))
            }
            e => panic!("{e:?}"),
        }
        assert!(s[0].origin.starts_with("bird pid 5 default socket "));
        assert_eq!(
            s[1].endpoint,
            Endpoint::FrrVty {
                bgpd: PathBuf::from("/srv/frr/bgpd.vty"),
                zebra: PathBuf::from("/srv/frr/zebra.vty"),
                pathspace: None,
            }
        );
        assert_eq!(s[1].control_command(), "vtysh --vty_socket /srv/frr");
    }

    #[test]
    fn overrides_win_and_nothing_found_is_empty() {
        let t = table(vec![proc(812, "bird -s /run/bird/x.ctl")]);
        let ov = Overrides {
            bird_socket: Some("/tmp/b.ctl".into()),
            frr_dir: Some("/run/frr".into()),
        };
        let s = discover(&t, &ov, &Policy::default());
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].origin, "--bird-socket flag");
        assert_eq!(s[0].endpoint, Endpoint::BirdSocket("/tmp/b.ctl".into()));
        assert_eq!(s[1].origin, "--frr-dir flag");
        assert_eq!(s[1].control_command(), "vtysh");
        assert!(discover(&table(vec![]), &Overrides::default(), &Policy::default()).is_empty());
    }

    fn tmp_sock(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("vmpath-bgp-{tag}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    fn speaker(kind: SpeakerKind, path: &Path) -> Speaker {
        let endpoint = match kind {
            SpeakerKind::Bird => Endpoint::BirdSocket(path.to_path_buf()),
            SpeakerKind::Frr => Endpoint::FrrVty {
                bgpd: path.to_path_buf(),
                zebra: path.with_extension("zebra"),
                pathspace: None,
            },
        };
        Speaker {
            kind,
            pid: None,
            endpoint,
            origin: "test".into(),
            uid: None,
            untrusted: None,
        }
    }

    const V4: [(IpAddr, u8); 1] = [(IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 11)), 32)];

    #[test]
    fn missing_socket_is_not_found_with_a_hint() {
        let p = tmp_sock("missing");
        let e = collect(&speaker(SpeakerKind::Bird, &p), &V4, Duration::from_secs(1))
            .expect_err("no socket");
        assert_eq!(e.kind, BgpErrorKind::NotFound);
        let msg = e.to_string();
        assert!(msg.contains("BIRD control socket"), "{msg}");
        assert!(msg.contains("--bird-socket"), "{msg}");
    }

    #[test]
    fn refused_socket_is_reported() {
        let p = tmp_sock("refused");
        drop(UnixListener::bind(&p).expect("bind"));
        // The file stays, nobody listens.
        let e = collect(&speaker(SpeakerKind::Bird, &p), &V4, Duration::from_secs(1))
            .expect_err("refused");
        assert_eq!(e.kind, BgpErrorKind::Refused, "{e}");
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn silent_daemon_times_out_within_the_deadline() {
        for kind in [SpeakerKind::Bird, SpeakerKind::Frr] {
            let p = tmp_sock(&format!("silent-{kind:?}"));
            let l = UnixListener::bind(&p).expect("bind");
            let h = std::thread::spawn(move || {
                // accept and never answer; keep the connection open for a while
                let c = l.accept();
                std::thread::sleep(Duration::from_millis(600));
                drop(c);
            });
            let t0 = Instant::now();
            let e =
                collect(&speaker(kind, &p), &V4, Duration::from_millis(200)).expect_err("timeout");
            let took = t0.elapsed();
            assert_eq!(e.kind, BgpErrorKind::Timeout, "{kind:?}: {e}");
            assert!(took < Duration::from_millis(450), "{kind:?} took {took:?}");
            assert!(e.to_string().contains("200 ms"), "{e}");
            h.join().expect("join");
            let _ = std::fs::remove_file(&p);
        }
    }

    #[test]
    fn connect_times_out_when_the_backlog_is_full() {
        let p = tmp_sock("backlog");
        let l = UnixListener::bind(&p).expect("bind");
        // Shrink the backlog (listen() again on a listening socket updates it), then fill it.
        // SAFETY: listen on a socket we own.
        assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
        let dl = Deadline::after(Duration::from_millis(300));
        let mut held = Vec::new();
        let t0 = Instant::now();
        let mut last = Ok(());
        for _ in 0..64 {
            match connect_unix(&p, &dl) {
                Ok(s) => held.push(s),
                Err(e) => {
                    last = Err(e);
                    break;
                }
            }
        }
        let e = last.expect_err("backlog eventually full");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t0.elapsed() < Duration::from_millis(600));
        drop(l);
        let _ = std::fs::remove_file(&p);
    }
}
