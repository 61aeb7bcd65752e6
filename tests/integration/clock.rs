//! Steps of the system clock (issue 16), made with Debian's libfaketime in the daemon alone:
//! its wall clock is stepped through a file it rereads, its monotonic clock is left alone (as
//! a real step leaves it). A step back must not keep a lease relaying past its window; a step
//! forward ends leases early and is said once.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::daemon_harness::{self, Daemon, Env, eventually};

/// libfaketime's multi-threaded build, wherever Debian's multiarch path puts it.
fn libfaketime() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists());
    found.expect("libfaketimeMT.so.1 under /usr/lib/*/faketime (Debian's faketime package)")
}

/// The daemon's clock offset, in the file libfaketime rereads at every reading of the clock.
struct Step(PathBuf);

impl Step {
    fn set(&self, offset: &str) {
        let tmp = self.0.with_extension("tmp");
        std::fs::write(&tmp, format!("{offset}\n")).expect("write the offset");
        std::fs::rename(&tmp, &self.0).expect("replace the offset");
    }
}

fn start(env: &Env, args: &[&str]) -> (Daemon, Step) {
    let step = Step(env.path("faketime"));
    step.set("+0");
    let lib = libfaketime();
    let d = env.start_with(args, |c| {
        c.env("LD_PRELOAD", &lib)
            .env("FAKETIME_TIMESTAMP_FILE", &step.0)
            .env("FAKETIME_NO_CACHE", "1")
            .env("DONT_FAKE_MONOTONIC", "1");
    });
    (d, step)
}

fn policy(socket: &Path, addr: &str) -> Option<String> {
    let req =
        format!("request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address={addr}\n\n");
    daemon_harness::raw(socket, req.as_bytes(), 1)
        .into_iter()
        .next()
}

fn hook(env: &Env, addr: &str) {
    let o = env.run(&["hook", "--ip", addr]);
    assert_eq!(o.code, 0, "hook login {addr}: {o:?}");
}

fn warnings(d: &Daemon, what: &str) -> usize {
    d.log_text()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(what))
        .count()
}

#[test]
#[ignore = "needs Debian's faketime (tests/run.sh installs and runs it)"]
fn a_clock_stepped_back_an_hour_keeps_no_lease_relaying_past_its_window() {
    let env = Env::new();
    let sock = env.path("policy.sock");
    let window = Duration::from_secs(10);
    let (d, step) = start(
        &env,
        &[
            "--expire",
            "10s",
            "--policy",
            &format!("unix:{}", sock.display()),
        ],
    );
    hook(&env, "192.0.2.30");
    let granted = Instant::now();
    step.set("-3600");
    assert!(
        eventually(Duration::from_secs(10), || warnings(
            &d,
            "the system clock was stepped back"
        ) == 1),
        "{}",
        d.log_text()
    );
    // Still relaying: a step back shortens nothing.
    assert_eq!(policy(&sock, "192.0.2.30").as_deref(), Some("action=OK"));
    // A login after the step gets a lease too.
    hook(&env, "192.0.2.31");
    assert_eq!(policy(&sock, "192.0.2.31").as_deref(), Some("action=OK"));

    // The wall clock alone would keep it an hour longer; it ends with its window.
    let mut relayed_for = None;
    while granted.elapsed() < window + Duration::from_secs(20) {
        if policy(&sock, "192.0.2.30").as_deref() == Some("action=DUNNO") {
            relayed_for = Some(granted.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let relayed_for = relayed_for.unwrap_or_else(|| {
        panic!(
            "still relaying {:?} after a {window:?} lease, the clock stepped back: {}",
            granted.elapsed(),
            d.log_text()
        )
    });
    eprintln!("a {window:?} lease, the clock stepped back an hour: relayed for {relayed_for:?}");
    assert!(
        relayed_for >= window - Duration::from_secs(1),
        "{relayed_for:?}"
    );
    // `check` agrees, and the expiry task has ended it (a tcprules cdb would lose it too).
    assert_ne!(env.run(&["check", "192.0.2.30"]).code, 0);
    assert!(
        eventually(Duration::from_secs(5), || d
            .log_text()
            .contains("lease expired addr=192.0.2.30")),
        "{}",
        d.log_text()
    );
    assert_eq!(warnings(&d, "the system clock was stepped"), 1);
    assert!(!d.log_text().contains("ERROR"), "{}", d.log_text());
    assert_eq!(d.stop(), 0);
}

#[test]
#[ignore = "needs Debian's faketime (tests/run.sh installs and runs it)"]
fn a_clock_stepped_forward_an_hour_ends_leases_early_with_one_warning() {
    let env = Env::new();
    let sock = env.path("policy.sock");
    let (d, step) = start(&env, &["--policy", &format!("unix:{}", sock.display())]);
    hook(&env, "192.0.2.40");
    assert_eq!(policy(&sock, "192.0.2.40").as_deref(), Some("action=OK"));
    step.set("+3600");
    assert!(
        eventually(Duration::from_secs(10), || warnings(
            &d,
            "the system clock was stepped forward"
        ) >= 1),
        "{}",
        d.log_text()
    );
    // Past its wall deadline now: refused (fail closed), and ended by the expiry task.
    assert_eq!(policy(&sock, "192.0.2.40").as_deref(), Some("action=DUNNO"));
    // A login after the step relays.
    hook(&env, "192.0.2.41");
    assert_eq!(policy(&sock, "192.0.2.41").as_deref(), Some("action=OK"));
    std::thread::sleep(Duration::from_secs(3));
    let forward: Vec<String> = d
        .log_text()
        .lines()
        .filter(|l| l.contains("stepped"))
        .map(str::to_string)
        .collect();
    assert_eq!(forward.len(), 1, "one line for one step: {forward:#?}");
    assert!(forward[0].contains("step=1h"), "{}", forward[0]);
    eprintln!("{}", forward[0]);
    assert_eq!(d.stop(), 0);
}
