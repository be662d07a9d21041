//! Running a helper program (iptables-save, nft, vtysh) with a time limit: both pipes are
//! read with poll(2) until they close or the deadline passes, and the child is killed by its
//! pid when it overruns. Callers interpret the exit status themselves.

use crate::error::Error;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a finished child gave.
#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// `word` as one POSIX shell word: as it is when it holds only characters no shell treats
/// specially, else single-quoted (a `'` inside written as `'\''`).
pub fn sh(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The command as shown in messages: the program's base name and its arguments.
pub fn display_cmd(argv: &[String]) -> String {
    let mut v: Vec<String> = argv.to_vec();
    if let Some(first) = v.first_mut() {
        if let Some(base) = Path::new(first.as_str()).file_name() {
            *first = base.to_string_lossy().into_owned();
        }
    }
    v.join(" ")
}

/// Locate a binary in PATH, then in the sbin directories (often missing from users' PATH).
pub fn find_bin(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|d| d.is_absolute())
        .collect();
    for d in ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"] {
        dirs.push(PathBuf::from(d));
    }
    // Root runs only what only root could have put there: a root-owned executable, in a
    // root-owned directory, neither writable by group or others (a user's ~/bin is passed over).
    dirs.into_iter().map(|d| d.join(name)).find(|p| {
        std::fs::metadata(p).is_ok_and(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.is_file() && m.permissions().mode() & 0o111 != 0
        }) && super::files::safe_executable(p)
    })
}

/// Run `argv` (with extra environment) and wait at most `timeout`. Errors name the command:
/// not installed, not permitted, no answer in time (killed), or waiting failed.
pub fn run(argv: &[String], env: &[(&str, &str)], timeout: Duration) -> Result<Ran, Error> {
    let shown = display_cmd(argv);
    let Some((prog, args)) = argv.split_first() else {
        return Err(Error::unknown("empty command"));
    };
    let mut c = Command::new(prog);
    // Its own process group, so that a deadline kills whatever it started too.
    c.args(args)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().map_err(|e| {
        Error::Unknown(match e.kind() {
            std::io::ErrorKind::NotFound => format!("{shown}: not installed ({e})"),
            std::io::ErrorKind::PermissionDenied => {
                format!("{shown}: permission denied ({e}): run vmpath as root")
            }
            _ => format!("{shown}: could not start: {e}"),
        })
    })?;
    let deadline = Instant::now() + timeout;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let read = read_both(&mut child, &mut out, &mut err, deadline);
    let pid = child.id();
    match read {
        // A pipe still open at the deadline (the command, or something it started, hangs):
        // the whole group goes, even when the command itself already exited.
        Err(Overflow::Late) => {
            kill_group(&mut child);
            return Err(Error::unknown(format!(
                "{shown}: no answer within {} ms (killed pid {pid} and its process group)",
                timeout.as_millis()
            )));
        }
        Err(Overflow::TooBig) => {
            kill_group(&mut child);
            return Err(Error::unknown(format!(
                "{shown}: printed more than {} MiB (killed pid {pid})",
                MAX_OUTPUT >> 20
            )));
        }
        Ok(()) => {}
    }
    // Both pipes closed: reap within the deadline.
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Ok(Ran {
                    status,
                    stdout: out,
                    stderr: err,
                })
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(200)),
            Ok(None) => {
                kill_group(&mut child);
                return Err(Error::unknown(format!(
                    "{shown}: did not exit within {} ms (killed pid {pid} and its process group)",
                    timeout.as_millis()
                )));
            }
            Err(e) => {
                kill_group(&mut child);
                return Err(Error::unknown(format!(
                    "{shown}: waiting for it failed: {e}"
                )));
            }
        }
    }
}

/// The most a command may print (stdout and stderr together) before it is killed.
pub const MAX_OUTPUT: usize = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overflow {
    Late,
    TooBig,
}

/// SIGKILL the child's whole process group (it leads it: `process_group(0)`), then reap it.
fn kill_group(child: &mut std::process::Child) {
    if let Ok(pgid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid (a process group id we created) and a signal
        // number; no memory is involved.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn read_both(
    child: &mut std::process::Child,
    out: &mut Vec<u8>,
    err: &mut Vec<u8>,
    deadline: Instant,
) -> Result<(), Overflow> {
    use std::os::unix::io::AsRawFd;
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    let mut buf = [0u8; 65536];
    while so.is_some() || se.is_some() {
        let now = Instant::now();
        if now >= deadline {
            return Err(Overflow::Late);
        }
        if out.len() + err.len() > MAX_OUTPUT {
            return Err(Overflow::TooBig);
        }
        let ms = (deadline - now).as_millis().clamp(1, i32::MAX as u128) as i32;
        let mut fds = Vec::with_capacity(2);
        if let Some(s) = &so {
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some(s) = &se {
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: fds points to a live array of fds.len() pollfd structs owned by this frame.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Overflow::Late);
        }
        for f in fds.iter().filter(|f| f.revents != 0) {
            let is_out = so.as_ref().map(|s| s.as_raw_fd()) == Some(f.fd);
            let r = if is_out {
                so.as_mut().map(|s| s.read(&mut buf))
            } else {
                se.as_mut().map(|s| s.read(&mut buf))
            };
            match r {
                Some(Ok(0)) | Some(Err(_)) | None => {
                    if is_out {
                        so = None;
                    } else {
                        se = None;
                    }
                }
                Some(Ok(k)) => {
                    if is_out {
                        out.extend_from_slice(&buf[..k]);
                    } else {
                        err.extend_from_slice(&buf[..k]);
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn output_status_and_a_kill_at_the_deadline() {
        let r = run(
            &argv(&["sh", "-c", "echo out; echo err >&2; exit 3"]),
            &[],
            Duration::from_secs(5),
        )
        .expect("ran");
        assert_eq!(r.status.code(), Some(3));
        assert_eq!(r.stdout, b"out\n");
        assert_eq!(r.stderr, b"err\n");
        let t = Instant::now();
        let e = run(&argv(&["sleep", "5"]), &[], Duration::from_millis(200)).expect_err("killed");
        assert!(e.message().contains("no answer within 200 ms"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2));
        // A command whose child holds the pipe and outlives it: both are killed at the deadline.
        let mark = std::env::temp_dir().join(format!("vmpath-grandchild-{}", std::process::id()));
        let script = format!("sleep 30 & echo $! > {}; exit 0", mark.display());
        let e = run(
            &argv(&["sh", "-c", &script]),
            &[],
            Duration::from_millis(300),
        )
        .expect_err("grandchild holds stdout");
        assert!(e.message().contains("process group"), "{e}");
        let gc: i32 = std::fs::read_to_string(&mark)
            .expect("pid written")
            .trim()
            .parse()
            .expect("pid");
        let _ = std::fs::remove_file(&mark);
        let gone = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            // Reaped by init once killed; a zombie has no cmdline left either.
            std::fs::read(format!("/proc/{gc}/cmdline")).map_or(true, |c| c.is_empty())
        });
        assert!(gone, "grandchild {gc} survived the deadline");
        let e =
            run(&argv(&["/nonexistent/tool"]), &[], Duration::from_secs(1)).expect_err("missing");
        assert!(e.message().contains("not installed"), "{e}");
        assert!(find_bin("sh").is_some());
        assert_eq!(
            display_cmd(&argv(&["/usr/sbin/iptables-save", "-c"])),
            "iptables-save -c"
        );
    }
}
