//! A small blocking client for the control socket, used by the commands, the hook and the wrapper.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::proto::{Op, Request, Response, encode, parse_response};
use crate::error::Error;

const MAX_REPLY: u64 = 1 << 30;

#[derive(Debug)]
pub enum CallError {
    /// Nothing listens on the socket (no file, or a stale one): the daemon is not running.
    NoDaemon(Error),
    /// Something answered, or the socket exists but could not be used.
    Failed(Error),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NoDaemon(e) | CallError::Failed(e) => e.fmt(f),
        }
    }
}

/// Send one request and wait for its reply, all within `timeout`.
pub fn call(socket: &Path, op: Op, timeout: Duration) -> Result<Response, CallError> {
    let start = Instant::now();
    let stream = UnixStream::connect(socket).map_err(|e| {
        let no_daemon = matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused);
        let err = Error::io("connect to", socket, e);
        if no_daemon {
            CallError::NoDaemon(err)
        } else {
            CallError::Failed(err)
        }
    })?;
    let fail = |op: &'static str| move |e| CallError::Failed(Error::io(op, socket, e));
    let left = |start: Instant| {
        timeout
            .checked_sub(start.elapsed())
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_millis(1))
    };
    stream
        .set_write_timeout(Some(left(start)))
        .map_err(fail("use"))?;
    (&stream)
        .write_all(&encode(&Request::new(op)))
        .map_err(fail("write to"))?;
    stream
        .set_read_timeout(Some(left(start)))
        .map_err(fail("use"))?;
    let mut line = Vec::new();
    // Replies can be large (a list of many leases); the daemon is trusted, the cap is a backstop.
    let mut rd = BufReader::new(&stream).take(MAX_REPLY);
    rd.read_until(b'\n', &mut line)
        .map_err(fail("read reply from"))?;
    if line.is_empty() {
        return Err(CallError::Failed(Error::Remote(format!(
            "{}: the daemon closed the connection without a reply",
            socket.display()
        ))));
    }
    parse_response(&line).map_err(|e| CallError::Failed(Error::Remote(e)))
}
