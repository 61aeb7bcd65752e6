//! An SMTP server that runs in the foreground (Exim's `-bdf`, Sendmail's `-bD`) on a free
//! loopback port, and the swaks client that asks it for one recipient.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::unistd::Pid;

use super::dovecot::{Dovecot, PASSWORD, pop3_login};
use super::net::{IO_TIMEOUT, free_port};
use super::postfix::{MAIL_FROM, REMOTE_RCPT};
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
    /// Runs `command(port)` for a free port until the daemon greets on 127.0.0.1:port with a
    /// 220 line containing `banner` (e.g. "ESMTP Exim"); panics with its output (kept in
    /// `output`) if it exits first or does not greet within the start-up timeout.
    ///
    /// Exim and Sendmail keep retrying a port that another process took in the meantime
    /// instead of exiting, so a greeting without `banner` means the port is someone else's:
    /// the daemon is stopped and started again on a new port, a few times.
    pub fn start(
        what: &str,
        banner: &str,
        output: &Path,
        mut command: impl FnMut(u16) -> Command,
    ) -> Self {
        process::prepare();
        let mut foreign = String::new();
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
            let (mut exited, mut greeting) = (false, None);
            process::wait_until(STARTUP_TIMEOUT, || {
                exited = child_exited(&mut daemon.child);
                greeting = greeting_on(port);
                exited || greeting.is_some()
            });
            match greeting {
                _ if exited => panic!("{what} exited ({cmd:?})\n{}", log_tail(output, 30)),
                Some(line) if line.contains(banner) => {
                    assert!(line.starts_with("220 "), "{what} greeted {line:?}");
                    return daemon;
                }
                Some(line) => {
                    drop(daemon);
                    foreign = line;
                }
                None => panic!(
                    "{what} did not greet on port {port} ({cmd:?})\n{}",
                    log_tail(output, 30)
                ),
            }
        }
        panic!("{what}: {ATTEMPTS} ports in a row were another server's (last: {foreign:?})");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the daemon wrote to stdout and stderr, for panic messages.
    pub fn output(&self) -> String {
        log_tail(&self.output, 30)
    }
}

/// The first line a server on 127.0.0.1:`port` sends, or `None` if nothing answers (yet).
fn greeting_on(port: u16) -> Option<String> {
    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    Some(line.trim_end().to_owned())
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

/// What every MTA recipe must do, asked with swaks: refuse relay from `who` before a real
/// POP3 login to `dovecot`, accept it after, refuse it from `failed` after a failed login
/// and from `who` once the lease's window (a few seconds in these tests) is over, and refuse
/// it again with relaylease stopped (`stop_relaylease`). Mail to `local_rcpt` is accepted
/// throughout.
pub fn relay_follows_leases(
    mta: &SmtpDaemon,
    dovecot: &Dovecot,
    local_rcpt: &str,
    (who, failed): (IpAddr, IpAddr),
    stop_relaylease: impl FnOnce(),
) {
    let port = mta.port();
    let relay = |from| swaks_rcpt(from, port, REMOTE_RCPT);
    let local = |from| swaks_rcpt(from, port, local_rcpt);
    let soon = |secs, f: &dyn Fn() -> bool| process::wait_until(Duration::from_secs(secs), f);

    assert_eq!(relay(who), 550, "before a login\n{}", mta.output());
    assert_eq!(local(who), 250);
    assert!(pop3_login(who, dovecot.pop3_port(), "alice", PASSWORD));
    assert!(soon(3, &|| relay(who) == 250), "after a real POP3 login");
    assert!(!pop3_login(failed, dovecot.pop3_port(), "alice", "wrong"));
    assert_eq!(relay(failed), 550, "after a failed login");
    assert_eq!(local(failed), 250);
    assert!(
        soon(10, &|| relay(who) == 550),
        "relay still open after expiry"
    );

    assert!(pop3_login(who, dovecot.pop3_port(), "alice", PASSWORD));
    assert!(soon(3, &|| relay(who) == 250));
    stop_relaylease();
    assert_eq!(relay(who), 550, "relay open with relaylease stopped");
    assert_eq!(local(who), 250);
}
