//! Blocking unix-socket I/O bounded by one deadline: connect, write and read never take longer
//! than the time left (a daemon that stopped accepting makes a blocking `connect` hang once its
//! backlog is full). Shared by the BIRD, FRR, OVSDB and ovs-vswitchd clients; [`read_json_by`]
//! reads the undelimited JSON-RPC replies of the last two.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// One deadline shared by every socket operation of a collection.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: Instant,
    pub total: Duration,
}

impl Deadline {
    pub fn after(total: Duration) -> Self {
        Deadline {
            at: Instant::now() + total,
            total,
        }
    }
    /// Time left, or a TimedOut error when none.
    pub fn remaining(&self) -> io::Result<Duration> {
        let left = self.at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
        } else {
            Ok(left)
        }
    }
}

/// Connect a unix stream socket, bounded by the deadline (a daemon that stopped accepting
/// makes a blocking `connect` hang once its backlog is full). The returned stream is blocking;
/// callers set read/write timeouts from the same deadline.
pub fn connect_unix(path: &Path, deadline: &Deadline) -> io::Result<UnixStream> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: all-zero is a valid sockaddr_un.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket path longer than {} bytes", addr.sun_path.len() - 1),
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;

    // SAFETY: plain syscall; the fd is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    loop {
        // SAFETY: addr/len describe a valid sockaddr_un.
        let rc = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_un as *const libc::sockaddr,
                len,
            )
        };
        if rc == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            // Backlog full: unix sockets do not queue the connect, retry until the deadline.
            Some(libc::EAGAIN) => {
                let left = deadline.remaining()?;
                std::thread::sleep(left.min(Duration::from_millis(2)));
            }
            Some(libc::EINPROGRESS) => {
                wait_writable(&fd, deadline)?;
                break;
            }
            _ => return Err(e),
        }
    }
    // Back to blocking mode: reads and writes use SO_RCVTIMEO/SO_SNDTIMEO.
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(UnixStream::from(fd))
}

fn wait_writable(fd: &OwnedFd, deadline: &Deadline) -> io::Result<()> {
    loop {
        let left = deadline.remaining()?;
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut p, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if rc == 0 {
            continue; // remaining() reports the timeout
        }
        let mut err: libc::c_int = 0;
        let mut l = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: err/l are valid out-parameters for SO_ERROR.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                &mut err as *mut libc::c_int as *mut libc::c_void,
                &mut l,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        if err != 0 {
            return Err(io::Error::from_raw_os_error(err));
        }
        return Ok(());
    }
}

/// Write everything before the deadline.
pub fn write_all_by(stream: &mut UnixStream, data: &[u8], deadline: &Deadline) -> io::Result<()> {
    use std::io::Write;
    let mut off = 0;
    while off < data.len() {
        stream.set_write_timeout(Some(deadline.remaining()?))?;
        match stream.write(&data[off..]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "socket closed")),
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Read once (appending to `buf`) before the deadline; EOF is an error.
pub fn read_some_by(
    stream: &mut UnixStream,
    buf: &mut Vec<u8>,
    deadline: &Deadline,
) -> io::Result<()> {
    use std::io::Read;
    let mut chunk = [0u8; 16384];
    loop {
        stream.set_read_timeout(Some(deadline.remaining()?))?;
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the daemon closed the connection",
                ))
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Why [`read_json_by`] returned no value.
#[derive(Debug)]
pub enum JsonReadError {
    /// The socket failed: `TimedOut`/`WouldBlock` when the deadline passed, `UnexpectedEof`
    /// when the daemon closed the connection before the value was whole.
    Io(io::Error),
    /// More than the cap arrived without making a whole value.
    TooLarge,
    /// The bytes are not JSON.
    Bad(serde_json::Error),
}

/// Read one whole JSON value before the deadline, at most `max` bytes. OVSDB and ovs-vswitchd's
/// unixctl server (JSON-RPC 1.0) put no delimiter and no length in front of a reply: it ends
/// where its value does, so the bytes are gathered until they parse. One request is answered
/// at a time, so nothing may follow the value.
pub fn read_json_by(
    stream: &mut UnixStream,
    deadline: &Deadline,
    max: usize,
) -> Result<serde_json::Value, JsonReadError> {
    let mut buf = Vec::new();
    loop {
        read_some_by(stream, &mut buf, deadline).map_err(JsonReadError::Io)?;
        if buf.len() > max {
            return Err(JsonReadError::TooLarge);
        }
        match serde_json::from_slice::<serde_json::Value>(&buf) {
            Ok(v) => return Ok(v),
            Err(e) if e.is_eof() => continue,
            Err(e) => return Err(JsonReadError::Bad(e)),
        }
    }
}
