//! Loopback networking for the rig: free ports, source-bound connections, line-based sessions.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, setsockopt, socket, sockopt};
use nix::sys::time::TimeVal;

/// Timeout for connecting and for every single read or write.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Ports are handed out from below Linux's ephemeral range (32768-60999), so the kernel never
/// gives one of them to an outgoing connection between the rig's check and the daemon's bind.
const PORT_RANGE: std::ops::Range<u32> = 20000..32000;
const MAX_LINES: usize = 200;

/// Whether `::1` can be bound here; if so, Dovecot and Postfix also listen on it.
pub fn ipv6_loopback_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok())
}

/// A port that is currently free on 127.0.0.1 (and `::1` when available).
///
/// The start point mixes in the process id so parallel test binaries walk different parts of
/// the range; a per-process counter keeps threads apart. Another process can still take the
/// port before the daemon binds it, so each component retries with a new port when its daemon
/// reports "address already in use".
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let width = PORT_RANGE.end - PORT_RANGE.start;
    let base = std::process::id().wrapping_mul(7919);
    for _ in 0..500 {
        let offset = base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % width;
        let port = u16::try_from(PORT_RANGE.start + offset).expect("range fits in u16");
        let v4_free = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok();
        let v6_free =
            !ipv6_loopback_available() || TcpListener::bind((Ipv6Addr::LOCALHOST, port)).is_ok();
        if v4_free && v6_free {
            return port;
        }
    }
    panic!("no free loopback port found in {PORT_RANGE:?}");
}

/// Connects to `port` on the loopback address of `from`'s family, with `from` as source address.
///
/// Binding before connecting is what lets one machine act as many POP3/SMTP clients
/// (127.0.0.21, 127.0.0.30, ...); std's `TcpStream::connect` cannot do it, so the socket is
/// made with nix. IPv4 sources connect to 127.0.0.1 and `::1` to `::1`. Reads and writes time
/// out after [`IO_TIMEOUT`]; so does the connect (Linux honours `SO_SNDTIMEO` for it).
pub fn connect_from(from: IpAddr, port: u16) -> TcpStream {
    assert!(
        from.is_loopback(),
        "the rig only talks to loopback, not {from}"
    );
    let (family, server) = match from {
        IpAddr::V4(_) => (AddressFamily::Inet, IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(_) => (AddressFamily::Inet6, IpAddr::V6(Ipv6Addr::LOCALHOST)),
    };
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        panic!("{what} (from {from} to {server} port {port}): {e}")
    };
    // A connect with a send timeout is not restarted after a signal handler ran (signal(7)):
    // EINTR, seen under load, means try again on a new socket.
    let mut tries = 0;
    let fd = loop {
        let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
            .unwrap_or_else(|e| fail("socket", &e));
        let timeout = TimeVal::new(IO_TIMEOUT.as_secs() as _, 0);
        setsockopt(&fd, sockopt::SendTimeout, &timeout).unwrap_or_else(|e| fail("SO_SNDTIMEO", &e));
        sock_call(libc::bind, &fd, from, 0).unwrap_or_else(|e| fail("bind", &e));
        match sock_call(libc::connect, &fd, server, port) {
            Ok(()) => break fd,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted && tries < 5 => tries += 1,
            Err(e) => fail("connect", &e),
        }
    };
    let stream = TcpStream::from(fd);
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("set read timeout");
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .expect("set write timeout");
    stream
}

/// Binds (`bind`) or connects (`connect`) `fd` to `ip:port` with libc directly: nix's typed
/// inet addresses need its `net` feature, which the crate does not enable.
fn sock_call(
    call: unsafe extern "C" fn(libc::c_int, *const libc::sockaddr, libc::socklen_t) -> libc::c_int,
    fd: &OwnedFd,
    ip: IpAddr,
    port: u16,
) -> std::io::Result<()> {
    // SAFETY: all-zero bytes are a valid sockaddr_storage (a plain C struct).
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match ip {
        IpAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
            let sin = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = port.to_be();
            sin.sin_addr.s_addr = u32::from(v4).to_be();
            std::mem::size_of::<libc::sockaddr_in>()
        }
        IpAddr::V6(v6) => {
            // SAFETY: as above.
            let sin6 = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = port.to_be();
            sin6.sin6_addr.s6_addr = v6.octets();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    let len = libc::socklen_t::try_from(len).expect("sockaddr length fits");
    // SAFETY: `storage` holds an initialised sockaddr of `len` bytes; `fd` is an open socket.
    let rc = unsafe { call(fd.as_raw_fd(), (&raw const storage).cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A CRLF line-oriented client session (POP3, IMAP, SMTP) that panics on I/O trouble.
///
/// A timeout or a closed connection means the server is broken, not that it said "no", so it
/// panics instead of letting a "login refused" assertion pass by accident.
pub(crate) struct LineSession {
    what: String,
    reader: BufReader<TcpStream>,
}

impl LineSession {
    pub(crate) fn connect(what: &str, from: IpAddr, port: u16) -> Self {
        let stream = connect_from(from, port);
        Self {
            what: format!("{what} session from {from} to port {port}"),
            reader: BufReader::new(stream),
        }
    }

    pub(crate) fn send(&mut self, line: &str) {
        let stream = self.reader.get_mut();
        stream
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("{}: cannot send {line:?}: {e}", self.what));
    }

    /// One line without its line ending.
    pub(crate) fn read_line(&mut self) -> String {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => panic!("{}: connection closed by the server", self.what),
            Ok(_) => line.trim_end_matches(['\r', '\n']).to_owned(),
            Err(e) => panic!("{}: read failed: {e}", self.what),
        }
    }

    /// Reads lines until one satisfies `last`; returns all of them. Bounded to [`MAX_LINES`].
    pub(crate) fn read_until(&mut self, last: impl Fn(&str) -> bool) -> Vec<String> {
        let mut lines = Vec::new();
        for _ in 0..MAX_LINES {
            let line = self.read_line();
            let done = last(&line);
            lines.push(line);
            if done {
                return lines;
            }
        }
        panic!("{}: no final line within {MAX_LINES} lines", self.what);
    }

    /// Sends `line` and then closes politely, ignoring errors: the interesting part is over.
    pub(crate) fn quit(mut self, line: &str) {
        let stream = self.reader.get_mut();
        let _ = stream.write_all(format!("{line}\r\n").as_bytes());
        let _ = stream.shutdown(Shutdown::Write);
        let mut rest = Vec::new();
        let _ = self.reader.take(64 * 1024).read_to_end(&mut rest);
    }

    pub(crate) fn describe(&self) -> &str {
        &self.what
    }
}
