//! Enter a network namespace safely: setns(CLONE_NEWNET) is per thread, so the work runs on a
//! dedicated thread that enters the namespace first and ends with it. Sockets opened there stay
//! bound to that namespace and may be used from any thread afterwards.

use crate::error::Error;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Open the network namespace at `path`: a missing one is `Error::Unknown` (it may have just
/// gone), a file that is not a network namespace is `Error::Usage` (told apart by its file
/// system: nsfs, and by the namespace type it reports).
pub fn open(path: &Path) -> Result<std::fs::File, Error> {
    let file = std::fs::File::open(path).map_err(|e| {
        Error::unknown(format!(
            "cannot open network namespace {}: {e} (check the name with `ip netns list`)",
            path.display()
        ))
    })?;
    let not_netns = |what: &str| {
        Error::usage(format!(
            "{} is not a network namespace ({what}): give a name `ip netns list` shows (a file under \
/run/netns), or /proc/PID/ns/net",
            path.display()
        ))
    };
    match nix::sys::statfs::fstatfs(&file) {
        Ok(st) if st.filesystem_type() == nix::sys::statfs::NSFS_MAGIC => {}
        Ok(_) => return Err(not_netns("not a namespace file")),
        Err(e) => {
            return Err(Error::unknown(format!(
                "cannot inspect {}: {e}",
                path.display()
            )))
        }
    }
    // SAFETY: NS_GET_NSTYPE on a descriptor we own takes no argument and returns the type.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
    if kind >= 0 && kind != libc::CLONE_NEWNET {
        return Err(not_netns("a namespace of another kind"));
    }
    Ok(file)
}

/// `NS_GET_NSTYPE` (linux/nsfs.h, `_IO(0xb7, 0x3)`): the CLONE_NEW* type of a namespace file.
const NS_GET_NSTYPE: libc::Ioctl = 0xb703;

/// Run `f` on a new thread inside the network namespace at `path` (`/run/netns/NAME`, or
/// `/proc/PID/ns/net`). Errors name the namespace and the fix.
pub fn run_in<T, F>(path: &Path, f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let file = open(path)?;
    let shown = path.display().to_string();
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            // SAFETY: setns on a descriptor we own; it changes only this thread's namespace,
            // and this thread ends when `f` returns.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                let e = std::io::Error::last_os_error();
                return Err(match e.raw_os_error() {
                    Some(libc::EPERM) => Error::privilege(format!(
                        "cannot enter network namespace {shown}: {e}: needs CAP_SYS_ADMIN (run it \
as root with its full capabilities)"
                    )),
                    Some(libc::EINVAL) => Error::usage(format!(
                        "{shown} is not a network namespace: give a name `ip netns list` shows, \
or /proc/PID/ns/net"
                    )),
                    _ => Error::unknown(format!("cannot enter network namespace {shown}: {e}")),
                });
            }
            drop(file);
            Ok(f())
        })
        .map_err(|e| {
            Error::unknown(format!(
                "cannot start a thread for namespace {}: {e}",
                path.display()
            ))
        })?
        .join()
        .map_err(|_| {
            Error::unknown(format!(
                "the work inside namespace {} panicked",
                path.display()
            ))
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_namespace_is_an_error_that_says_what_to_do() {
        let e = run_in(Path::new("/run/netns/vmpath-no-such-ns"), || 1).expect_err("missing");
        assert!(
            e.message().contains("vmpath-no-such-ns") && e.message().contains("ip netns list"),
            "{e}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_network_namespace_is_bad_usage() {
        let f = std::env::temp_dir().join(format!("vmpath-not-a-netns-{}", std::process::id()));
        std::fs::write(&f, b"").expect("temp file");
        let e = run_in(&f, || 1).expect_err("regular file");
        let _ = std::fs::remove_file(&f);
        assert!(matches!(e, Error::Usage(_)), "{e:?}");
        assert!(e.message().contains("is not a network namespace"), "{e}");
        // Another kind of namespace is no network namespace either.
        let e = open(Path::new("/proc/self/ns/uts")).expect_err("uts namespace");
        assert!(matches!(e, Error::Usage(_)), "{e:?}");
        assert!(open(Path::new("/proc/self/ns/net")).is_ok());
    }
}
