//! The real daemon under load: start and stop it on temporary paths, ask its policy service,
//! read its resource figures from /proc, and summarise latencies.
//!
//! Shared by `benches/loadgen.rs` and `benches/soak.rs`, which include it beside
//! `workload` (`#[path = "workload/daemon.rs"] mod daemon;`).
#![allow(dead_code)]

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use relaylease::control::client::call;
use relaylease::control::proto::{Op, Reply};
use relaylease::lease::now_ms;
use relaylease::store::StatsSnapshot;

pub const BIN: &str = env!("CARGO_BIN_EXE_relaylease");

pub fn tempdir() -> tempfile::TempDir {
    // On the disk, like /var/lib: fsync costs what it costs in production.
    tempfile::Builder::new()
        .prefix("relaylease-bench.")
        .tempdir_in(std::env::var_os("RELAYLEASE_BENCH_DIR").unwrap_or_else(|| "/tmp".into()))
        .expect("temporary directory")
}

pub struct Daemon {
    pub child: Child,
    pub policy: PathBuf,
    pub socket: PathBuf,
    /// Its stderr: the daemon's log.
    pub log: PathBuf,
}

impl Daemon {
    /// Start `relaylease daemon` and wait until its policy socket answers; returns the
    /// daemon and how long that took.
    pub fn start(dir: &Path, db: &Path, watch: Option<&Path>) -> (Daemon, Duration) {
        let mut extra: Vec<OsString> = Vec::new();
        if let Some(w) = watch {
            extra.push("--watch".into());
            extra.push(w.into());
        }
        Daemon::start_with(dir, db, &extra)
    }

    /// [`Daemon::start`] with more flags for `relaylease daemon`.
    pub fn start_with(dir: &Path, db: &Path, extra: &[OsString]) -> (Daemon, Duration) {
        Daemon::start_bin(Path::new(BIN), dir, db, extra)
    }

    /// [`Daemon::start_with`] of another relaylease binary (an older build to compare with).
    pub fn start_bin(bin: &Path, dir: &Path, db: &Path, extra: &[OsString]) -> (Daemon, Duration) {
        let policy = dir.join("policy.sock");
        let socket = dir.join("control.sock");
        let log = dir.join("daemon.log");
        let mut cmd = Command::new(bin);
        cmd.arg("daemon")
            .arg("--db")
            .arg(db)
            .arg("--socket")
            .arg(&socket)
            .arg("--policy")
            .arg(format!("unix:{}", policy.display()))
            .args(extra);
        let err = File::create(&log).expect("daemon log");
        let t0 = Instant::now();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start the daemon");
        let mut d = Daemon {
            child,
            policy,
            socket,
            log,
        };
        let deadline = t0 + Duration::from_secs(120);
        loop {
            if let Ok(mut c) = PolicyConn::connect(&d.policy)
                && c.ask("192.0.2.1").is_some()
            {
                break;
            }
            if let Ok(Some(st)) = d.child.try_wait() {
                let log = std::fs::read_to_string(&d.log).unwrap_or_default();
                panic!("daemon exited with {st}:\n{log}");
            }
            assert!(Instant::now() < deadline, "daemon not ready after 120 s");
            std::thread::sleep(Duration::from_millis(2));
        }
        let ready = t0.elapsed();
        (d, ready)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident and peak resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> (u64, u64) {
        let p = proc_figures(self.pid());
        (p.rss_kib, p.hwm_kib)
    }

    /// SIGTERM, and wait up to `limit`; the exit code (None when it had to be killed or
    /// died of a signal).
    pub fn stop_within(mut self, limit: Duration) -> Option<i32> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    pub fn stop(self) {
        let _ = self.stop_within(Duration::from_secs(10));
    }
}

/// What /proc tells about a process.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcFigures {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    /// Open file descriptors (entries of /proc/PID/fd).
    pub fds: u64,
    /// Threads (entries of /proc/PID/task).
    pub threads: u64,
}

/// The daemon's counters, over its control socket.
pub fn stats(socket: &Path) -> Option<StatsSnapshot> {
    match call(socket, Op::Stats, Duration::from_secs(10)) {
        Ok(r) => match r.reply {
            Reply::Stats { stats } => Some(stats),
            _ => None,
        },
        Err(_) => None,
    }
}

/// The daemon's counters once its recorder has taken the `relayed` lease uses the load saw
/// answered OK (as recorded or as lost), or after 5 s: it drains its queue every 50 ms.
pub fn stats_after_uses(socket: &Path, relayed: u64) -> Option<StatsSnapshot> {
    let t = Instant::now();
    loop {
        let s = stats(socket);
        let taken = s
            .as_ref()
            .is_some_and(|s| s.relayed_recipients + s.usage_lost >= relayed);
        if taken || t.elapsed() > Duration::from_secs(5) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn proc_figures(pid: u32) -> ProcFigures {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let count = |dir: String| {
        std::fs::read_dir(dir)
            .map(|rd| rd.count() as u64)
            .unwrap_or(0)
    };
    ProcFigures {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        fds: count(format!("/proc/{pid}/fd")),
        threads: count(format!("/proc/{pid}/task")),
    }
}

/// User and system CPU time of a process, all threads, from /proc (clock-tick resolution).
pub fn cpu_time(pid: u32) -> Duration {
    stat_cpu(format!("/proc/{pid}/stat"))
}

/// CPU time of each of a process's threads so far, summed by thread name (numbered
/// threads such as `sled-io-3` count as one name, `sled-io`).
pub fn thread_cpu(pid: u32) -> std::collections::BTreeMap<String, Duration> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for t in tasks.flatten() {
        let dir = t.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let name = comm
            .trim_end()
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .trim_end_matches('-')
            .to_string();
        *by_name.entry(name).or_insert(Duration::ZERO) += stat_cpu(dir.join("stat"));
    }
    by_name
}

/// utime + stime of a `/proc/.../stat` file.
fn stat_cpu(path: impl AsRef<Path>) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// One blocking policy connection, for latency probes.
pub struct PolicyConn {
    s: UnixStream,
    n: u64,
    buf: Vec<u8>,
}

impl PolicyConn {
    pub fn connect(path: &Path) -> std::io::Result<PolicyConn> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(PolicyConn {
            s,
            n: 0,
            buf: Vec::with_capacity(64),
        })
    }

    /// Some(true) for OK, Some(false) for DUNNO, None when the connection failed.
    pub fn ask(&mut self, client: &str) -> Option<bool> {
        self.n += 1;
        self.s
            .write_all(&crate::workload::policy_request(client, self.n))
            .ok()?;
        self.buf.clear();
        let mut chunk = [0u8; 64];
        while !self.buf.ends_with(b"\n\n") {
            let n = self.s.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Some(self.buf.starts_with(b"action=OK"))
    }

    /// Ask until the answer is OK; the time it took, or None after `limit`.
    pub fn until_ok(&mut self, client: &str, since: Instant, limit: Duration) -> Option<Duration> {
        loop {
            if self.ask(client)? {
                return Some(since.elapsed());
            }
            if since.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

/// Latencies, kept whole: percentiles are exact.
#[derive(Default)]
pub struct Dist(pub Vec<u64>);

impl Dist {
    pub fn add(&mut self, d: Duration) {
        self.0.push(d.as_nanos() as u64);
    }
    pub fn pct(&mut self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        self.0.sort_unstable();
        let i = ((self.0.len() as f64 * p) as usize).min(self.0.len() - 1);
        Duration::from_nanos(self.0[i])
    }
    pub fn show(&mut self) -> String {
        format!(
            "n={} p50={} p90={} p99={} max={}",
            self.0.len(),
            ms(self.pct(0.50)),
            ms(self.pct(0.90)),
            ms(self.pct(0.99)),
            ms(self.pct(1.0))
        )
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.3}ms", d.as_secs_f64() * 1000.0)
}

/// The current local time as syslog writes it (`Nov 22 03:09:57`), so a login is not stale.
pub fn syslog_stamp() -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let Some(tm) = relaylease::lease::local_tm(now_ms()) else {
        return String::new();
    };
    format!(
        "{} {:2} {:02}:{:02}:{:02}",
        MONTHS[tm.tm_mon as usize % 12],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}
