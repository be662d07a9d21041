//! Reading files that other processes name, as root, safely: never more than a size cap, never
//! blocking on a FIFO or a device (opened non-blocking, then only a regular file is read —
//! `/dev/null`, which Neutron's own dnsmasq command line names, reads as empty), and a file named
//! by a daemon only when that daemon could read it itself.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The largest configuration or record file read (dnsmasq conf and host files, keepalived.conf,
/// the config file, Neutron's files).
pub const MAX_TEXT: u64 = 16 << 20;

/// Read a text file of at most `max` bytes. A FIFO, socket or device other than `/dev/null` is
/// refused (by name), as is a larger file; invalid UTF-8 is replaced.
pub fn read_text(path: &Path, max: u64) -> io::Result<String> {
    read_gated(path, max, &|_| Ok(()))
}

/// Open `path`, judge the opened file (`gate`, on its own metadata: no swap between the check
/// and the read), then read it as [`read_text`] does.
fn read_gated(
    path: &Path,
    max: u64,
    gate: &dyn Fn(&Metadata) -> Result<(), String>,
) -> io::Result<String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)?;
    let md = f.metadata()?;
    gate(&md).map_err(|why| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} not read: {why}", path.display()),
        )
    })?;
    let ft = md.file_type();
    if ft.is_char_device() && md.rdev() == null_rdev() {
        return Ok(String::new());
    }
    if !ft.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file ({})", path.display(), kind(&md)),
        ));
    }
    if md.len() > max {
        return Err(too_big(path, max));
    }
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(too_big(path, max));
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// [`read_text`], but a FIFO (a pipe the operator named, as with `<(…)`) is read too, until
/// its writer closes it, at most `max` bytes and until `deadline`.
pub fn read_text_or_pipe(
    path: &Path,
    max: u64,
    deadline: std::time::Instant,
) -> io::Result<String> {
    use std::os::fd::AsRawFd;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)?;
    if !f.metadata()?.file_type().is_fifo() {
        drop(f);
        return read_text(path, max);
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match f.read(&mut chunk) {
            // End: the writer closed (a FIFO opened before its writer reads 0 too: wait for
            // one until the deadline, as the writer of `<(…)` may start late).
            Ok(0) if !buf.is_empty() => break,
            // No writer yet (poll would report a hangup at once): look again shortly.
            Ok(0) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() as u64 > max {
                    return Err(too_big(path, max));
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{}: the pipe's writer sent nothing more in time",
                    path.display()
                ),
            ));
        }
        let mut pfd = libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, 100) as i32;
        // SAFETY: one valid pollfd on a live fd owned by this frame.
        unsafe { libc::poll(&mut pfd, 1, ms) };
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn too_big(path: &Path, max: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} is larger than {} MiB", path.display(), max >> 20),
    )
}

/// The device number of /dev/null (1:3 on Linux).
fn null_rdev() -> u64 {
    libc::makedev(1, 3)
}

fn kind(md: &Metadata) -> &'static str {
    let ft = md.file_type();
    if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else if ft.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// May vmpath read `md` (a file or directory) on behalf of a daemon running as `uid`: the file
/// belongs to root or to that user, and the daemon itself could read it (a root daemon reads
/// everything). So a daemon's command line never makes root read a file its owner could not.
pub fn readable_by(md: &Metadata, uid: u32) -> Result<(), String> {
    if uid == 0 {
        return Ok(());
    }
    if md.uid() != 0 && md.uid() != uid {
        return Err(format!(
            "owned by uid {}, neither root nor the daemon's uid {uid}",
            md.uid()
        ));
    }
    let mode = md.mode();
    let (own, other) = if md.is_dir() {
        (0o500, 0o005)
    } else {
        (0o400, 0o004)
    };
    if (md.uid() == uid && mode & own == own) || mode & other == other {
        Ok(())
    } else {
        Err(format!(
            "not readable by the daemon's uid {uid} (mode {:o})",
            mode & 0o7777
        ))
    }
}

/// Read a text file that a daemon running as `uid` names (see [`readable_by`]).
pub fn read_for(path: &Path, uid: u32, max: u64) -> io::Result<String> {
    read_gated(path, max, &|md| readable_by(md, uid))
}

/// Is the file at `path` fit to be executed by root: a regular file owned by root, not
/// writable by its group or others, in a directory likewise?
pub fn safe_executable(path: &Path) -> bool {
    root_only(path, true) && path.parent().is_some_and(|d| root_only(d, false))
}

/// Is `path` (followed) a regular file (`file`) or directory owned by root that neither its
/// group nor others may write?
pub fn root_only(path: &Path, file: bool) -> bool {
    std::fs::metadata(path).is_ok_and(|m| {
        (if file { m.is_file() } else { m.is_dir() }) && m.uid() == 0 && m.mode() & 0o022 == 0
    })
}

/// What [`open_private`] does to an existing file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Writes go to its end (`O_APPEND`).
    Append,
    /// It is emptied.
    Truncate,
    /// It is left as it is (the caller locks it first).
    Keep,
}

/// Open `path` for reading and writing without following a symlink at its last component
/// (`O_NOFOLLOW`, `O_CLOEXEC`), creating it with `mode`; an existing target must be a regular
/// file, or nothing is written.
pub fn open_private(path: &Path, mode: u32, existing: Existing) -> io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true)
        .write(true)
        .create(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY);
    if existing == Existing::Append {
        o.append(true);
    }
    let f = o.open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is a symlink: refusing to write through it",
                    path.display()
                ),
            )
        } else {
            e
        }
    })?;
    let md = f.metadata()?;
    if !md.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file ({})", path.display(), kind(&md)),
        ));
    }
    if existing == Existing::Truncate {
        f.set_len(0)?;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmp(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("vmpath-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("tmp dir");
        d
    }

    #[test]
    fn dev_null_is_empty_and_devices_fifos_and_big_files_are_refused() {
        assert_eq!(read_text(Path::new("/dev/null"), 10).expect("null"), "");
        let e = read_text(Path::new("/dev/zero"), 10).expect_err("zero");
        assert!(e.to_string().contains("a device"), "{e}");
        let d = tmp("fifo");
        let fifo = d.join("f");
        let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).expect("c");
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let t = std::time::Instant::now();
        let e = read_text(&fifo, 10).expect_err("fifo");
        assert!(e.to_string().contains("a FIFO"), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        let big = d.join("big");
        std::fs::write(&big, vec![b'x'; 100]).expect("write");
        assert!(read_text(&big, 99).is_err());
        assert_eq!(read_text(&big, 100).expect("fits").len(), 100);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_daemon_names_only_what_it_could_read_itself() {
        let d = tmp("perm");
        let f = d.join("secret");
        std::fs::write(&f, "s").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let md = std::fs::metadata(&f).expect("md");
        // The test runs as some user; a 0600 file of that user is readable by it, not by uid
        // 65534 (or refused for its owner).
        assert!(readable_by(&md, 0).is_ok());
        assert!(readable_by(&md, 65534).is_err());
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let md = std::fs::metadata(&f).expect("md");
        if md.uid() == 0 {
            assert!(readable_by(&md, 65534).is_ok());
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn private_writes_refuse_symlinks_and_non_files() {
        let d = tmp("write");
        let target = d.join("target");
        std::fs::write(&target, "keep").expect("write");
        let link = d.join("link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let e = open_private(&link, 0o600, Existing::Truncate).expect_err("symlink");
        assert!(e.to_string().contains("symlink"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "keep");
        assert!(open_private(&d, 0o600, Existing::Append).is_err());
        let f = d.join("new");
        drop(open_private(&f, 0o600, Existing::Keep).expect("new"));
        assert_eq!(std::fs::metadata(&f).expect("md").mode() & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&d);
    }
}
