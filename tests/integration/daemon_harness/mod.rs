//! The daemon harness of the integration tests: a real relaylease daemon on temporary paths, and the
//! built binary run as a user would run it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_relaylease");

/// Now as rsyslog stamps a line in its RFC 5424 form (Debian 12's default):
/// `2026-11-22T03:09:57.790849+00:00`.
pub fn stamp_now() -> String {
    let now = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    format!("{}+00:00", now.trim_end_matches('Z'))
}

/// A temporary home for one daemon: database, sockets and logs.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("relaylease-test")
            .tempdir()
            .expect("temp dir");
        Env { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn db(&self) -> PathBuf {
        self.path("db")
    }

    pub fn socket(&self) -> PathBuf {
        self.path("relaylease.sock")
    }

    /// The binary with this environment's socket and database.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("RELAYLEASE_SOCKET", self.socket())
            .env("RELAYLEASE_DB", self.db())
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Out {
        Out::from(self.cmd().args(args).output().expect("run relaylease"))
    }

    /// Start `relaylease daemon ARGS` and wait until its control socket answers.
    pub fn start(&self, args: &[&str]) -> Daemon {
        self.start_with(args, |_| {})
    }

    /// [`Env::start`] with the command adjusted first (limits, environment).
    pub fn start_with(&self, args: &[&str], adjust: impl FnOnce(&mut Command)) -> Daemon {
        let log = self.path("daemon.log");
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("daemon log");
        // Only what this start writes counts: an earlier daemon's lines are in the file too.
        let before = err.metadata().map(|m| m.len()).unwrap_or(0) as usize;
        let mut cmd = self.cmd();
        cmd.arg("daemon")
            .args(args)
            .stdout(Stdio::null())
            .stderr(err);
        adjust(&mut cmd);
        let child = cmd.spawn().expect("start daemon");
        let mut d = Daemon {
            child: Some(child),
            log,
            socket: self.socket(),
        };
        d.wait_ready(before);
        d
    }
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Out {
    fn from(o: Output) -> Self {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub struct Daemon {
    pub child: Option<Child>,
    pub log: PathBuf,
    pub socket: PathBuf,
}

impl Daemon {
    fn wait_ready(&mut self, from: usize) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("daemon exited early ({status}):\n{}", self.log_text());
            }
            if self
                .log_text()
                .get(from..)
                .is_some_and(|t| t.contains("relaylease daemon ready"))
                && UnixStream::connect(&self.socket).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("daemon not ready after 20 s:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).expect("signal");
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(mut self) -> i32 {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let mut c = self.child.take().expect("child");
        wait_timeout(&mut c, Duration::from_secs(10))
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(mut self) {
        let mut c = self.child.take().expect("child");
        let _ = c.kill();
        let _ = c.wait();
    }
}

pub fn wait_timeout(c: &mut Child, limit: Duration) -> i32 {
    let start = Instant::now();
    loop {
        if let Ok(Some(s)) = c.try_wait() {
            return s.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            let _ = c.kill();
            let _ = c.wait();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Send raw bytes on a Unix socket and read what comes back until the peer closes or
/// `lines` reply lines have arrived.
pub fn raw(socket: &Path, bytes: &[u8], lines: usize) -> Vec<String> {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).expect("write");
    let mut r = BufReader::new(s);
    let mut out = Vec::new();
    for _ in 0..lines {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => out.push(line.trim_end().to_string()),
        }
    }
    out
}

/// True when the peer closed the connection within the timeout: EOF, or a reset because it
/// closed with our bytes still unread.
pub fn closed(s: &mut UnixStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

/// Make `cmd` run as the unprivileged user `nobody` (uid and gid 65534, no other groups).
/// The test must run as root; it says so loudly otherwise.
pub fn as_nobody(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test switches a child to user nobody and must run as root"
    );
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setgroups(&[]).map_err(std::io::Error::from)?;
            nix::unistd::setgid(nix::unistd::Gid::from_raw(65534)).map_err(std::io::Error::from)?;
            nix::unistd::setuid(nix::unistd::Uid::from_raw(65534)).map_err(std::io::Error::from)?;
            Ok(())
        })
    }
}

impl Env {
    /// `relaylease ARGS` run as `nobody`.
    pub fn run_as_nobody(&self, args: &[&str]) -> Out {
        let mut c = self.cmd();
        as_nobody(c.args(args));
        Out::from(c.output().expect("run relaylease as nobody"))
    }
}

/// Poll `f` until it is true or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}
