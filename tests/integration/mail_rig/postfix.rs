//! A second, private Postfix instance on loopback, and an SMTP client that asks it to relay.
//!
//! The instance is `postfix -c CONF start` with CONF, queue, data dir and log all inside the
//! instance dir; the system's own Postfix (/etc/postfix, /var/spool/postfix) is neither used
//! nor changed, and need not be running.
//!
//! # Why no `alternate_config_directories` entry in /etc/postfix/main.cf
//! Postfix insists that a non-default `-c` directory be listed there only for its set-gid
//! programs run by an unprivileged user (`postqueue`, `postdrop`, hence `sendmail`): checked
//! on this machine, `postqueue -c CONF -p` as `nobody` fails with "unauthorized configuration
//! directory name", as root it works. `postfix start`/`stop`, the daemons and `postlog` (which
//! `postfix-script` uses to write to `maillog_file`) all run as root here, and work even with
//! /etc/postfix/main.cf absent (checked in a private mount namespace). So the rig leaves the
//! system configuration alone. A test that needs `sendmail`/`postqueue` with this instance as
//! a non-root user would need that entry.

use std::fs::{self, File};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::unistd::Pid;

use super::net::{LineSession, free_port, ipv6_loopback_available};
use super::process::{
    self, STARTUP_TIMEOUT, child_exited, find_program, log_tail, report_stop, stop_group,
    system_group, system_user, wait_for_line,
};

/// A recipient in a domain this Postfix does not handle: accepting it means relaying.
pub const REMOTE_RCPT: &str = "b@remote.example";
/// A recipient in a local domain (`mydestination`): accepted from anyone, delivered nowhere.
pub const LOCAL_RCPT: &str = "someone@rig.test";
/// The envelope sender of every rig SMTP session.
pub const MAIL_FROM: &str = "a@example.org";

const ATTEMPTS: usize = 5;

/// A running Postfix instance with its own config, queue, data dir and log; stopped on drop.
pub struct Postfix {
    dir: PathBuf,
    config_dir: PathBuf,
    log: PathBuf,
    port: u16,
    master: Pid,
}

impl Postfix {
    /// Starts an instance in a new subdirectory of `dir`; panics with its log if it cannot.
    ///
    /// `policy` is a Postfix policy endpoint such as `unix:/tmp/x/policy.sock` or
    /// `inet:127.0.0.1:10040`, consulted for every RCPT from an untrusted client. smtpd runs as
    /// user `postfix`: a unix socket must be writable by that user (e.g. mode 0666) and every
    /// directory above it searchable; the rig makes `dir` searchable, the caller must see to
    /// the socket itself. The endpoint need not exist yet: it is only contacted at RCPT time.
    ///
    /// Returns after `postfix start` reported a working master (it waits for master
    /// initialisation, including binding the SMTP port) and a probe session got the 220
    /// greeting.
    pub fn start(dir: &Path, policy: Option<&str>) -> Postfix {
        if let Some(p) = policy {
            assert!(
                !p.contains([',', '}', '{']) && !p.contains(char::is_whitespace),
                "policy endpoint {p:?} must be a single Postfix endpoint"
            );
        }
        let restrictions = match policy {
            Some(p) => contrib_relay_restrictions().replace("unix:/run/relaylease/policy.sock", p),
            None => {
                "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination".into()
            }
        };
        Postfix::start_with_restrictions(dir, &restrictions)
    }

    /// [`Postfix::start`] with this `smtpd_relay_restrictions` value.
    pub fn start_with_restrictions(dir: &Path, restrictions: &str) -> Postfix {
        Postfix::start_with_main_cf(dir, restrictions, "")
    }

    /// [`Postfix::start_with_restrictions`] with the `extra` lines of main.cf replacing the
    /// rig's settings of the same parameters (or added).
    pub fn start_with_main_cf(dir: &Path, restrictions: &str, extra: &str) -> Postfix {
        process::prepare();
        let postfix = find_program("postfix", "postfix");
        let (postfix_uid, postfix_gid) = system_user("postfix", "postfix");
        system_group("postdrop", "postfix");

        let root = process::instance_dir(dir, "postfix");
        let config_dir = root.join("conf");
        let data = root.join("data");
        process::mkdir(&config_dir);
        process::mkdir(&root.join("queue"));
        process::mkdir(&data);
        process::chown(&data, postfix_uid, postfix_gid);
        process::set_mode(&data, 0o700);
        process::write_config(
            &config_dir.join("main.cf"),
            &with_extra(&main_cf(&root, restrictions), extra),
        );
        let log = root.join("maillog");
        let start_log = root.join("postfix-start.out");

        let mut last_failure = String::new();
        for _ in 0..ATTEMPTS {
            let port = free_port();
            process::write_config(&config_dir.join("master.cf"), &master_cf(port));
            match run_postfix(&postfix, &config_dir, "start", &start_log) {
                Ok(()) => {
                    let master = adopted_master(&root).unwrap_or_else(|e| {
                        panic!("Postfix started but {e}\n{}", log_tail(&log, 20))
                    });
                    let instance = Postfix {
                        dir: root,
                        config_dir,
                        log,
                        port,
                        master,
                    };
                    instance.probe();
                    return instance;
                }
                Err(failure) => {
                    let failure = format!("{failure}\n{}", log_tail(&log, 20));
                    // Not a kill by pid: after a failed start the pid file may be stale.
                    let _ = run_postfix(&postfix, &config_dir, "stop", &start_log);
                    if !failure.contains("Address already in use") {
                        panic!("Postfix did not start:\n{failure}");
                    }
                    last_failure = failure;
                }
            }
        }
        panic!("Postfix did not start after {ATTEMPTS} port choices:\n{last_failure}");
    }

    /// Checks that smtpd actually runs (master starts it on the first connection).
    fn probe(&self) {
        let mut s = LineSession::connect("SMTP probe", IpAddr::from([127, 0, 0, 1]), self.port);
        let greeting = s.read_line();
        assert!(
            greeting.starts_with("220 "),
            "Postfix smtpd greeted with {greeting:?}\n{}",
            log_tail(&self.log, 20)
        );
        s.quit("QUIT");
    }

    /// The SMTP port smtpd listens on (127.0.0.1, and `::1` when available).
    pub fn smtp_port(&self) -> u16 {
        self.port
    }

    /// The instance's `maillog_file`.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log so far (empty if not yet written).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for a log line containing `needle`; panics with the log tail if none comes.
    pub fn wait_for_log(&self, needle: &str) -> String {
        wait_for_line(&self.log, needle, STARTUP_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "no Postfix log line contains {needle:?}\n{}",
                log_tail(&self.log, 30)
            )
        })
    }

    /// The `-c` directory holding this instance's main.cf and master.cf.
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// The instance's own directory (conf, queue, data, maillog).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Postfix {
    /// Same as `postfix -c DIR stop` (SIGTERM to the master, which terminates its process group),
    /// then kills and reaps whatever is left of that group.
    fn drop(&mut self) {
        report_stop("Postfix", stop_group(self.master, None));
    }
}

/// Runs `postfix -c CONF <command>` with output to a file (a daemonised master must not hold
/// a pipe of ours open), bounded in time.
fn run_postfix(postfix: &Path, config_dir: &Path, command: &str, out: &Path) -> Result<(), String> {
    let file =
        || File::create(out).unwrap_or_else(|e| panic!("cannot create {}: {e}", out.display()));
    let mut child = Command::new(postfix)
        .arg("-c")
        .arg(config_dir)
        .arg(command)
        .stdin(Stdio::null())
        .stdout(file())
        .stderr(file())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", postfix.display()));
    if !process::wait_until(STARTUP_TIMEOUT, || child_exited(&mut child)) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "postfix {command} timed out\n{}",
            log_tail(out, 20)
        ));
    }
    match child.wait() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!(
            "postfix -c {} {command}: {status}\n{}",
            config_dir.display(),
            log_tail(out, 20)
        )),
        Err(e) => Err(format!("cannot wait for postfix {command}: {e}")),
    }
}

/// The running master's pid, checked to be a child of this process.
///
/// The daemonised master is re-parented to the test process (a subreaper, see
/// `process::prepare`), so its pid cannot be reused by another process until the rig reaps it:
/// signalling it and its process group on drop can never hit an unrelated process.
fn adopted_master(root: &Path) -> Result<Pid, String> {
    let path = root.join("queue/pid/master.pid");
    let text =
        fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|e| format!("bad pid {text:?} in {}: {e}", path.display()))?;
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("master {pid} is gone: {e}"))?;
    let ppid = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .map(str::trim)
        .unwrap_or_default();
    if ppid != std::process::id().to_string() {
        return Err(format!(
            "master {pid} has parent {ppid}, not this test process"
        ));
    }
    Ok(Pid::from_raw(pid))
}

/// main.cf of the instance. Nothing is inherited from /etc/postfix/main.cf.
///
/// - `compatibility_level = 3.6`: the Debian default; keeps Postfix from logging backwards
///   compatibility warnings into the maillog.
/// - `queue_directory`, `data_directory`: private to the instance. The queue dir is root-owned
///   and `postfix start` creates its subdirectories (`post-install create-missing`); the data
///   dir must belong to `mail_owner`.
/// - `meta_directory = /etc/postfix`: the package's `postfix-files` and `dynamicmaps.cf` are
///   used from there, not copied into CONF (this is the compiled-in default, stated for the
///   reader).
/// - `maillog_file` + `maillog_file_prefixes`: log to a file in the instance dir through
///   `postlogd` (there is no syslog daemon to rely on); the prefix list must allow that path.
/// - `myhostname`/`mydomain`/`myorigin`: fixed names, no lookup of the machine's hostname.
/// - `mydestination = rig.test, localhost` with `local_recipient_maps =` (empty): any address
///   in those domains is accepted ([`LOCAL_RCPT`]), without needing system accounts or aliases.
/// - `alias_maps`, `alias_database` empty: no /etc/aliases lookups.
/// - `relay_domains`, `relayhost` empty: nothing is relayed by domain, so a remote recipient is
///   accepted only by a permit in `smtpd_relay_restrictions`.
/// - `inet_interfaces`, `inet_protocols`: loopback only (`[::1]` too when available).
/// - `mynetworks = 127.0.0.1/32`: only 127.0.0.1 (the rig's probe) is trusted; the 127.0.0.x
///   and `::1` sources tests connect from are strangers that must earn relaying.
/// - `smtpd_peername_lookup = no`, `smtp_dns_support_level = disabled`: no DNS, so nothing
///   waits on a resolver; clients show as `unknown[127.0.0.30]` in the log.
/// - `default_transport = discard`, `local_transport = discard`: accepted mail is thrown away,
///   nothing ever leaves the machine or lands in a mailbox.
/// - `smtpd_relay_restrictions`: with a policy endpoint, exactly the list in
///   contrib/postfix/main.cf.snippet (`permit_mynetworks, permit_sasl_authenticated`, the
///   policy service with `timeout=10s, default_action=DUNNO` so an unreachable service refuses
///   relaying instead of deferring, then `reject_unauth_destination`, which answers
///   `554 5.7.1 <...>: Relay access denied`); without one, the same list minus the policy.
/// - `biff = no`: no comsat notifications.
fn main_cf(root: &Path, restrictions: &str) -> String {
    let r = root.display();
    let (interfaces, protocols) = if ipv6_loopback_available() {
        ("127.0.0.1, [::1]", "all")
    } else {
        ("127.0.0.1", "ipv4")
    };
    format!(
        "# Written by relaylease's test rig; the settings are explained in tests/integration/mail_rig/postfix.rs.
compatibility_level = 3.6
queue_directory = {r}/queue
data_directory = {r}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {r}/maillog
maillog_file_prefixes = {r}
myhostname = rig.test
mydomain = rig.test
myorigin = rig.test
mydestination = rig.test, localhost
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
relayhost =
inet_interfaces = {interfaces}
inet_protocols = {protocols}
mynetworks = 127.0.0.1/32
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
default_transport = discard
local_transport = discard
smtpd_relay_restrictions = {restrictions}
biff = no
"
    )
}

/// `base` main.cf with the parameters `extra` sets taken out, then `extra`: Postfix warns
/// about a parameter set twice, from every program it starts.
fn with_extra(base: &str, extra: &str) -> String {
    let name = |line: &str| line.split_once('=').map(|(n, _)| n.trim().to_string());
    let replaced: Vec<String> = extra.lines().filter_map(name).collect();
    let mut out: String = base
        .lines()
        .filter(|l| l.starts_with('#') || !name(l).is_some_and(|n| replaced.contains(&n)))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(extra);
    out
}

/// The `smtpd_relay_restrictions` of contrib/postfix/main.cf.snippet, the setup relaylease
/// documents: the end-to-end suite runs exactly what administrators are told to copy.
fn contrib_relay_restrictions() -> String {
    contrib_restrictions("main.cf.snippet", "check_policy_service")
}

/// The `smtpd_relay_restrictions` value of `contrib/postfix/FILE`, which must use `word`.
pub fn contrib_restrictions(file: &str, word: &str) -> String {
    let path = format!("{}/contrib/postfix/{file}", env!("CARGO_MANIFEST_DIR"));
    let value = contrib_parameter(file, "smtpd_relay_restrictions");
    assert!(
        value.contains(word) && value.ends_with("reject_unauth_destination"),
        "{path}: unexpected smtpd_relay_restrictions: {value}"
    );
    value
}

/// The value of parameter `name` in `contrib/postfix/FILE`, continuation lines joined; panics
/// when the file does not set it.
pub fn contrib_parameter(file: &str, name: &str) -> String {
    let path = format!("{}/contrib/postfix/{file}", env!("CARGO_MANIFEST_DIR"));
    let path = path.as_str();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let start = format!("{name} =");
    let mut value = String::new();
    let mut inside = false;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix(start.as_str()) {
            inside = true;
            value.push_str(v.trim());
        } else if inside && line.starts_with(char::is_whitespace) && !line.trim().is_empty() {
            value.push(' ');
            value.push_str(line.trim());
        } else if inside {
            break;
        }
    }
    assert!(!value.is_empty(), "{path} does not set {name}");
    value
}

/// master.cf of the instance: smtpd on `port` (on every `inet_interfaces` address) and the
/// internal services a mail system needs, including `postlog` for `maillog_file`.
///
/// The chroot column is `n` everywhere: a chrooted smtpd would look for the policy socket,
/// /etc/services and resolver files inside the queue directory, which the rig does not fill.
fn master_cf(port: u16) -> String {
    format!(
        "# Written by relaylease's test rig; see tests/integration/mail_rig/postfix.rs.
{port}     inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
smtp      unix  -       -       n       -       -       smtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"
    )
}

/// A complete SMTP reply: the code and the text of its last line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    pub code: u16,
    pub text: String,
}

/// Runs EHLO, MAIL FROM:<[`MAIL_FROM`]>, RCPT TO:<`to`>, QUIT from source `from`; returns the
/// RCPT reply. Anything unexpected before RCPT (no 220, EHLO or MAIL refused) panics.
pub fn rcpt(from: IpAddr, port: u16, to: &str) -> SmtpReply {
    let mut s = LineSession::connect("SMTP", from, port);
    expect_code(&mut s, 220, "greeting");
    s.send("EHLO client.rig.test");
    expect_code(&mut s, 250, "reply to EHLO");
    s.send(&format!("MAIL FROM:<{MAIL_FROM}>"));
    expect_code(&mut s, 250, "reply to MAIL FROM");
    s.send(&format!("RCPT TO:<{to}>"));
    let reply = read_reply(&mut s);
    s.quit("QUIT");
    reply
}

/// Sends one whole message from `from`: EHLO, MAIL FROM:<`sender`>, a RCPT for each of
/// `rcpts`, DATA with a `Subject: subject` header and a line of body, QUIT. Returns the queue
/// id from Postfix's `250 2.0.0 Ok: queued as ID`. Any refusal on the way panics.
pub fn send_message(
    from: IpAddr,
    port: u16,
    sender: &str,
    rcpts: &[&str],
    subject: &str,
) -> String {
    let mut s = LineSession::connect("SMTP", from, port);
    expect_code(&mut s, 220, "greeting");
    s.send("EHLO client.rig.test");
    expect_code(&mut s, 250, "reply to EHLO");
    s.send(&format!("MAIL FROM:<{sender}>"));
    expect_code(&mut s, 250, "reply to MAIL FROM");
    for to in rcpts {
        s.send(&format!("RCPT TO:<{to}>"));
        expect_code(&mut s, 250, &format!("reply to RCPT TO:<{to}>"));
    }
    s.send("DATA");
    expect_code(&mut s, 354, "reply to DATA");
    s.send(&format!("From: <{sender}>"));
    s.send(&format!("Subject: {subject}"));
    s.send("");
    s.send("A line of body.");
    s.send(".");
    let reply = read_reply(&mut s);
    assert_eq!(
        reply.code,
        250,
        "{}: message refused: {reply:?}",
        s.describe()
    );
    let id = reply
        .text
        .rsplit_once("queued as ")
        .map(|(_, id)| id.trim().to_string())
        .unwrap_or_else(|| panic!("no queue id in {reply:?}"));
    s.quit("QUIT");
    id
}

/// Whether Postfix lets `from` relay: RCPT to [`REMOTE_RCPT`] got 250 (true) or 554 (false).
///
/// Any other reply, e.g. a 451 because the policy service failed, panics: that is a broken
/// set-up, not a refusal.
pub fn relay_allowed(from: IpAddr, port: u16) -> bool {
    let reply = rcpt(from, port, REMOTE_RCPT);
    match reply.code {
        250 => true,
        554 => false,
        _ => panic!("unexpected reply to RCPT TO:<{REMOTE_RCPT}> from {from}: {reply:?}"),
    }
}

/// [`relay_allowed`] asked by Debian's swaks, the tool an administrator tries a relay with:
/// from source `from`, to [`REMOTE_RCPT`], stopping after RCPT. swaks exits 0 when the
/// recipient was accepted and 24 when it was refused; anything else panics.
pub fn swaks_relay_allowed(from: IpAddr, port: u16) -> bool {
    let out = std::process::Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args(["--local-interface", &from.to_string()])
        .args(["--from", MAIL_FROM, "--to", REMOTE_RCPT])
        .args([
            "--helo",
            "client.rig.test",
            "--quit-after",
            "RCPT",
            "--timeout",
            "30s",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run swaks (Debian package swaks; ./tests/run.sh installs it)");
    match out.status.code() {
        Some(0) => true,
        Some(24) => false,
        other => panic!(
            "swaks from {from}: exit {other:?}\n{}",
            String::from_utf8_lossy(&out.stdout)
        ),
    }
}

/// Whether Postfix accepts mail for the local [`LOCAL_RCPT`] from `from` (250): it should for
/// every client, which tells "relaying refused" apart from "server broken".
pub fn local_delivery_accepted(from: IpAddr, port: u16) -> bool {
    let reply = rcpt(from, port, LOCAL_RCPT);
    match reply.code {
        250 => true,
        500..=599 => false,
        _ => panic!("unexpected reply to RCPT TO:<{LOCAL_RCPT}> from {from}: {reply:?}"),
    }
}

fn expect_code(s: &mut LineSession, code: u16, what: &str) {
    let reply = read_reply(s);
    assert!(
        reply.code == code,
        "{}: expected {code} as {what}, got {reply:?}",
        s.describe()
    );
}

/// Reads one possibly multi-line reply (`250-...` lines up to a `250 ...` line).
fn read_reply(s: &mut LineSession) -> SmtpReply {
    let lines = s.read_until(|l| l.len() < 4 || l.as_bytes()[3] != b'-');
    let last = lines.last().expect("read_until returns at least one line");
    let code = last
        .get(..3)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{}: not an SMTP reply: {last:?}", s.describe()));
    SmtpReply {
        code,
        text: last.get(4..).unwrap_or_default().to_owned(),
    }
}
