//! The journal source with the real thing: Debian's systemd-journald in a namespace of its
//! own (tests/integration/mail_rig/journald.rs says how), real Dovecot logging to it through syslog, the
//! daemon following it with `--journal`, and real Postfix asking the policy service.
//!
//! Without systemd as PID 1 no process has a unit, so the daemon selects Dovecot's entries by
//! `--journal-identifier dovecot` and believes them by `_EXE` (`/usr/lib/dovecot/log`) and
//! `_UID` (root), the same check that refuses `logger` and `systemd-cat`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::daemon_harness::{self as common, Env, eventually};
use crate::mail_rig::{
    Dovecot, InfoLog, Journald, PASSWORD, Postfix, connect_from, imap_login, pop3_login,
    relay_allowed,
};

fn ip(a: u8, b: u8) -> IpAddr {
    IpAddr::from([127, 0, a, b])
}

fn soon(f: impl FnMut() -> bool) -> bool {
    eventually(Duration::from_secs(10), f)
}

/// A private journald, and a Dovecot logging its logins to it.
struct Rig {
    env: Env,
    journald: Journald,
    dovecot: Dovecot,
}

fn rig() -> Rig {
    let env = Env::new();
    let journald = Journald::start(env.dir.path());
    let dovecot = Dovecot::start_logging(env.dir.path(), "", InfoLog::Journal(&journald));
    Rig {
        env,
        journald,
        dovecot,
    }
}

impl Rig {
    /// `relaylease daemon --journal --journal-identifier dovecot ARGS`, inside the namespace.
    fn daemon(&self, args: &[&str]) -> common::Daemon {
        let mut all = vec!["--journal", "--journal-identifier", "dovecot"];
        all.extend_from_slice(args);
        self.env.start_with(&all, |c| self.journald.enter(c))
    }

    /// Leases by address with their login counts.
    fn leases(&self) -> BTreeMap<IpAddr, u64> {
        let o = self.env.run(&["list", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("list json");
        v["leases"]
            .as_array()
            .expect("array")
            .iter()
            .map(|l| {
                let net = l["net"].as_str().unwrap().trim_end_matches("/32");
                (net.parse().unwrap(), l["logins"].as_u64().unwrap())
            })
            .collect()
    }

    fn stats(&self) -> String {
        self.env.run(&["stats"]).stdout
    }
}

/// A Dovecot login line as Dovecot 2.3 writes it, for `rip`.
fn forged_line(rip: IpAddr) -> String {
    format!(
        "pop3-login: Login: user=<alice>, method=PLAIN, rip={rip}, lip=127.0.0.1, mpid=4242, secured, session=<forged{}>",
        rip.to_string().replace('.', "")
    )
}

/// A uid and gid to run a program as.
type User = (u32, u32);

fn nobody() -> User {
    let u = nix::unistd::User::from_name("nobody")
        .expect("look up nobody")
        .expect("user nobody exists (base-passwd)");
    (u.uid.as_raw(), u.gid.as_raw())
}

/// `logger -t dovecot TEXT` inside the namespace, as root or as `user`.
fn logger(j: &Journald, user: Option<(u32, u32)>, text: &str) {
    let mut c = Command::new("logger");
    c.args(["-t", "dovecot", text]).stdin(Stdio::null());
    j.enter_as(&mut c, user);
    let out = c.output().expect("run logger");
    assert!(out.status.success(), "logger: {out:?}");
}

/// `echo TEXT | systemd-cat -t dovecot` inside the namespace, as root or as `user`.
fn systemd_cat(j: &Journald, user: Option<(u32, u32)>, text: &str) {
    let mut c = Command::new("systemd-cat");
    c.args(["-t", "dovecot"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    j.enter_as(&mut c, user);
    let mut child = c.spawn().expect("run systemd-cat");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{text}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "systemd-cat: {out:?}");
}

#[test]
#[ignore = "needs root and Debian's systemd, dovecot and postfix (tests/run.sh installs and runs them)"]
fn a_journal_login_relays_through_postfix_and_forged_lines_grant_nothing() {
    let r = rig();
    let policy = r.env.path("policy.sock");
    let policy_addr = format!("unix:{}", policy.display());
    let d = r.daemon(&["--policy", &policy_addr]);
    let postfix = Postfix::start(r.env.dir.path(), Some(&policy_addr));
    let (smtp, pop3) = (postfix.smtp_port(), r.dovecot.pop3_port());

    // A POP3 login to the real Dovecot, logged through syslog to journald, opens the relay.
    let client = ip(0, 61);
    assert!(!relay_allowed(client, smtp));
    assert!(pop3_login(client, pop3, "alice", PASSWORD));
    assert!(
        soon(|| relay_allowed(client, smtp)),
        "relay after a POP3 login"
    );

    // A failed one does not; nor does a perfect Dovecot line from logger or systemd-cat,
    // written by root or by nobody.
    let failed = ip(0, 62);
    assert!(!pop3_login(failed, pop3, "alice", "wrong-password"));
    let forgers: [(&str, Option<User>, IpAddr); 4] = [
        ("logger as root", None, ip(0, 63)),
        ("logger as nobody", Some(nobody()), ip(0, 64)),
        ("systemd-cat as root", None, ip(0, 65)),
        ("systemd-cat as nobody", Some(nobody()), ip(0, 66)),
    ];
    for (how, user, addr) in forgers {
        if how.starts_with("logger") {
            logger(&r.journald, user, &forged_line(addr));
        } else {
            systemd_cat(&r.journald, user, &forged_line(addr));
        }
        r.journald.wait_for(&format!("rip={addr},"));
    }
    // A real login after them: once it relays, every entry before it has been read.
    let later = ip(0, 67);
    assert!(pop3_login(later, pop3, "bob", PASSWORD));
    assert!(
        soon(|| relay_allowed(later, smtp)),
        "relay after the later login"
    );
    assert!(!relay_allowed(failed, smtp), "relay after a failed login");
    for (how, _, addr) in forgers {
        assert!(
            !relay_allowed(addr, smtp),
            "{how} opened the relay for {addr}"
        );
    }
    let leases = r.leases();
    assert_eq!(
        leases.keys().copied().collect::<Vec<_>>(),
        [client, later],
        "{leases:?}"
    );

    // Counted, and warned about once (at most once a minute).
    let stats = r.stats();
    assert!(stats.contains("forged logins refused: 4\n"), "{stats}");
    assert!(stats.contains("logins from journal: 2\n"), "{stats}");
    let log = d.log_text();
    assert_eq!(
        log.matches("a login line the mail server did not write")
            .count(),
        1,
        "{log}"
    );
    // journald reads the writer's name in /proc, where a short-lived logger may be gone
    // already: the warning names the login and why, whatever journald could see.
    assert!(log.contains("addr=\"127.0.0.63\""), "{log}");
    assert!(log.contains("why=written by "), "{log}");

    // The dry run over the same journal marks the forged logins as untrusted.
    let mut c = r.env.cmd();
    r.journald.enter(&mut c);
    let out = c
        .args([
            "parse-log",
            "--journal",
            "--journal-identifier",
            "dovecot",
            "--json",
        ])
        .output()
        .expect("run parse-log");
    assert!(out.status.success(), "{out:?}");
    let mut trusted = BTreeMap::new();
    let mut summary = serde_json::Value::Null;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        match v["type"].as_str() {
            Some("login") => {
                let addr: IpAddr = v["address"].as_str().unwrap().parse().unwrap();
                trusted.insert(addr, v["trusted"].as_bool().unwrap());
            }
            Some("summary") => summary = v,
            _ => {}
        }
    }
    let expected: BTreeMap<IpAddr, bool> = [
        (client, true),
        (ip(0, 63), false),
        (ip(0, 64), false),
        (ip(0, 65), false),
        (ip(0, 66), false),
        (later, true),
    ]
    .into();
    assert_eq!(trusted, expected);
    assert_eq!(summary["untrusted"], 4, "{summary}");
    assert_eq!(summary["logins"], 2, "{summary}");
    assert_eq!(summary["failures"], 1, "{summary}");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("4 login lines were not written by the mail server"),
        "{text}"
    );

    // For a person: one line a login, the forged ones marked with their writer; --since
    // leaves out what came before.
    let parse_log = |args: &[&str]| {
        let mut c = r.env.cmd();
        r.journald.enter(&mut c);
        let out = c
            .args(["parse-log", "--journal", "--journal-identifier", "dovecot"])
            .args(args)
            .output()
            .expect("run parse-log");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = parse_log(&["--since", "1h"]);
    let line = |addr: IpAddr| {
        text.lines()
            .find(|l| l.starts_with(&format!("{addr}\t")))
            .unwrap_or_else(|| panic!("no line for {addr}:\n{text}"))
            .to_string()
    };
    assert!(line(client).ends_with("\ttrusted"), "{text}");
    assert!(
        line(ip(0, 63)).contains("\tUNTRUSTED: written by "),
        "{text}"
    );
    assert!(
        line(ip(0, 64)).contains("\tUNTRUSTED: written as uid 65534"),
        "{text}"
    );
    assert!(text.contains(", 4 untrusted logins refused,"), "{text}");
    let future = parse_log(&["--since", "2100-01-01 00:00:00"]);
    assert!(future.starts_with("summary: 0 entries,"), "{future}");
}

/// The way in, as docs/security.md lists it: a login line `nobody` writes to the journal
/// grants nothing, and does with `--journal-any-origin`.
#[test]
#[ignore = "needs root and Debian's systemd (tests/run.sh installs and runs them)"]
fn nobody_cannot_forge_a_journal_login_unless_any_origin_is_believed() {
    let env = Env::new();
    let journald = Journald::start(env.dir.path());
    let start = |extra: &[&str]| {
        let mut args = vec!["--journal", "--journal-identifier", "dovecot"];
        args.extend_from_slice(extra);
        env.start_with(&args, |c| journald.enter(c))
    };
    let leased = |addr: IpAddr| env.run(&["check", &addr.to_string()]).code == 0;
    let d = start(&[]);
    let (refused, believed) = (ip(6, 1), ip(6, 2));
    logger(&journald, Some(nobody()), &forged_line(refused));
    assert!(
        soon(|| env
            .run(&["stats"])
            .stdout
            .contains("forged logins refused: 1\n")),
        "{}",
        d.log_text()
    );
    assert!(!leased(refused));
    assert_eq!(d.stop(), 0);

    let d = start(&["--journal-any-origin"]);
    assert!(
        d.log_text()
            .contains("--journal-any-origin: journal entries are believed")
    );
    logger(&journald, Some(nobody()), &forged_line(believed));
    assert!(soon(|| leased(believed)), "{}", d.log_text());
    assert!(!leased(refused), "an entry read before is not read again");
}

/// The daemon restarted while logins keep coming, `journalctl --rotate` during the stream,
/// then journald itself restarted and the archived files vacuumed: every login leases its
/// address exactly once.
#[test]
#[ignore = "needs root and Debian's systemd and dovecot (tests/run.sh installs and runs them)"]
fn restarts_rotation_and_vacuum_lose_and_replay_nothing() {
    let mut r = rig();
    let mut d = r.daemon(&[]);
    let pop3 = r.dovecot.pop3_port();
    let addr = |i: usize| ip(1, i as u8 + 1);
    let (streamed, all) = (40, 50);
    let done = Arc::new(AtomicUsize::new(0));
    let stream = {
        let done = done.clone();
        std::thread::spawn(move || {
            for i in 0..streamed {
                assert!(pop3_login(addr(i), pop3, "alice", PASSWORD), "login {i}");
                done.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(25));
            }
        })
    };
    let reached = |n: usize| soon(|| done.load(Ordering::SeqCst) >= n);
    assert!(reached(10));
    assert_eq!(d.stop(), 0);
    d = r.daemon(&[]);
    assert!(reached(25));
    r.journald.rotate();
    stream.join().expect("the stream of logins");
    let caught_up = |r: &Rig, n: usize| soon(|| r.leases().len() >= n);
    assert!(caught_up(&r, streamed), "{:?}", r.leases());

    // journald restarted: what Dovecot logs while it is down is lost by syslog itself, so
    // this happens between logins.
    r.journald.restart();
    for i in streamed..45 {
        assert!(pop3_login(addr(i), pop3, "alice", PASSWORD), "login {i}");
    }
    assert!(
        caught_up(&r, 45),
        "after journald's restart: {:?}",
        r.leases()
    );
    r.journald.rotate();
    r.journald.journalctl(&["--vacuum-files=1"]);
    for i in 45..all {
        assert!(pop3_login(addr(i), pop3, "alice", PASSWORD), "login {i}");
    }
    assert!(caught_up(&r, all), "after a vacuum: {:?}", r.leases());
    let leases = r.leases();
    for i in 0..all {
        assert_eq!(leases.get(&addr(i)), Some(&1), "login {i}: {leases:?}");
    }
    assert_eq!(leases.len(), all, "{leases:?}");
    assert!(
        !d.log_text().contains("opening the journal again"),
        "reading went on through all of it:\n{}",
        d.log_text()
    );
}

/// The saved cursor is gone (rotated and vacuumed away while the daemon was stopped): said,
/// and reading starts at the oldest entry within the expiry window.
#[test]
#[ignore = "needs root and Debian's systemd and dovecot (tests/run.sh installs and runs them)"]
fn a_cursor_the_journal_no_longer_holds_is_said_and_the_window_read() {
    let r = rig();
    let d = r.daemon(&[]);
    let pop3 = r.dovecot.pop3_port();
    let (first, second) = (ip(2, 1), ip(2, 2));
    assert!(pop3_login(first, pop3, "alice", PASSWORD));
    assert!(soon(|| r.leases().contains_key(&first)));
    assert_eq!(d.stop(), 0);
    r.journald.rotate();
    r.journald.journalctl(&["--vacuum-files=1"]);
    assert!(pop3_login(second, pop3, "alice", PASSWORD));
    let d = r.daemon(&[]);
    assert!(
        soon(|| r.leases().contains_key(&second)),
        "{:?}",
        r.leases()
    );
    assert_eq!(r.leases().get(&first), Some(&1));
    let log = d.log_text();
    assert!(log.contains("no longer in the journal"), "{log}");
}

/// An IMAP session logged in the journal holds its lease while open, and lets go at its end.
#[test]
#[ignore = "needs root and Debian's systemd and dovecot (tests/run.sh installs and runs them)"]
fn sessions_are_held_from_the_journal() {
    let r = rig();
    let _d = r.daemon(&[]);
    let client = ip(3, 1);
    let mut s = connect_from(client, r.dovecot.imap_port());
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("* OK"), "{line}");
    s.write_all(format!("a1 LOGIN alice {PASSWORD}\r\n").as_bytes())
        .unwrap();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.starts_with("a1 ") {
            break;
        }
    }
    assert!(line.starts_with("a1 OK"), "{line}");
    assert!(
        soon(|| r.stats().contains("sessions open: 1\n")),
        "{}",
        r.stats()
    );
    s.write_all(b"a2 LOGOUT\r\n").unwrap();
    drop(reader);
    drop(s);
    assert!(
        soon(|| r.stats().contains("sessions open: 0\n")),
        "{}",
        r.stats()
    );
    assert!(r.leases().contains_key(&client));
    // An IMAP login through the rig's client, for good measure: a lease, and no session
    // left open once it logged out.
    assert!(imap_login(ip(3, 2), r.dovecot.imap_port(), "bob", PASSWORD));
    assert!(soon(|| r.leases().contains_key(&ip(3, 2))));
    assert!(soon(|| r.stats().contains("sessions open: 0\n")));
}

/// One connection to the policy service, asked again and again.
struct Policy(BufReader<UnixStream>);

impl Policy {
    fn connect(path: &Path) -> Policy {
        let s = UnixStream::connect(path).expect("connect to the policy socket");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Policy(BufReader::new(s))
    }

    fn ok(&mut self, client: IpAddr) -> bool {
        let req = format!(
            "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address={client}\n\n"
        );
        self.0.get_mut().write_all(req.as_bytes()).unwrap();
        let mut action = String::new();
        self.0.read_line(&mut action).unwrap();
        let mut blank = String::new();
        self.0.read_line(&mut blank).unwrap();
        action.starts_with("action=OK")
    }
}

/// From Dovecot's `+OK Logged in.` to the policy service's first OK, for `n` POP3 logins,
/// and how many relayed at the first question.
fn latencies(dovecot: &Dovecot, policy: &Path, net: u8, n: usize) -> (Vec<Duration>, usize) {
    let mut p = Policy::connect(policy);
    let mut out = Vec::with_capacity(n);
    let mut at_once = 0;
    for i in 0..n {
        let client = ip(net, i as u8 + 1);
        assert!(!p.ok(client));
        let s = connect_from(client, dovecot.pop3_port());
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        w.write_all(format!("USER alice\r\nPASS {PASSWORD}\r\n").as_bytes())
            .unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("+OK"), "{line}");
        let t0 = Instant::now();
        let mut granted = false;
        for asked in 0.. {
            if p.ok(client) {
                granted = true;
                at_once += usize::from(asked == 0);
                break;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
        assert!(granted, "login {i} from {client} never relayed");
        out.push(t0.elapsed());
        let _ = w.write_all(b"QUIT\r\n");
    }
    out.sort();
    (out, at_once)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

/// A measurement, not a check (nothing here is timed against a limit): the time from a POP3
/// login's `+OK` to the policy service's OK, through the journal and through Dovecot's own
/// log file (`--watch`), printed side by side:
/// `./tests/run.sh --test integration journal::latency -- --nocapture`.
#[test]
#[ignore = "needs root and Debian's systemd and dovecot (tests/run.sh installs and runs them)"]
fn latency_from_a_dovecot_login_to_the_policy_ok_journal_and_file() {
    const N: usize = 200;
    let r = rig();
    let policy = r.env.path("policy.sock");
    let _d = r.daemon(&["--policy", &format!("unix:{}", policy.display())]);
    let journal = latencies(&r.dovecot, &policy, 4, N);

    let env = Env::new();
    let dovecot = Dovecot::start(env.dir.path());
    let policy = env.path("policy.sock");
    let _d = env.start(&[
        "--watch",
        dovecot.log_path().to_str().unwrap(),
        "--policy",
        &format!("unix:{}", policy.display()),
    ]);
    let file = latencies(&dovecot, &policy, 5, N);
    for (what, (l, at_once)) in [("journal", &journal), ("file", &file)] {
        eprintln!(
            "login to policy OK through the {what:<7}: n={} p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {at_once} relayed at the first question",
            l.len(),
            pct(l, 0.5),
            pct(l, 0.99),
            pct(l, 1.0)
        );
    }
}

/// libsystemd is loaded only for --journal: the binary must start where it is missing.
#[test]
fn the_binary_does_not_link_libsystemd() {
    let out = Command::new("ldd")
        .arg(common::BIN)
        .output()
        .expect("run ldd (libc-bin)");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("libc.so"), "{text}");
    assert!(!text.contains("libsystemd"), "{text}");
}

/// Where the dynamic linker would find libsystemd: every copy is hidden below.
fn libsystemd_files() -> Vec<std::ffi::CString> {
    let mut found = std::collections::BTreeSet::new();
    for root in ["/usr/lib", "/lib", "/usr/lib64", "/lib64"] {
        let dirs = std::fs::read_dir(root)
            .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default();
        for dir in std::iter::once(Path::new(root).to_path_buf()).chain(dirs) {
            if let Ok(real) = std::fs::canonicalize(dir.join("libsystemd.so.0")) {
                found.insert(real);
            }
        }
    }
    assert!(
        !found.is_empty(),
        "libsystemd.so.0 not found: apt-get install libsystemd0"
    );
    found
        .into_iter()
        .map(|p| std::ffi::CString::new(p.into_os_string().into_encoded_bytes()).unwrap())
        .collect()
}

/// Run the daemon in a mount namespace of its own where every libsystemd.so.0 is /dev/null.
fn without_libsystemd(c: &mut Command, libs: Vec<std::ffi::CString>) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe system calls between fork and exec, on strings made
    // before the fork.
    unsafe {
        c.pre_exec(move || {
            let fail = || Err(std::io::Error::last_os_error());
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return fail();
            }
            let none = std::ptr::null();
            let flags = libc::MS_REC | libc::MS_PRIVATE;
            if libc::mount(none, c"/".as_ptr(), none, flags, std::ptr::null()) != 0 {
                return fail();
            }
            for lib in &libs {
                let null = c"/dev/null".as_ptr();
                if libc::mount(null, lib.as_ptr(), none, libc::MS_BIND, std::ptr::null()) != 0 {
                    return fail();
                }
            }
            Ok(())
        });
    }
}

/// On a host without libsystemd the daemon starts, and only `--journal` is refused, in one
/// line naming the library.
#[test]
#[ignore = "needs root (a mount namespace hides libsystemd; tests/run.sh runs it)"]
fn without_libsystemd_the_daemon_starts_and_only_the_journal_is_refused() {
    let env = Env::new();
    let libs = libsystemd_files();
    let d = env.start_with(&[], |c| without_libsystemd(c, libs.clone()));
    assert_eq!(env.run(&["add", "192.0.2.9"]).code, 0);
    assert_eq!(d.stop(), 0);
    let mut c = env.cmd();
    c.args(["daemon", "--journal"]);
    without_libsystemd(&mut c, libs);
    let out = c.output().expect("run the daemon");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("relaylease: --journal needs libsystemd (libsystemd.so.0): "),
        "{err}"
    );
}

/// Issue 16: journal entries read while the database is full wait, the cursor saved before
/// them, and are written once there is room, without a restart.
#[test]
#[ignore = "needs root and Debian's systemd (tests/run.sh installs and runs them): mounts a file system"]
fn journal_logins_read_while_the_database_is_full_relay_once_there_is_room() {
    crate::faults::require_root();
    let env = Env::new();
    // Mounted before journald's mount namespace is made, so that the daemon in it sees it.
    let _disk = crate::faults::Mount::tmpfs(&env.db(), "1m");
    let journald = Journald::start(env.dir.path());
    let leased = |a: IpAddr| env.run(&["check", &a.to_string()]).code == 0;
    // `logger` stands for Dovecot here: what is tested is the store, not who wrote it.
    let d = env.start_with(
        &[
            "--journal",
            "--journal-identifier",
            "dovecot",
            "--journal-any-origin",
        ],
        |c| journald.enter(c),
    );
    logger(&journald, None, &forged_line(ip(7, 1)));
    assert!(soon(|| leased(ip(7, 1))), "{}", d.log_text());
    std::thread::sleep(Duration::from_millis(1500));

    crate::faults::fill(&env.db());
    let refused = (0..2000).find(|i| {
        let a = format!("10.4.{}.{}", i / 250, i % 250 + 1);
        env.run(&["add", &a]).code != 0
    });
    assert!(refused.is_some(), "the database took 2000 leases when full");
    let waiting: Vec<IpAddr> = (2..=11).map(|i| ip(7, i)).collect();
    for a in &waiting {
        logger(&journald, None, &forged_line(*a));
    }
    assert!(
        soon(|| d.log_text().contains("ERROR cannot record")),
        "{}",
        d.log_text()
    );
    assert!(waiting.iter().all(|a| !leased(*a)), "fail closed");
    std::fs::remove_file(env.db().join("filler")).expect("remove the filler");
    assert!(
        soon(|| waiting.iter().all(|a| leased(*a))),
        "journal logins read while the database was full are lost:\n{}",
        d.log_text()
    );
    assert_eq!(d.stop(), 0);
}
