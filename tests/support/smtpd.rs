//! An SMTP server that runs in the foreground (Exim's `-bdf`, Sendmail's `-bD`) on a free
//! loopback port, and the swaks client that asks it for one recipient.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::unistd::Pid;

use super::net::free_port;
use super::postfix::MAIL_FROM;
use super::process::{self, STARTUP_TIMEOUT, child_exited, log_tail, report_stop, stop_group};

const ATTEMPTS: usize = 5;

/// A running SMTP daemon in its own process group; the group is stopped on drop.
pub struct SmtpDaemon {
    what: String,
    port: u16,
    output: PathBuf,
    child: Child,
}

impl SmtpDaemon {
    /// Runs `command(port)` for a free port until the daemon accepts connections on
    /// 127.0.0.1:port; panics with its output (kept in `output`) if it exits first or does
    /// not listen within the start-up timeout. A port that another process took in the
    /// meantime ("in use" in the output) is replaced a few times.
    pub fn start(what: &str, output: &Path, mut command: impl FnMut(u16) -> Command) -> Self {
        process::prepare();
        let mut last_failure = String::new();
        for _ in 0..ATTEMPTS {
            let port = free_port();
            let out = File::create(output)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", output.display()));
            let err = out
                .try_clone()
                .unwrap_or_else(|e| panic!("cannot dup {}: {e}", output.display()));
            let mut cmd = command(port);
            cmd.stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .process_group(0);
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {what} ({cmd:?}): {e}"));
            let mut daemon = SmtpDaemon {
                what: what.to_owned(),
                port,
                output: output.to_owned(),
                child,
            };
            let mut exited = false;
            let listening = process::wait_until(STARTUP_TIMEOUT, || {
                exited = child_exited(&mut daemon.child);
                exited || TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
            });
            if listening && !exited {
                return daemon;
            }
            let why = if exited { "exited" } else { "did not listen" };
            let failure = format!("{what} {why} ({cmd:?})\n{}", log_tail(output, 30));
            drop(daemon);
            if !failure.contains("in use") {
                panic!("{failure}");
            }
            last_failure = failure;
        }
        panic!("{what} did not start after {ATTEMPTS} port choices:\n{last_failure}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the daemon wrote to stdout and stderr, for panic messages.
    pub fn output(&self) -> String {
        log_tail(&self.output, 30)
    }
}

impl Drop for SmtpDaemon {
    fn drop(&mut self) {
        let pgid = Pid::from_raw(self.child.id() as i32);
        report_stop(&self.what, stop_group(pgid, Some(&mut self.child)));
    }
}

/// The code of the reply to `RCPT TO:<to>` that swaks (Debian's) gets from source `from`
/// on 127.0.0.1:`port`, after EHLO and MAIL FROM:<[`MAIL_FROM`]>, stopping after RCPT.
///
/// swaks exits 0 when the recipient was accepted and 24 when it was refused; anything else
/// (no greeting, MAIL refused, a timeout) panics with its transcript, so a broken server
/// never passes for a refusal.
pub fn swaks_rcpt(from: IpAddr, port: u16, to: &str) -> u16 {
    assert!(
        from.is_loopback(),
        "the rig only talks to loopback, not {from}"
    );
    let out = Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args(["--local-interface", &from.to_string()])
        .args(["--from", MAIL_FROM, "--to", to])
        .args(["--helo", "client.rig.test", "--quit-after", "RCPT"])
        .args(["--timeout", "30s"])
        .stdin(Stdio::null())
        .output()
        .expect("run swaks (Debian package swaks; ./tests/run.sh installs it)");
    let transcript = String::from_utf8_lossy(&out.stdout);
    let fail = |why: &str| -> ! {
        panic!(
            "swaks from {from} to port {port}, RCPT TO:<{to}>: {why}\n{transcript}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    };
    if !matches!(out.status.code(), Some(0 | 24)) {
        fail(&format!("exit {:?}", out.status.code()));
    }
    // The reply is the first final line ("<-  250 ..." or "<** 550 ...") after the command.
    let code = transcript
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("-> RCPT TO:"))
        .skip(1)
        .filter_map(|l| l.strip_prefix("<-  ").or_else(|| l.strip_prefix("<** ")))
        .find(|l| l.as_bytes().get(3) == Some(&b' '))
        .and_then(|l| l.get(..3)?.parse().ok());
    code.unwrap_or_else(|| fail("no reply to RCPT"))
}
