//! ovs-vswitchd asked over its unixctl control socket, as `ovs-appctl` does (never forked):
//! JSON-RPC 1.0 on a unix stream, no delimiter (`lib/jsonrpc.c`, `lib/unixctl.c`). A request is
//! `{"method": M, "params": [STRING, …], "id": N}` (every word `ovs-appctl` would pass is one
//! string); the reply `{"id": N, "result": TEXT, "error": null}` or `{"id": N, "error": TEXT}`.
//! Requests run one at a time; several can share a connection ([`Session`], [`calls`]).
//!
//! [`discover`] and the [`Session`] are the I/O edge; the replies' text is read by pure parsers:
//! [`parse_trace`] (`ofproto/trace`), [`parse_dump_flows`] (`bridge/dump-flows`, also
//! `ovs-ofctl dump-flows`), [`parse_route_lookup`], [`parse_route_show`], [`parse_tnl_neigh`],
//! [`parse_dpif_show`], [`parse_version`]. A reply is untrusted text: they never panic and do
//! linear work.
//!
//! Where the socket is: `--unixctl=PATH` (relative to the run directory, `none`: no socket), else
//! `<rundir>/ovs-vswitchd.<pid>.ctl`, with the pid from the daemon's pidfile — in the daemon's
//! own PID namespace, and the child's under `--monitor` — as `ovs-appctl` finds it. The run
//! directory is `/run/openvswitch` (`OVS_RUNDIR` in the daemon's environment overrides it).

pub mod flows;
pub mod replies;
pub mod trace;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

pub use flows::{parse_dump_flows, Flow};
pub use replies::{
    parse_dpif_show, parse_route_lookup, parse_route_show, parse_tnl_neigh, parse_version,
};
pub use trace::{parse_trace, Exits, Outcome, Pass, TableHit, TableRef, Trace, TunnelExit};

use super::deadline::{connect_unix, read_json_by, write_all_by, Deadline, JsonReadError};
use super::procs::Process;
use super::trust::Policy;
use crate::error::{Error, Result};

/// The run directory of a default Open vSwitch build (`/var/run/openvswitch`).
pub const RUNDIR: &str = "/run/openvswitch";

/// The largest reply read (a `bridge/dump-flows` of a big br-int is a few MiB).
pub const MAX_REPLY: usize = 64 << 20;

/// One ovs-vswitchd to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vswitchd {
    /// Its pid here (0 when found by its socket alone).
    pub pid: u32,
    /// Its control socket, as reachable from here (`/proc/PID/root/…` for a daemon in another
    /// mount namespace).
    pub socket: PathBuf,
    /// Why not to ask it: the process is not trusted (`collect::trust`), its socket is not its
    /// own or root's, or it has none.
    pub untrusted: Option<String>,
}

/// Where a daemon started with `args` may keep its control socket, as it names it, most likely
/// first: `--unixctl=PATH`, else `ovs-vswitchd.PID.ctl` in the run directory (where OVS puts
/// it), then in its pidfile's directory (where a daemon started with another `OVS_RUNDIR` has
/// both). `Err` says why there is none. `pid_of` reads a pidfile (a path as the daemon names
/// it); `own_pid` is the daemon's pid in its own PID namespace, used when it cannot be read.
pub fn socket_of(
    args: &[String],
    rundir: &str,
    pid_of: &dyn Fn(&str) -> Option<u32>,
    own_pid: u32,
) -> std::result::Result<Vec<String>, String> {
    let rundir = match rundir.trim_end_matches('/') {
        "" => "/",
        r => r,
    };
    let under = |p: &str| -> String {
        if p.starts_with('/') {
            p.to_string()
        } else {
            format!("{}/{p}", rundir.trim_end_matches('/'))
        }
    };
    if let Some(u) = super::procs::opt_value(args, "--unixctl", None) {
        if u == "none" {
            return Err("it was started with --unixctl=none: it has no control socket".into());
        }
        return Ok(vec![under(u)]);
    }
    // `--pidfile` takes its value only as `--pidfile=PATH` (an optional argument).
    let pidfile = args.iter().skip(1).find_map(|a| match a.as_str() {
        "--pidfile" => Some(under("ovs-vswitchd.pid")),
        _ => a.strip_prefix("--pidfile=").map(under),
    });
    let pid = pidfile.as_deref().and_then(pid_of).unwrap_or(own_pid);
    let name = format!("ovs-vswitchd.{pid}.ctl");
    let mut out = vec![under(&name)];
    if let Some((dir, _)) = pidfile.as_deref().and_then(|p| p.rsplit_once('/')) {
        let other = format!("{}/{name}", if dir.is_empty() { "" } else { dir });
        if !out.contains(&other) {
            out.push(other);
        }
    }
    Ok(out)
}

/// The ovs-vswitchd processes among `procs` (this network namespace's, from
/// `ProcTable::scan`) and their control sockets. Each is asked only when it is trusted
/// (`collect::trust`) and its socket is a socket that belongs to root or to the daemon. With no
/// such process, the one `/run/openvswitch/ovs-vswitchd.*.ctl` there is, if root's.
pub fn discover(procs: &[Process], policy: &Policy) -> Vec<Vswitchd> {
    let mut out: Vec<Vswitchd> = Vec::new();
    for p in procs.iter().filter(|p| p.name == "ovs-vswitchd") {
        let who = format!("ovs-vswitchd pid {}", p.pid);
        let uid = p.cred.as_ref().map_or(0, |c| c.uid);
        let env = environ(p.pid);
        let rundir = env
            .iter()
            .find_map(|v| v.strip_prefix("OVS_RUNDIR="))
            .unwrap_or(RUNDIR);
        let read_pid = |f: &str| super::procs::read_pid_file(&p.path(f));
        let named = socket_of(&p.args, rundir, &read_pid, own_pid(p.pid));
        let socket = match &named {
            Ok(c) => {
                let at: Vec<PathBuf> = c.iter().map(|s| p.path(s)).collect();
                at.iter()
                    .find(|s| s.exists())
                    .or(at.first())
                    .cloned()
                    .unwrap_or_default()
            }
            Err(_) => PathBuf::new(),
        };
        if out
            .iter()
            .any(|v| v.socket == socket && !socket.as_os_str().is_empty())
        {
            continue;
        }
        let untrusted = match (super::trust::judge(p, policy), &named) {
            (Err(why), _) => Some(why),
            (Ok(()), Err(why)) => Some(format!("{who}: {why}")),
            (Ok(()), Ok(_)) => socket_refused(&socket, uid).map(|why| format!("{who}: {why}")),
        };
        out.push(Vswitchd {
            pid: p.pid,
            socket,
            untrusted,
        });
    }
    if out.is_empty() {
        out.extend(lone_socket(Path::new(RUNDIR)));
    }
    out
}

/// Why a control socket may not be used: missing, not a socket, or owned by neither root nor
/// the daemon's uid.
fn socket_refused(socket: &Path, uid: u32) -> Option<String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let shown = socket.display();
    match std::fs::metadata(socket) {
        Err(e) => Some(format!("no control socket at {shown} ({e})")),
        Ok(md) if !md.file_type().is_socket() => Some(format!("{shown} is not a socket")),
        Ok(md) if md.uid() != 0 && md.uid() != uid => Some(format!(
            "{shown} belongs to uid {}, neither root nor ovs-vswitchd's uid {uid}",
            md.uid()
        )),
        Ok(_) => None,
    }
}

/// The one `ovs-vswitchd.PID.ctl` socket of `dir`, when there is exactly one and root owns it.
fn lone_socket(dir: &Path) -> Option<Vswitchd> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).ok()?.take(4096).flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name
            .strip_prefix("ovs-vswitchd.")
            .and_then(|r| r.strip_suffix(".ctl"))
        {
            found.push((pid.parse().unwrap_or(0), e.path()));
        }
    }
    let [(pid, socket)] = <[(u32, PathBuf); 1]>::try_from(found).ok()?;
    socket_refused(&socket, 0).is_none().then_some(Vswitchd {
        pid,
        socket,
        untrusted: None,
    })
}

/// A process's environment (`NAME=value` strings, at most 1 MiB), empty when unreadable.
fn environ(pid: u32) -> Vec<String> {
    super::files::read_text(Path::new(&format!("/proc/{pid}/environ")), 1 << 20)
        .map(|e| {
            e.split('\0')
                .filter(|v| !v.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// A process's pid in its own PID namespace (the last of `NSpid:`), else `pid`.
fn own_pid(pid: u32) -> u32 {
    super::files::read_text(Path::new(&format!("/proc/{pid}/status")), 1 << 16)
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("NSpid:"))?
                .split_whitespace()
                .last()?
                .parse()
                .ok()
        })
        .unwrap_or(pid)
}

/// What the daemon answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `result`: the command's output.
    Ok(String),
    /// `error`: why the command failed (`nosuchbr: unknown bridge`), final newline removed.
    Error(String),
}

/// The request for `method` with `params`, numbered `id`.
pub fn request(method: &str, params: &[&str], id: u64) -> Value {
    json!({"method": method, "params": params, "id": id})
}

/// Read a reply (to request `id`). `Err` when it is no JSON-RPC reply to it.
pub fn parse_reply(v: &Value, id: u64) -> std::result::Result<Reply, String> {
    let text = |x: &Value| match x.as_str() {
        Some(s) => s.to_string(),
        None => x.to_string(),
    };
    if !v.is_object() {
        return Err("not a JSON object".into());
    }
    match v.get("id") {
        Some(got) if got.as_u64() != Some(id) => {
            return Err(format!("the reply is to request {got}, not {id}"))
        }
        None => return Err("no id: not a reply".into()),
        _ => {}
    }
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        return Ok(Reply::Error(text(e).trim_end().to_string()));
    }
    match v.get("result") {
        Some(r) if !r.is_null() => Ok(Reply::Ok(text(r))),
        _ => Err("neither a result nor an error".into()),
    }
}

/// One connection to an ovs-vswitchd, its requests bounded by one deadline.
pub struct Session {
    stream: UnixStream,
    socket: PathBuf,
    deadline: Deadline,
    next_id: u64,
    /// Set when a request failed on the wire: the connection is not used again.
    broken: Option<Error>,
}

impl Session {
    /// Connect to the control socket before the deadline.
    pub fn connect(socket: &Path, deadline: &Deadline) -> Result<Session> {
        let shown = socket.display();
        let stream = connect_unix(socket, deadline).map_err(|e| {
            use std::io::ErrorKind::*;
            Error::unknown(match e.kind() {
                TimedOut | WouldBlock => format!(
                    "ovs-vswitchd {shown} did not accept the connection within {:?} (a hung \
                     daemon: see its log, or retry with a longer --timeout)",
                    deadline.total
                ),
                PermissionDenied => format!(
                    "cannot connect to ovs-vswitchd at {shown}: permission denied (its control \
                     socket is root's: run vmpath as root)"
                ),
                NotFound => {
                    format!("no ovs-vswitchd control socket at {shown}: is ovs-vswitchd running?")
                }
                ConnectionRefused => format!(
                    "ovs-vswitchd {shown} refused the connection: the socket of a daemon that \
                     exited? (is ovs-vswitchd running?)"
                ),
                _ => format!("cannot connect to ovs-vswitchd at {shown}: {e}"),
            })
        })?;
        Ok(Session {
            stream,
            socket: socket.to_path_buf(),
            deadline: *deadline,
            next_id: 0,
            broken: None,
        })
    }

    /// Bound the requests from now on by a new deadline (the walk waited for another source
    /// meanwhile: that wait is not ovs-vswitchd's).
    pub fn rearm(&mut self, deadline: &Deadline) {
        self.deadline = *deadline;
    }

    /// Run one command and return what the daemon answered.
    pub fn reply(&mut self, method: &str, params: &[&str]) -> Result<Reply> {
        if let Some(e) = &self.broken {
            return Err(e.clone().map(|m| format!("{method} not asked: {m}")));
        }
        let r = self.exchange(method, params);
        if let Err(e) = &r {
            self.broken = Some(e.clone());
        }
        r
    }

    /// Run one command: its output, or an error naming the command and what the daemon said.
    pub fn call(&mut self, method: &str, params: &[&str]) -> Result<String> {
        match self.reply(method, params)? {
            Reply::Ok(text) => Ok(text),
            Reply::Error(why) => Err(Error::unknown(format!(
                "ovs-vswitchd {}: {method} failed: {why}",
                self.socket.display()
            ))),
        }
    }

    fn exchange(&mut self, method: &str, params: &[&str]) -> Result<Reply> {
        let shown = self.socket.display();
        let id = self.next_id;
        self.next_id += 1;
        let total = self.deadline.total;
        let failed = |e: std::io::Error| {
            use std::io::ErrorKind::*;
            Error::unknown(match e.kind() {
                TimedOut | WouldBlock => format!(
                    "ovs-vswitchd {shown} did not answer {method} within {total:?} (busy or \
                     hung: retry with a longer --timeout, or see its log)"
                ),
                UnexpectedEof | BrokenPipe | ConnectionReset => format!(
                    "ovs-vswitchd {shown} closed the connection before answering {method} \
                     (did it restart? see its log)"
                ),
                _ => format!("ovs-vswitchd {shown}: {method}: {e}"),
            })
        };
        let req = request(method, params, id).to_string();
        write_all_by(&mut self.stream, req.as_bytes(), &self.deadline).map_err(failed)?;
        let v = read_json_by(&mut self.stream, &self.deadline, MAX_REPLY).map_err(|e| match e {
            JsonReadError::Io(e) => failed(e),
            JsonReadError::TooLarge => Error::unknown(format!(
                "ovs-vswitchd {shown}: the answer to {method} is larger than {} MiB",
                MAX_REPLY >> 20
            )),
            JsonReadError::Bad(e) => Error::unknown(format!(
                "ovs-vswitchd {shown}: the answer to {method} is not JSON: {e}"
            )),
        })?;
        parse_reply(&v, id).map_err(|why| {
            Error::unknown(format!(
                "ovs-vswitchd {shown}: the answer to {method} is no JSON-RPC reply: {why}"
            ))
        })
    }
}

/// Run one command on the ovs-vswitchd at `socket` (a connection of its own).
pub fn call(socket: &Path, method: &str, params: &[&str], deadline: &Deadline) -> Result<String> {
    Session::connect(socket, deadline)?.call(method, params)
}

/// Run several commands, in order, on one connection: one result each. When the connection
/// fails, that request and the ones after it get the error.
pub fn calls(
    socket: &Path,
    requests: &[(&str, &[&str])],
    deadline: &Deadline,
) -> Vec<Result<String>> {
    match Session::connect(socket, deadline) {
        Ok(mut s) => requests.iter().map(|(m, p)| s.call(m, p)).collect(),
        Err(e) => requests.iter().map(|_| Err(e.clone())).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    /// A capture of `tests/fixtures/ovs/`.
    pub(crate) fn fixture(name: &str) -> String {
        let p = format!("{}/tests/fixtures/ovs/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    /// The JSON of the `RECV` line of a wire capture.
    fn received(name: &str) -> Value {
        let w = fixture(name);
        let line = w
            .lines()
            .find_map(|l| l.strip_prefix("RECV "))
            .expect("RECV line");
        serde_json::from_str(line).expect("whole reply")
    }

    #[test]
    fn socket_paths_as_ovs_appctl_finds_them() {
        let pid = |p: &str| (p == "/run/openvswitch/ovs-vswitchd.pid").then_some(25858);
        let s = |a: &str| socket_of(&argv(a), RUNDIR, &pid, 77);
        let one = |p: &str| Ok(vec![p.to_string()]);
        // Debian's ovs-ctl: --pidfile with the default name, --monitor; the pidfile has the child.
        assert_eq!(
            s("ovs-vswitchd unix:/run/openvswitch/db.sock -vconsole:emer --mlockall --no-chdir --log-file=/var/log/openvswitch/ovs-vswitchd.log --pidfile=/run/openvswitch/ovs-vswitchd.pid --detach --monitor"),
            one("/run/openvswitch/ovs-vswitchd.25858.ctl")
        );
        assert_eq!(
            s("ovs-vswitchd --pidfile --detach"),
            one("/run/openvswitch/ovs-vswitchd.25858.ctl")
        );
        // A pidfile elsewhere that cannot be read: the daemon's own pid, in the run directory,
        // then next to the pidfile.
        assert_eq!(
            s("ovs-vswitchd --pidfile=/tmp/lab/run/vswitchd-gwA.pid"),
            Ok(vec![
                "/run/openvswitch/ovs-vswitchd.77.ctl".to_string(),
                "/tmp/lab/run/ovs-vswitchd.77.ctl".to_string()
            ])
        );
        assert_eq!(
            s("ovs-vswitchd"),
            one("/run/openvswitch/ovs-vswitchd.77.ctl")
        );
        assert_eq!(
            s("ovs-vswitchd --unixctl=/var/lib/ovs/ctl --pidfile"),
            one("/var/lib/ovs/ctl")
        );
        assert_eq!(
            s("ovs-vswitchd --unixctl ctl.sock"),
            one("/run/openvswitch/ctl.sock")
        );
        assert!(s("ovs-vswitchd --unixctl=none").is_err());
        assert_eq!(
            socket_of(
                &argv("ovs-vswitchd --pidfile=x.pid"),
                "/var/run/ovs/",
                &|_| None,
                5
            ),
            one("/var/run/ovs/ovs-vswitchd.5.ctl")
        );
        assert_eq!(
            socket_of(&argv("ovs-vswitchd --pidfile=/p"), "/", &|_| Some(9), 5),
            one("/ovs-vswitchd.9.ctl")
        );
    }

    fn process(pid: u32, args: &str, uid: u32) -> Process {
        Process {
            pid,
            name: "ovs-vswitchd".into(),
            args: argv(args),
            cred: Some(super::super::procs::Cred {
                uid,
                cap_permitted: 0,
                same_userns: true,
                exe: Some("/usr/sbin/ovs-vswitchd".into()),
                exe_safe: true,
            }),
        }
    }

    #[test]
    fn discovery_judges_the_process_and_its_socket() {
        use std::os::unix::fs::MetadataExt;
        let path = tmp_socket("discover");
        let _l = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let mine = std::fs::metadata(&path).expect("socket").uid();
        let arg = format!("ovs-vswitchd --unixctl={}", path.display());
        let none = Policy::default();
        let trusted = Policy { uids: vec![mine] };
        let found = discover(&[process(4001, &arg, mine)], &trusted);
        assert_eq!(
            found,
            [Vswitchd {
                pid: 4001,
                socket: path.clone(),
                untrusted: None
            }]
        );
        // Anyone may start a process of that name: without privileges or a trusted account it
        // is not asked.
        if mine != 0 {
            let f = discover(&[process(4001, &arg, mine)], &none);
            assert!(f[0]
                .untrusted
                .as_deref()
                .is_some_and(|w| w.contains("trusted_accounts")));
        }
        // A socket that is neither root's nor the daemon's.
        let owner = if mine == 0 {
            std::os::unix::fs::chown(&path, Some(1234), None).expect("chown");
            1234
        } else {
            mine
        };
        let f = discover(&[process(4002, &arg, 4242)], &Policy { uids: vec![4242] });
        let why = f[0].untrusted.as_deref().unwrap_or_default();
        assert!(why.contains(&format!("belongs to uid {owner}")), "{why}");
        if mine == 0 {
            std::os::unix::fs::chown(&path, Some(0), None).expect("chown");
        }
        let f = discover(&[process(4003, "ovs-vswitchd --unixctl=none", 0)], &none);
        assert!(f[0]
            .untrusted
            .as_deref()
            .is_some_and(|w| w.contains("--unixctl=none")));
        // The monitor renames itself: not an ovs-vswitchd.
        let mut monitor = process(4000, "ovs-vswitchd: monitoring pid 4001 (healthy)", 0);
        monitor.name = monitor.args[0].clone();
        let f = discover(
            &[
                monitor,
                process(4001, &arg, mine),
                process(4001, &arg, mine),
            ],
            &trusted,
        );
        assert_eq!(f.len(), 1, "{f:?}");
        // The lone socket of a run directory.
        let dir = path.parent().expect("dir");
        assert_eq!(
            lone_socket(dir),
            None,
            "s.ctl is not named like a control socket"
        );
        let named = dir.join("ovs-vswitchd.4242.ctl");
        let _n = std::os::unix::net::UnixListener::bind(&named).expect("bind");
        let lone = lone_socket(dir);
        if mine == 0 {
            assert_eq!(lone.map(|v| (v.pid, v.socket)), Some((4242, named.clone())));
        } else {
            assert_eq!(lone, None, "not root's");
        }
        let _m = std::os::unix::net::UnixListener::bind(dir.join("ovs-vswitchd.4243.ctl"))
            .expect("bind");
        assert_eq!(lone_socket(dir), None, "two of them");
    }

    #[test]
    fn replies_as_ovs_vswitchd_writes_them() {
        assert_eq!(
            parse_reply(&received("version.wire"), 0),
            Ok(Reply::Ok("ovs-vswitchd (Open vSwitch) 3.1.0\n".into()))
        );
        assert_eq!(
            parse_reply(&received("trace8.wire"), 0),
            Ok(Reply::Error(
                "Bad openflow flow syntax: in_port=nosuchport,icmp: bad value for in_port \
                 (nosuchport: invalid or unknown port for in_port)"
                    .into()
            ))
        );
        let bad = received("badcmd.wire");
        assert!(matches!(parse_reply(&bad, 0), Ok(Reply::Error(e)) if e.contains("list-commands")));
        assert!(parse_reply(&bad, 1).is_err(), "another request's reply");
        assert!(parse_reply(&json!({"id": 0}), 0).is_err());
        assert!(parse_reply(&json!([1]), 0).is_err());
        assert_eq!(
            parse_reply(&json!({"id": 0, "result": {"a": 1}, "error": null}), 0),
            Ok(Reply::Ok("{\"a\":1}".into()))
        );
        assert_eq!(
            request(
                "ofproto/trace",
                &["br-int", "in_port=1", "--ct-next", "trk,est"],
                3
            ),
            json!({"method": "ofproto/trace", "params": ["br-int", "in_port=1", "--ct-next", "trk,est"], "id": 3})
        );
    }

    fn tmp_socket(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vmpath-ovsctl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("tmp dir");
        d.join("s.ctl")
    }

    /// A fake daemon: answers each request with the given bytes (each written in two halves),
    /// then closes.
    fn serve(path: &Path, answers: Vec<Vec<u8>>) -> std::thread::JoinHandle<Vec<Value>> {
        let l = std::os::unix::net::UnixListener::bind(path).expect("bind");
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().expect("accept");
            let mut got = Vec::new();
            for a in answers {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let v = loop {
                    let n = c.read(&mut chunk).expect("read");
                    assert!(n > 0, "client closed early");
                    buf.extend_from_slice(&chunk[..n]);
                    if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                        break v;
                    }
                };
                got.push(v);
                let (x, y) = a.split_at(a.len() / 2);
                c.write_all(x).expect("write");
                std::thread::sleep(Duration::from_millis(20));
                c.write_all(y).expect("write");
            }
            got
        })
    }

    #[test]
    fn a_session_runs_requests_in_turn_on_one_connection() {
        let path = tmp_socket("session");
        let server = serve(
            &path,
            vec![
                br#"{"id":0,"result":"ovs-vswitchd (Open vSwitch) 3.1.0\n","error":null}"#.to_vec(),
                br#"{"id":1,"error":"nosuchbr: unknown bridge\n"}"#.to_vec(),
                br#"{"id":2,"result":"OK\n","error":null}"#.to_vec(),
            ],
        );
        let d = Deadline::after(Duration::from_secs(5));
        let r = calls(
            &path,
            &[
                ("version", &[][..]),
                ("ofproto/trace", &["nosuchbr", "in_port=1"][..]),
                ("tnl/neigh/show", &[][..]),
            ],
            &d,
        );
        assert_eq!(
            r[0].as_deref().ok(),
            Some("ovs-vswitchd (Open vSwitch) 3.1.0\n")
        );
        let e = r[1].as_ref().expect_err("error reply").to_string();
        assert!(
            e.contains("ofproto/trace failed: nosuchbr: unknown bridge"),
            "{e}"
        );
        assert_eq!(r[2].as_deref().ok(), Some("OK\n"));
        let sent = server.join().expect("server");
        assert_eq!(sent[1]["params"], json!(["nosuchbr", "in_port=1"]));
        assert_eq!(sent[2]["id"], json!(2));
        // Closed after the last answer: the next request says so, and the one after it is not sent.
        let path2 = tmp_socket("closed");
        let server = serve(
            &path2,
            vec![br#"{"id":0,"result":"x","error":null}"#.to_vec()],
        );
        let mut s = Session::connect(&path2, &d).expect("connect");
        assert_eq!(s.call("version", &[]).expect("first"), "x");
        server.join().expect("server");
        let e = s.call("version", &[]).expect_err("closed").to_string();
        assert!(
            e.contains("closed the connection before answering version"),
            "{e}"
        );
        let e = s.call("dpif/show", &[]).expect_err("broken").to_string();
        assert!(e.starts_with("dpif/show not asked: "), "{e}");
    }

    #[test]
    fn a_silent_or_missing_daemon_fails_in_time_and_says_what_to_do() {
        let path = tmp_socket("silent");
        let _l = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let t = Instant::now();
        let e = call(
            &path,
            "version",
            &[],
            &Deadline::after(Duration::from_millis(300)),
        )
        .expect_err("silent")
        .to_string();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(e.contains("did not answer version within 300ms"), "{e}");
        let gone = path.with_file_name("gone.ctl");
        let e = call(
            &gone,
            "version",
            &[],
            &Deadline::after(Duration::from_secs(1)),
        )
        .expect_err("missing")
        .to_string();
        assert!(e.contains("is ovs-vswitchd running?"), "{e}");
        assert_eq!(
            socket_refused(&gone, 0).map(|w| w.contains("no control socket")),
            Some(true)
        );
        let file = path.with_file_name("file");
        std::fs::write(&file, "").expect("write");
        assert!(socket_refused(&file, 0).is_some_and(|w| w.contains("not a socket")));
        use std::os::unix::fs::MetadataExt;
        let mine = std::fs::metadata(&path).expect("socket").uid();
        assert_eq!(socket_refused(&path, mine), None);
    }
}
