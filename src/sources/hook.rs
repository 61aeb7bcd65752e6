//! The login hook: reports one login to the daemon, then runs the rest of the login chain,
//! whatever the daemon said.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use crate::control::client::call;
use crate::control::proto::{Op, Reply};
use crate::error::{Error, Result};
use crate::lease::parse_ip;

/// Exit status when PROGRAM cannot be started: checkpassword's "temporary failure".
pub const EXEC_FAILED: u8 = 111;

/// The client address: `--ip`, else tcpserver's `$TCPREMOTEIP`, else Dovecot's `$IP`.
pub fn client_addr(flag: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    flag.map(str::to_string)
        .or_else(|| env("TCPREMOTEIP"))
        .or_else(|| env("IP"))
        .filter(|s| !s.is_empty())
}

/// Report the login. Ok(true) when a lease was granted or renewed, Ok(false) when the
/// daemon refused one (a --deny network, --users); the reason goes to stderr.
pub fn report(
    socket: &Path,
    ip: Option<String>,
    user: Option<String>,
    timeout: Duration,
) -> Result<bool> {
    let addr =
        ip.ok_or_else(|| Error::invalid("no client address: give --ip or set TCPREMOTEIP or IP"))?;
    parse_ip(&addr)?;
    let reply = call(
        socket,
        Op::Login {
            addr: addr.clone(),
            user,
        },
        timeout,
    )
    .map_err(|e| Error::Remote(e.to_string()))?;
    match reply.reply {
        Reply::Login {
            outcome, reason, ..
        } => {
            if outcome == "refused" {
                eprintln!(
                    "relaylease hook: {addr}: no lease: {}",
                    reason.unwrap_or_default()
                );
                Ok(false)
            } else {
                Ok(true)
            }
        }
        Reply::Error { error } => Err(Error::Remote(error)),
        other => Err(Error::Remote(format!("unexpected reply: {other:?}"))),
    }
}

/// Replace this process with PROGRAM (same environment and file descriptors). Returns only
/// when that fails.
pub fn exec(program: &[OsString]) -> Error {
    let Some((prog, args)) = program.split_first() else {
        return Error::invalid("no program to run");
    };
    let e = std::process::Command::new(prog).args(args).exec();
    Error::io("run", Path::new(prog), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_comes_from_the_flag_then_tcpserver_then_dovecot() {
        let env = |k: &str| match k {
            "TCPREMOTEIP" => Some("192.0.2.1".to_string()),
            "IP" => Some("192.0.2.2".to_string()),
            _ => None,
        };
        assert_eq!(
            client_addr(Some("192.0.2.9"), &env).as_deref(),
            Some("192.0.2.9")
        );
        assert_eq!(client_addr(None, &env).as_deref(), Some("192.0.2.1"));
        let dovecot = |k: &str| (k == "IP").then(|| "2001:db8::5".to_string());
        assert_eq!(client_addr(None, &dovecot).as_deref(), Some("2001:db8::5"));
        let empty = |k: &str| (k == "TCPREMOTEIP").then(String::new);
        assert_eq!(client_addr(None, &empty), None);
    }
}
