//! The command line's contract, run against the built binary without a lab: privileges judged
//! by capability, bad usage refused before anything is read or sent, the JSON error document,
//! output errors, and what a terminal shows. Nothing here sends a packet: the probe cases are
//! refused before sending, and run without CAP_NET_RAW where the test runs as root so that even
//! a probe that went ahead could not open a raw socket.
//!
//! Tests that need root (to drop capabilities with setpriv, or to read a gateway's state) skip
//! with a message when not root; with CI=true they fail instead.

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PORT_ID: &str = "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a51";
const SETPRIV: &str = "/usr/bin/setpriv";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vmpath")
}

fn vmpath<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run vmpath")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Root and setpriv are there; otherwise the test is skipped (a failure under CI=true).
fn can_drop_privileges(test: &str) -> bool {
    let why = if !is_root() {
        "needs root"
    } else if !Path::new(SETPRIV).exists() {
        "needs /usr/bin/setpriv (util-linux)"
    } else {
        return true;
    };
    assert!(!in_ci(), "{test} {why} (CI=true: not skipped)");
    eprintln!("skipping {test}: {why}");
    false
}

fn need_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(!in_ci(), "{test} needs root (CI=true: not skipped)");
    eprintln!("skipping {test}: needs root");
    false
}

/// `setpriv PRIV… -- vmpath ARGS…`.
fn vmpath_as(privs: &[&str], args: &[&str]) -> Output {
    Command::new(SETPRIV)
        .args(privs)
        .arg("--")
        .arg(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv")
}

/// The nobody account, with the given capabilities as ambient ones (empty: none).
fn as_nobody(caps: &str) -> Vec<String> {
    let mut v: Vec<String> = ["--reuid=65534", "--regid=65534", "--clear-groups"]
        .map(String::from)
        .to_vec();
    if !caps.is_empty() {
        v.push(format!("--inh-caps={caps}"));
        v.push(format!("--ambient-caps={caps}"));
    }
    v
}

/// `vmpath ARGS…` without CAP_NET_RAW: as root through setpriv, else as the caller (who lacks
/// it). `None` when root has no setpriv (skipped; a failure under CI=true).
fn vmpath_without_raw(test: &str, args: &[&str]) -> Option<Output> {
    if !is_root() {
        return Some(vmpath(args));
    }
    if !Path::new(SETPRIV).exists() {
        assert!(!in_ci(), "{test} needs /usr/bin/setpriv as root");
        eprintln!("skipping {test}: needs /usr/bin/setpriv as root");
        return None;
    }
    Some(vmpath_as(
        &["--inh-caps=-all", "--bounding-set=-net_raw"],
        args,
    ))
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh directory others can read (the commands run as nobody look into it).
fn temp_dir(name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let d = std::env::temp_dir().join(format!("vmpath-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The JSON error document on stdout: its kind and exit code, checked against the process's.
fn error_doc(o: &Output) -> (String, String) {
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is no JSON document ({e}): {}", stdout(o)));
    let err = &doc["error"];
    assert_eq!(err["exit_code"].as_i64(), Some(i64::from(code(o))), "{doc}");
    (
        err["kind"].as_str().unwrap_or_default().to_string(),
        err["message"].as_str().unwrap_or_default().to_string(),
    )
}

// --- 1. privileges by capability ---------------------------------------------------------------

#[test]
fn plumb_apply_as_root_without_cap_net_admin_is_refused_before_anything_is_touched() {
    if !can_drop_privileges("plumb_apply_as_root_without_cap_net_admin") {
        return;
    }
    let d = temp_dir("plumb-caps");
    let (lock, audit) = (d.join("plumb.lock"), d.join("plumb.log"));
    let o = vmpath_as(
        &["--inh-caps=-all", "--bounding-set=-net_admin"],
        &[
            "plumb",
            PORT_ID,
            "--mac",
            "fa:16:3e:00:00:01",
            "--ip",
            "198.51.100.11",
            "--apply",
            "--lock-file",
            s(&lock),
            "--audit-log",
            s(&audit),
        ],
    );
    assert_eq!(code(&o), 3, "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("CAP_NET_ADMIN"), "{}", stderr(&o));
    assert!(
        !lock.exists() && !audit.exists(),
        "refused up front: neither the lock nor the audit log is opened"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn walk_as_root_without_cap_net_admin_lacks_it() {
    if !can_drop_privileges("walk_as_root_without_cap_net_admin") {
        return;
    }
    let o = vmpath_as(
        &["--inh-caps=-all", "--bounding-set=-net_admin"],
        &["walk", "198.51.100.11"],
    );
    assert_eq!(code(&o), 3, "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("CAP_NET_ADMIN"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("needs root"), "{}", stderr(&o));
}

#[test]
fn routers_is_judged_by_capabilities_not_by_uid() {
    if !can_drop_privileges("routers_is_judged_by_capabilities") {
        return;
    }
    let d = temp_dir("routers-caps");
    let args = ["routers", "--netns-dir", s(&d), "--json"];
    // nobody with the three capabilities reads the (empty) node: no router there.
    let caps = "+sys_admin,+net_admin,+net_raw";
    let o = vmpath_as(
        &as_nobody(caps)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &args,
    );
    assert!(!stderr(&o).contains("needs root"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("CAP_"), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not a routers document ({e}): {}{}", stdout(&o), stderr(&o)));
    assert_eq!(doc["routers"], serde_json::json!([]), "{doc}");
    // Without them: exit 3, each missing capability named, and the error document.
    let o = vmpath_as(
        &as_nobody("").iter().map(String::as_str).collect::<Vec<_>>(),
        &args,
    );
    assert_eq!(code(&o), 3, "{}{}", stdout(&o), stderr(&o));
    for cap in ["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_NET_RAW"] {
        assert!(stderr(&o).contains(cap), "{cap}: {}", stderr(&o));
    }
    assert!(!stderr(&o).contains("needs root"), "{}", stderr(&o));
    let (kind, message) = error_doc(&o);
    assert_eq!(kind, "privilege");
    assert!(message.contains("CAP_SYS_ADMIN"), "{message}");
    // Only what is missing is named.
    let o = vmpath_as(
        &as_nobody("+sys_admin,+net_admin")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &["routers", "--netns-dir", s(&d)],
    );
    assert_eq!(code(&o), 3, "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("CAP_NET_RAW"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("CAP_SYS_ADMIN"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn walk_without_capabilities_names_the_capability() {
    if !can_drop_privileges("walk_without_capabilities") {
        return;
    }
    let o = vmpath_as(
        &as_nobody("").iter().map(String::as_str).collect::<Vec<_>>(),
        &["walk", "198.51.100.11", "--json"],
    );
    assert_eq!(code(&o), 3, "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("CAP_NET_ADMIN"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("needs root"), "{}", stderr(&o));
    assert_eq!(error_doc(&o).0, "privilege");
}

// --- 2. bad usage ------------------------------------------------------------------------------

#[test]
fn a_timeout_below_1ms_is_bad_usage_for_every_command() {
    let d = temp_dir("timeouts");
    let dir = s(&d);
    let commands: [&[&str]; 5] = [
        &["walk", "198.51.100.11"],
        &["plumb", "198.51.100.11"],
        &["routers", "--netns-dir", dir, "--no-wire"],
        &["router", "6a1d4f2e", "--netns-dir", dir, "--no-wire"],
        &["probe", "127.0.0.1", "--hops", "none"],
    ];
    for cmd in commands {
        for t in ["0.5ms", "0s", "0"] {
            let mut args: Vec<&str> = cmd.to_vec();
            args.extend(["--timeout", t]);
            let Some(o) = vmpath_without_raw("a_timeout_below_1ms", &args) else {
                return;
            };
            assert_eq!(code(&o), 64, "{args:?}: {}{}", stdout(&o), stderr(&o));
            assert!(
                stderr(&o).contains("--timeout") && stderr(&o).contains("500ms"),
                "{args:?}: names the option and a valid form: {}",
                stderr(&o)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn probe_refuses_port_0_and_destinations_that_are_not_one_host_before_sending() {
    for (args, says) in [
        (&["probe", "127.0.0.1", "--port", "0"][..], "--port"),
        (&["probe", "0.0.0.0"][..], "not one host"),
        (&["probe", "::"][..], "not one host"),
        (&["probe", "224.0.0.1"][..], "not one host"),
        (&["probe", "ff02::1"][..], "not one host"),
        (&["probe", "255.255.255.255"][..], "not one host"),
        (&["probe", "::ffff:0.0.0.0"][..], "not one host"),
        (
            &["probe", "127.0.0.1", "--timeout", "5s", "--max-time", "2s"][..],
            "--max-time must be at least --timeout",
        ),
        (
            &["probe", "127.0.0.1", "--max-time", "0.5ms"][..],
            "--max-time",
        ),
    ] {
        let Some(o) = vmpath_without_raw("probe_refuses", args) else {
            return;
        };
        assert_eq!(code(&o), 64, "{args:?}: {}{}", stdout(&o), stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn probe_reads_the_config_file_like_walk() {
    let d = temp_dir("config");
    let bad = d.join("bad.toml");
    std::fs::write(&bad, "no_such_key = 1\n").expect("write config");
    for args in [
        vec!["probe", "127.0.0.1", "--config", s(&bad)],
        vec!["walk", "198.51.100.11", "--config", s(&bad)],
        vec!["probe", "127.0.0.1", "--config", "/nonexistent/vmpath.toml"],
    ] {
        let Some(o) = vmpath_without_raw("probe_reads_the_config_file", &args) else {
            return;
        };
        assert_eq!(code(&o), 64, "{args:?}: {}{}", stdout(&o), stderr(&o));
        assert!(stderr(&o).contains("config"), "{args:?}: {}", stderr(&o));
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_netns_that_is_not_a_network_namespace_is_bad_usage() {
    let d = temp_dir("netns");
    let file = d.join("not-a-namespace");
    std::fs::write(&file, "").expect("write file");
    let args = ["probe", "127.0.0.1", "--netns", s(&file), "--json"];
    let Some(o) = vmpath_without_raw("a_netns_that_is_not_a_network_namespace", &args) else {
        return;
    };
    assert_eq!(code(&o), 64, "{}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("--netns") && err.contains("is not a network namespace"),
        "{err}"
    );
    assert!(
        !err.contains("needs root") && !err.contains("CAP_"),
        "{err}"
    );
    assert_eq!(error_doc(&o).0, "usage");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn json_errors_are_a_document_on_stdout_and_a_line_on_stderr() {
    // An error of the command.
    let o = vmpath(["walk", "no such target!", "--json"]);
    assert_eq!(code(&o), 64);
    let (kind, message) = error_doc(&o);
    assert_eq!(kind, "usage");
    assert!(message.contains("no such target!"), "{message}");
    assert!(stderr(&o).starts_with("vmpath walk: "), "{}", stderr(&o));
    // One found by the argument parser.
    let o = vmpath(["walk", "198.51.100.11", "--bogus-flag", "--json"]);
    assert_eq!(code(&o), 64);
    let (kind, message) = error_doc(&o);
    assert_eq!(kind, "usage");
    assert!(message.contains("--bogus-flag"), "{message}");
    assert!(stderr(&o).contains("--bogus-flag"), "{}", stderr(&o));
    // Without --json, stdout stays empty.
    let o = vmpath(["walk", "no such target!"]);
    assert_eq!(code(&o), 64);
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
    // `--json` after `--` is an argument, not the option.
    let o = vmpath(["walk", "--bogus-flag", "--", "--json"]);
    assert_eq!(code(&o), 64);
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
}

#[test]
fn the_test_hooks_are_not_part_of_the_help() {
    let o = vmpath(["plumb", "--help"]);
    assert_eq!(code(&o), 0);
    let help = stdout(&o);
    assert!(help.contains("--apply"), "{help}");
    assert!(
        !help.contains("VMPATH_PLUMB_FAIL_STEP") && !help.contains("VMPATH_PLUMB_HOLD_MS"),
        "{help}"
    );
}

// --- 4. output errors --------------------------------------------------------------------------

fn to_file(args: &[&str], path: &str) -> Output {
    let out = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open output");
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .output()
        .expect("run vmpath")
}

/// The write end of a pipe whose reader is already gone: every write fails with EPIPE.
fn widowed_pipe() -> OwnedFd {
    let (r, w) = nix::unistd::pipe().expect("pipe");
    drop(r);
    w
}

fn to_widowed_pipe(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(widowed_pipe())
        .output()
        .expect("run vmpath")
}

fn one_line_saying_cannot_write(o: &Output) {
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot write output: No space left on device"),
        "{err}"
    );
}

#[test]
fn a_full_stdout_is_one_line_on_stderr_and_exit_3() {
    for args in [&["--help"][..], &["--version"], &["walk", "--help"]] {
        let o = to_file(args, "/dev/full");
        assert_eq!(code(&o), 3, "{args:?}: {}", stderr(&o));
        one_line_saying_cannot_write(&o);
    }
    // A usage error still says what was wrong, and keeps its exit code; with --json, the
    // document that could not be written is said too.
    let o = to_file(&["probe", "0.0.0.0"], "/dev/full");
    assert_eq!(code(&o), 64, "{}", stderr(&o));
    assert!(stderr(&o).contains("not one host"), "{}", stderr(&o));
    let o = to_file(&["probe", "0.0.0.0", "--json"], "/dev/full");
    assert_eq!(code(&o), 64, "{}", stderr(&o));
    assert!(stderr(&o).contains("not one host"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot write output: No space left on device"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_reader_that_went_away_is_not_an_error() {
    for args in [&["--help"][..], &["walk", "--help"]] {
        let o = to_widowed_pipe(args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        assert!(o.stderr.is_empty(), "{args:?}: {}", stderr(&o));
    }
    let o = to_widowed_pipe(&["walk", "no such target!", "--json"]);
    assert_eq!(code(&o), 64);
    assert!(!stderr(&o).contains("cannot write"), "{}", stderr(&o));
}

#[test]
fn a_command_writing_to_a_full_or_widowed_stdout() {
    if !need_root("a_command_writing_to_a_full_or_widowed_stdout") {
        return;
    }
    let d = temp_dir("full");
    let args = [
        "routers",
        "--netns-dir",
        s(&d),
        "--no-wire",
        "--no-dump",
        "--no-bgp",
    ];
    for json in [false, true] {
        let mut a = args.to_vec();
        if json {
            a.push("--json");
        }
        let verdict = code(&to_file(&a, "/dev/null"));
        let o = to_file(&a, "/dev/full");
        assert_eq!(code(&o), 3, "{a:?}: {}", stderr(&o));
        one_line_saying_cannot_write(&o);
        // A reader that went away: quiet, and the verdict's exit code.
        let o = to_widowed_pipe(&a);
        assert!(o.stderr.is_empty(), "{a:?}: {}", stderr(&o));
        assert_eq!(code(&o), verdict, "{a:?}");
    }
    // probe's report, to the loopback address only.
    let o = to_file(
        &[
            "probe",
            "127.0.0.1",
            "--port",
            "9",
            "--flows",
            "2",
            "--hops",
            "none",
            "--timeout",
            "100ms",
        ],
        "/dev/full",
    );
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    one_line_saying_cannot_write(&o);
    let _ = std::fs::remove_dir_all(&d);
}

// --- 3. a terminal -----------------------------------------------------------------------------

/// Run vmpath with stdout and stderr on a pseudo-terminal of `cols` columns; everything it
/// wrote, `\r\n` as `\n`.
fn on_terminal(args: &[&str], cols: u16, env: &[(&str, Option<&str>)]) -> String {
    let ws = nix::pty::Winsize {
        ws_row: 40,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&ws), None).expect("openpty");
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(pty.slave.try_clone().expect("dup"))
        .stderr(pty.slave.try_clone().expect("dup"));
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd.spawn().expect("spawn vmpath");
    drop(cmd);
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "vmpath did not finish on the terminal in time"
        );
        let mut p = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid descriptor.
        let n = unsafe { libc::poll(&mut p, 1, left.as_millis().min(1000) as i32) };
        if n <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => out.extend_from_slice(&buf[..k]),
            // EIO: every holder of the terminal's other end has closed it.
            Err(_) => break,
        }
    }
    let _ = child.wait();
    String::from_utf8_lossy(&out).replace("\r\n", "\n")
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Checks with fixes, on a node with nothing to read: a BIRD socket and an OVSDB socket that do
/// not exist. Needs root (the gateway's capabilities); no packet leaves.
fn gateway_args(dir: &Path) -> Vec<String> {
    [
        "routers",
        "--netns-dir",
        s(dir),
        "--no-wire",
        "--no-dump",
        "--bird-socket",
        "/nonexistent/vmpath-test/bird.ctl",
        "--ovsdb",
        "/nonexistent/vmpath-test/db.sock",
    ]
    .map(String::from)
    .to_vec()
}

const BIRD_FIX: &str = "is bird running? pass --bird-socket PATH (bird's -s argument)";
const OVSDB_FIX: &str =
    "run as root; give the socket with --ovsdb if ovsdb-server listens elsewhere";

#[test]
fn a_terminal_of_unknown_or_tiny_width_gets_plain_lines() {
    if !need_root("a_terminal_of_unknown_or_tiny_width") {
        return;
    }
    let d = temp_dir("tty0");
    let args = gateway_args(&d);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for cols in [0, 20] {
        let out = on_terminal(&args, cols, &[("TERM", Some("xterm")), ("NO_COLOR", None)]);
        let plain = strip_ansi(&out);
        assert!(plain.contains("bgp.daemon"), "{cols} columns: {out}");
        let short: Vec<&str> = plain
            .lines()
            .filter(|l| l.trim().chars().count() == 1)
            .collect();
        assert!(
            short.is_empty(),
            "{cols} columns: one-character lines: {out}"
        );
        assert!(!plain.contains('│'), "{cols} columns: no table: {out}");
        assert!(plain.contains(BIRD_FIX), "{cols} columns: {out}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_terminal_of_80_columns_keeps_each_fix_on_one_line() {
    if !need_root("a_terminal_of_80_columns") {
        return;
    }
    let d = temp_dir("tty80");
    let args = gateway_args(&d);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = on_terminal(&args, 80, &[("TERM", Some("xterm")), ("NO_COLOR", None)]);
    let plain = strip_ansi(&out);
    assert!(plain.contains('│'), "a table on a terminal: {out}");
    assert!(out.contains("\x1b["), "colour on a terminal: {out}");
    for fix in [BIRD_FIX, OVSDB_FIX] {
        assert!(
            plain.lines().any(|l| l.contains(fix)),
            "the fix `{fix}` is not on one line: {plain}"
        );
    }
    // No table line is wider than the terminal.
    for l in plain.lines().filter(|l| l.contains('│')) {
        assert!(l.chars().count() <= 80, "wider than 80 columns: {l}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn term_dumb_and_no_color_give_no_colour() {
    if !need_root("term_dumb_and_no_color_give_no_colour") {
        return;
    }
    let d = temp_dir("ttycolour");
    let args = gateway_args(&d);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for env in [
        [("TERM", Some("dumb")), ("NO_COLOR", None)],
        [("TERM", Some("xterm")), ("NO_COLOR", Some("1"))],
    ] {
        let out = on_terminal(&args, 80, &env);
        assert!(out.contains("bgp.daemon"), "{env:?}: {out}");
        assert!(!out.contains('\x1b'), "{env:?}: ANSI escapes: {out:?}");
    }
    let _ = std::fs::remove_dir_all(&d);
}
