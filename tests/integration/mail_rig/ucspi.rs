//! ucspi-tcp's tcpserver with a tcprules cdb on loopback, and a client that reads what it set.
//!
//! qmail-style relaying is decided by tcpserver: `-x rules.cdb` sets `RELAYCLIENT` in the
//! environment of the program it runs for a matching client address. tcpserver re-opens the
//! cdb for every connection, so a test may rewrite it while the server runs.

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::unistd::Pid;

use super::net::{connect_from, free_port};
use super::process::{
    self, STARTUP_TIMEOUT, child_exited, find_program, log_tail, report_stop, stop_group,
};

const ATTEMPTS: usize = 5;
const PACKAGE: &str = "ucspi-tcp (or ucspi-tcp-ipv6)";

/// Prints `RELAYCLIENT=<value>` when the variable is set (even empty), else `unset`.
const SHOW_RELAYCLIENT: &str = r#"#!/bin/sh
if [ "${RELAYCLIENT+set}" = set ]; then
  printf 'RELAYCLIENT=%s\n' "$RELAYCLIENT"
else
  echo unset
fi
"#;

/// A running `tcpserver` on 127.0.0.1 (IPv4 only); killed on drop.
pub struct TcpServer {
    dir: PathBuf,
    port: u16,
    stderr: PathBuf,
    child: Child,
}

impl TcpServer {
    /// Starts tcpserver with rules `cdb`, running a script that reports `RELAYCLIENT`
    /// (read it with [`tcpserver_env`]).
    pub fn start(dir: &Path, cdb: &Path) -> TcpServer {
        let root = process::instance_dir(dir, "tcpserver");
        let script = root.join("show-relayclient");
        process::write_file(&script, SHOW_RELAYCLIENT);
        process::set_mode(&script, 0o755);
        let script = script.to_string_lossy().into_owned();
        Self::start_in(root, cdb, &[&script])
    }

    /// Starts tcpserver with rules `cdb`, running `program` (argv) for each connection.
    pub fn start_program(dir: &Path, cdb: &Path, program: &[&str]) -> TcpServer {
        assert!(!program.is_empty(), "tcpserver needs a program to run");
        Self::start_in(process::instance_dir(dir, "tcpserver"), cdb, program)
    }

    /// `-v` logs "status: 0/N" to stderr once listening, which is the readiness signal; `-R`,
    /// `-H` and `-l` turn off the ident and DNS lookups that would stall every connection.
    fn start_in(root: PathBuf, cdb: &Path, program: &[&str]) -> TcpServer {
        process::prepare();
        let tcpserver = find_program("tcpserver", PACKAGE);
        let stderr = root.join("tcpserver.stderr");
        let mut last_failure = String::new();
        for _ in 0..ATTEMPTS {
            let port = free_port();
            let log = std::fs::File::create(&stderr)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", stderr.display()));
            let child = Command::new(&tcpserver)
                .args(["-v", "-R", "-H", "-l", "rig.test", "-x"])
                .arg(cdb)
                .args(["127.0.0.1", &port.to_string()])
                .args(program)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", tcpserver.display()));
            let mut server = TcpServer {
                dir: root.clone(),
                port,
                stderr: stderr.clone(),
                child,
            };
            let mut exited = false;
            let ready = process::wait_until(STARTUP_TIMEOUT, || {
                exited = child_exited(&mut server.child);
                exited || process::log_has(&stderr, "status: 0/")
            });
            if ready && !exited {
                return server;
            }
            let failure = format!(
                "tcpserver on port {port} did not start\n{}",
                log_tail(&stderr, 20)
            );
            drop(server);
            if !failure.contains("address already used") {
                panic!("{failure}");
            }
            last_failure = failure;
        }
        panic!("tcpserver did not start after {ATTEMPTS} port choices:\n{last_failure}");
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// tcpserver's `-v` log: one "pid N from IP" / "ok" / "end" triple per connection.
    pub fn log_path(&self) -> &Path {
        &self.stderr
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        let pgid = Pid::from_raw(self.child.id() as i32);
        report_stop("tcpserver", stop_group(pgid, Some(&mut self.child)));
    }
}

/// Compiles tcprules(1) text into `cdb` (via a temp file beside it, renamed into place).
///
/// Example: `127.0.0.41:allow,RELAYCLIENT=""\n:allow\n`.
pub fn tcprules(cdb: &Path, rules: &str) {
    let program = find_program("tcprules", PACKAGE);
    let tmp = cdb.with_extension("tmp");
    let mut child = Command::new(&program)
        .arg(cdb)
        .arg(&tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(rules.as_bytes())
        .unwrap_or_else(|e| panic!("cannot feed tcprules: {e}"));
    let out = child.wait_with_output().expect("wait for tcprules");
    assert!(
        out.status.success(),
        "tcprules {} failed ({}) for rules {rules:?}: {}",
        cdb.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Connects to tcpserver from `from` and returns the `RELAYCLIENT` value the program saw
/// (`None` when unset). Only works with the program [`TcpServer::start`] installs.
pub fn tcpserver_env(from: IpAddr, port: u16) -> Option<String> {
    assert!(
        from.is_ipv4(),
        "the rig's tcpserver listens on 127.0.0.1 only, not {from}"
    );
    let stream = connect_from(from, port);
    let _ = stream.shutdown(Shutdown::Write);
    let mut out = String::new();
    stream
        .take(4096)
        .read_to_string(&mut out)
        .unwrap_or_else(|e| panic!("reading tcpserver output from {from}: {e}"));
    match out.trim_end_matches('\n') {
        "unset" => None,
        line => match line.strip_prefix("RELAYCLIENT=") {
            Some(value) => Some(value.to_owned()),
            None => panic!("unexpected tcpserver output for {from}: {out:?}"),
        },
    }
}
