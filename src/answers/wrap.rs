//! `smtp-wrap`: asks the daemon whether tcpserver's client may relay, sets RELAYCLIENT if so,
//! and runs the SMTP server either way.

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
