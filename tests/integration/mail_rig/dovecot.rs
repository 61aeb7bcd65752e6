//! A private Dovecot 2.3 (POP3 + IMAP) on loopback, and POP3/IMAP login clients.

use std::fs::{self, File};
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::unistd::Pid;

use super::journald::Journald;
use super::net::{LineSession, free_port, ipv6_loopback_available};
use super::process::{
    self, STARTUP_TIMEOUT, child_exited, find_program, log_tail, report_stop, require_file,
    stop_group, system_user, wait_for_line,
};

/// The accounts in every instance's passwd-file; all share [`PASSWORD`].
pub const USERS: [&str; 2] = ["alice", "bob"];
pub const PASSWORD: &str = "secret";

const ATTEMPTS: usize = 5;

/// Where an instance's Info lines (its logins, "starting up") go.
pub enum InfoLog<'a> {
    /// Its own file, with everything else ([`Dovecot::log_path`]).
    File,
    /// syslog, as `dovecot` (the identifier is Dovecot's `instance_name`), from inside a
    /// private journald's namespace, as on a host without a syslog daemon. Errors still go
    /// to the file.
    Journal(&'a Journald),
}

/// A running Dovecot with its own config, runtime dir, mail and log; stopped on drop.
///
/// It runs in the foreground (`dovecot -F`) as a child of the test in its own process group,
/// so drop can stop it and reap every process it forked.
pub struct Dovecot {
    dir: PathBuf,
    config: PathBuf,
    log: PathBuf,
    stderr: PathBuf,
    pop3_port: u16,
    imap_port: u16,
    child: Child,
}

impl Dovecot {
    /// Starts an instance in a new subdirectory of `dir`; panics with its log if it cannot.
    ///
    /// Returns once the master has logged "starting up", which it does only after binding
    /// every listener, so clients can connect at once. Ports that another process grabbed in
    /// the meantime are replaced by new ones a few times before giving up.
    pub fn start(dir: &Path) -> Dovecot {
        Self::start_with(dir, "")
    }

    /// Like [`Dovecot::start`], with `extra` appended to the configuration (services such
    /// as a post-login script).
    pub fn start_with(dir: &Path, extra: &str) -> Dovecot {
        Self::start_logging(dir, extra, InfoLog::File)
    }

    /// Like [`Dovecot::start_with`], with its Info lines sent where `info` says.
    pub fn start_logging(dir: &Path, extra: &str, info: InfoLog<'_>) -> Dovecot {
        process::prepare();
        let dovecot = find_program("dovecot", "dovecot-core");
        require_file("/usr/lib/dovecot/pop3-login", "dovecot-pop3d");
        require_file("/usr/lib/dovecot/imap-login", "dovecot-imapd");
        system_user("dovenull", "dovecot-core");
        system_user("dovecot", "dovecot-core");
        let (mail_uid, mail_gid) = system_user("mail", "base-passwd");

        let root = process::instance_dir(dir, "dovecot");
        let mail = root.join("mail");
        process::mkdir(&root.join("run"));
        process::mkdir(&root.join("state"));
        process::mkdir(&mail);
        process::chown(&mail, mail_uid, mail_gid);
        let users: String = USERS
            .iter()
            .map(|u| format!("{u}:{{PLAIN}}{PASSWORD}\n"))
            .collect();
        process::write_file(&root.join("users"), &users);

        let config = root.join("dovecot.conf");
        let log = root.join("dovecot.log");
        let stderr = root.join("dovecot.stderr");
        let mut last_failure = String::new();
        for _ in 0..ATTEMPTS {
            let (pop3_port, imap_port) = (free_port(), free_port());
            let mut text = config_text(&root, pop3_port, imap_port, mail_uid.as_raw()) + extra;
            let mut cmd = Command::new(&dovecot);
            if let InfoLog::Journal(j) = info {
                text += "info_log_path = syslog\nsyslog_facility = mail\ninstance_name = dovecot\n";
                j.enter(&mut cmd);
            }
            process::write_file(&config, &text);
            let child = cmd
                .arg("-F")
                .arg("-c")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(stdio_file(&stderr))
                .stderr(stdio_file(&stderr))
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", dovecot.display()));
            let mut instance = Dovecot {
                dir: root.clone(),
                config: config.clone(),
                log: log.clone(),
                stderr: stderr.clone(),
                pop3_port,
                imap_port,
                child,
            };
            match instance.wait_started(&info) {
                Ok(()) => return instance,
                Err(failure) => {
                    drop(instance);
                    if !failure.contains("Address already in use") {
                        panic!("Dovecot did not start:\n{failure}");
                    }
                    last_failure = failure;
                }
            }
        }
        panic!("Dovecot did not start after {ATTEMPTS} port choices:\n{last_failure}");
    }

    fn wait_started(&mut self, info: &InfoLog<'_>) -> Result<(), String> {
        let mut exited = false;
        let started = process::wait_until(STARTUP_TIMEOUT, || {
            exited = child_exited(&mut self.child);
            exited
                || match info {
                    InfoLog::File => process::log_has(&self.log, "starting up"),
                    InfoLog::Journal(j) => j.has("starting up"),
                }
        });
        if started && !exited {
            return Ok(());
        }
        let why = if exited { "exited" } else { "timed out" };
        Err(format!(
            "dovecot -F -c {} {why}\n{}\n{}",
            self.config.display(),
            log_tail(&self.stderr, 20),
            log_tail(&self.log, 20)
        ))
    }

    /// The file Dovecot logs everything to (`log_path` = `info_log_path`).
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
                "no Dovecot log line contains {needle:?}\n{}",
                log_tail(&self.log, 30)
            )
        })
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The instance's own directory (config, passwd-file, mail, runtime sockets, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pop3_port(&self) -> u16 {
        self.pop3_port
    }

    pub fn imap_port(&self) -> u16 {
        self.imap_port
    }
}

impl Drop for Dovecot {
    /// Stops the master's whole process group (see `process::stop_group`) and reaps it.
    fn drop(&mut self) {
        let pgid = Pid::from_raw(self.child.id() as i32);
        report_stop("Dovecot", stop_group(pgid, Some(&mut self.child)));
    }
}

fn stdio_file(path: &Path) -> File {
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

/// The complete configuration: `-c` replaces /etc/dovecot entirely, nothing is included.
///
/// - `listen`: loopback only; `::1` too when the machine has it, so IPv6 leases can be tested.
/// - `instance_name`: names the processes (`dovecot-relaylease-rig-PORT/log`), so a leftover
///   is easy to attribute.
/// - `base_dir`, `state_dir`: runtime sockets, pid file and state inside the instance dir, so
///   instances never share (or fight over) /run/dovecot or /var/lib/dovecot.
/// - `log_path` = `info_log_path`: one file with errors and the `Login: ... rip=` lines
///   relaylease follows; `auth_verbose` adds the `passwd-file(user,ip,...): Password mismatch`
///   lines of failed logins.
/// - `auth_failure_delay = 0`: Dovecot holds back a failure reply for 2 s by default; with 0 a
///   wrong password still takes up to 0.5 s (its failure queue is flushed twice a second).
/// - `disable_plaintext_auth = no`, `ssl = no`: clear-text USER/PASS and LOGIN, as the test
///   clients speak no TLS (Dovecot already counts loopback as secure; this just makes sure).
/// - `default_login_user = dovenull`, `default_internal_user = dovecot`: the unprivileged
///   accounts the Debian package creates; the master runs as root and drops to them.
/// - `first_valid_uid`/`last_valid_uid`: only the `mail` user may own mail processes (the
///   static userdb maps every user to it); Dovecot's default minimum uid of 500 would refuse it.
/// - `passdb passwd-file` with `scheme=PLAIN`: [`USERS`] with [`PASSWORD`] in clear text.
/// - `userdb static`: no system accounts needed; homes and Maildirs below `mail/`, which
///   belongs to `mail`.
/// - `pop3s`/`imaps` port 0: without them Dovecot would also try to bind 995 and 993.
/// - `anvil-auth-penalty` mode 0: turns off the auth penalty, which otherwise delays every
///   login from an address by up to 15 s after it failed once; tests fail on purpose.
fn config_text(root: &Path, pop3_port: u16, imap_port: u16, mail_uid: u32) -> String {
    let r = root.display();
    let listen = if ipv6_loopback_available() {
        "127.0.0.1, ::1"
    } else {
        "127.0.0.1"
    };
    format!(
        r#"# Written by relaylease's test rig; the settings are explained in tests/integration/mail_rig/dovecot.rs.
protocols = pop3 imap
listen = {listen}
instance_name = relaylease-rig-{pop3_port}
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
info_log_path = {r}/dovecot.log
auth_verbose = yes
auth_failure_delay = 0
disable_plaintext_auth = no
ssl = no
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = {mail_uid}
last_valid_uid = {mail_uid}
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {r}/users
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={r}/mail/%u
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"#
    )
}

/// Logs in over POP3 (`USER`/`PASS`) from source address `from`; true when `PASS` got `+OK`.
///
/// A refusal (`-ERR`) is `false`; a server-side failure (`-ERR [SYS/...]`), an unexpected
/// greeting, a timeout or a dropped connection panics, so a broken server never passes for a
/// refused login.
pub fn pop3_login(from: IpAddr, port: u16, user: &str, pass: &str) -> bool {
    let mut s = LineSession::connect("POP3", from, port);
    expect_prefix(&mut s, "+OK", "greeting");
    s.send(&format!("USER {user}"));
    expect_prefix(&mut s, "+OK", "reply to USER");
    s.send(&format!("PASS {pass}"));
    let reply = s.read_line();
    let ok = if reply.starts_with("+OK") {
        true
    } else if reply.starts_with("-ERR") && !reply.contains("[SYS/") {
        false
    } else {
        panic!("{}: unexpected reply to PASS: {reply:?}", s.describe());
    };
    s.quit("QUIT");
    ok
}

/// Logs in over IMAP (`LOGIN`) from source address `from`; true when the server said `OK`.
///
/// `NO` is `false`; `BAD`, `NO [UNAVAILABLE]`/`[SERVERBUG]` and I/O trouble panic.
pub fn imap_login(from: IpAddr, port: u16, user: &str, pass: &str) -> bool {
    let mut s = LineSession::connect("IMAP", from, port);
    expect_prefix(&mut s, "* OK", "greeting");
    s.send(&format!(
        "a1 LOGIN {} {}",
        imap_quote(user),
        imap_quote(pass)
    ));
    let lines = s.read_until(|l| l.starts_with("a1 "));
    let reply = lines.last().expect("read_until returns at least one line");
    let ok = if reply.starts_with("a1 OK") {
        true
    } else if reply.starts_with("a1 NO")
        && !reply.contains("[UNAVAILABLE]")
        && !reply.contains("[SERVERBUG]")
    {
        false
    } else {
        panic!("{}: unexpected reply to LOGIN: {reply:?}", s.describe());
    };
    s.quit("a2 LOGOUT");
    ok
}

fn expect_prefix(s: &mut LineSession, prefix: &str, what: &str) {
    let line = s.read_line();
    assert!(
        line.starts_with(prefix),
        "{}: expected {prefix:?} as {what}, got {line:?}",
        s.describe()
    );
}

fn imap_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
