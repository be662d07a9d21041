//! Enter a network namespace safely: setns(CLONE_NEWNET) is per thread, so the work runs on a
//! dedicated thread that enters the namespace first and ends with it. Sockets opened there stay
//! bound to that namespace and may be used from any thread afterwards.

use crate::error::Error;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Run `f` on a new thread inside the network namespace at `path` (`/run/netns/NAME`, or
/// `/proc/PID/ns/net`). Errors name the namespace and the fix.
pub fn run_in<T, F>(path: &Path, f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let file = std::fs::File::open(path).map_err(|e| {
        Error::unknown(format!(
            "cannot open network namespace {}: {e} (check the name with `ip netns list`; needs root)",
            path.display()
        ))
    })?;
    let shown = path.display().to_string();
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            // SAFETY: setns on a descriptor we own; it changes only this thread's namespace,
            // and this thread ends when `f` returns.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(Error::unknown(format!(
                    "cannot enter network namespace {shown}: {} (needs root or CAP_SYS_ADMIN)",
                    std::io::Error::last_os_error()
                )));
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
}
