//! Running a helper program (iptables-save, nft, vtysh) with a time limit: both pipes are
//! read with poll(2) until they close or the deadline passes, and the child is killed by its
//! pid when it overruns. Callers interpret the exit status themselves.

use crate::error::Error;
use std::io::Read;
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
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for d in ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"] {
        dirs.push(PathBuf::from(d));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| {
        std::fs::metadata(p)
            .map(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
            .unwrap_or(false)
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
    c.args(args)
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
    // Reap within the deadline; kill by pid when it overruns.
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Ok(Ran {
                    status,
                    stdout: out,
                    stderr: err,
                })
            }
            Ok(None) if Instant::now() < deadline && read.is_ok() => {
                std::thread::sleep(Duration::from_micros(200))
            }
            Ok(None) => {
                // Child::kill sends SIGKILL to this child's pid only.
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::unknown(format!(
                    "{shown}: no answer within {} ms (killed pid {})",
                    timeout.as_millis(),
                    child.id()
                )));
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::unknown(format!(
                    "{shown}: waiting for it failed: {e}"
                )));
            }
        }
    }
}

fn read_both(
    child: &mut std::process::Child,
    out: &mut Vec<u8>,
    err: &mut Vec<u8>,
    deadline: Instant,
) -> Result<(), ()> {
    use std::os::unix::io::AsRawFd;
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    let mut buf = [0u8; 65536];
    while so.is_some() || se.is_some() {
        let now = Instant::now();
        if now >= deadline {
            return Err(());
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
            return Err(());
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
