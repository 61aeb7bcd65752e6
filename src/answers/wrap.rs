//! `smtp-wrap`: asks the daemon whether tcpserver's client may relay, sets RELAYCLIENT if so
//! (and TCPREMOTEINFO to the lease's user or token with the daemon's `--mark-header`), and
//! runs the SMTP server either way.

use std::path::Path;
use std::time::Duration;

use crate::control::client::call;
use crate::control::proto::{Op, Reply};

/// May `addr` relay? Anything but a clear yes from the daemon is no: fail closed.
pub fn allowed(socket: &Path, addr: Option<&str>, timeout: Duration) -> Result<bool, String> {
    let addr = addr.ok_or("TCPREMOTEIP is not set (run under tcpserver)")?;
    match call(
        socket,
        Op::Check {
            addr: addr.to_string(),
        },
        timeout,
    ) {
        Ok(resp) => match resp.reply {
            Reply::Check { allowed, .. } => Ok(allowed),
            Reply::Error { error } => Err(error),
            other => Err(format!("unexpected reply: {other:?}")),
        },
        Err(e) => Err(e.to_string()),
    }
}

/// What the daemon said about tcpserver's client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    pub allowed: bool,
    /// For `TCPREMOTEINFO`: the lease's user or token (`--mark-header`).
    pub remote_info: Option<String>,
}

/// [`allowed`] as a use of the lease (the daemon records it), with the mark for
/// `TCPREMOTEINFO`. A daemon too old to know `relay` is asked `check` instead.
pub fn relay(socket: &Path, addr: Option<&str>, timeout: Duration) -> Result<Grant, String> {
    let addr = addr.ok_or("TCPREMOTEIP is not set (run under tcpserver)")?;
    let op = Op::Relay {
        addr: addr.to_string(),
    };
    match call(socket, op, timeout) {
        Ok(resp) => match resp.reply {
            Reply::Check {
                allowed,
                remote_info,
                ..
            } => Ok(Grant {
                allowed,
                remote_info: remote_info
                    .filter(|_| allowed)
                    .map(|i| crate::usage::mark::safe_text(&i)),
            }),
            Reply::Error { error } if error.contains("unknown variant `relay`") => {
                allowed(socket, Some(addr), timeout).map(|allowed| Grant {
                    allowed,
                    remote_info: None,
                })
            }
            Reply::Error { error } => Err(error),
            other => Err(format!("unexpected reply: {other:?}")),
        },
        Err(e) => Err(e.to_string()),
    }
}
