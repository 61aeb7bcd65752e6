//! Logins as the daemon learns them: the hook in a login chain, parse-log's dry run, and
//! log lines that must grant nothing (forgeries, failures, old lines).

use crate::daemon_harness;

use std::io::Write;
use std::time::Duration;

use crate::daemon_harness::{Env, eventually, stamp_now};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/logs");

#[test]
fn the_hook_reports_the_login_then_runs_the_program_with_the_same_environment() {
    let env = Env::new();
    let _d = env.start(&[]);
    let out = env.path("child-env");
    let o = daemon_harness::Out::from(
        env.cmd()
            .env("TCPREMOTEIP", "192.0.2.61")
            .env("USER", "alice")
            .args(["hook", "--", "sh", "-c"])
            .arg(format!("env > {}; echo chained", out.display()))
            .output()
            .unwrap(),
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(
        o.stdout, "chained\n",
        "the program's output, nothing of ours: {o:?}"
    );
    assert!(o.stderr.is_empty(), "{o:?}");
    let child_env = std::fs::read_to_string(&out).unwrap();
    assert!(child_env.contains("TCPREMOTEIP=192.0.2.61"), "{child_env}");
    // Acknowledged only once durable: the address can relay as soon as the hook returns.
    let c = env.run(&["check", "192.0.2.61"]);
    assert_eq!(c.code, 0, "{c:?}");
    assert!(c.stdout.contains("last login alice via hook"), "{c:?}");
}

/// Report a login for `ip` through a hook started with standard error closed, run after
/// `prefix` (a namespace's set-up) if any, with a program that prints what its descriptor 2
/// is. The hook must succeed and the login relay; returns what the program saw.
fn hook_with_stderr_closed(env: &Env, ip: &str, prefix: &[&str]) -> String {
    use std::os::unix::process::CommandExt;
    let mut cmd = match prefix.split_first() {
        None => std::process::Command::new(daemon_harness::BIN),
        Some((first, rest)) => {
            let mut c = std::process::Command::new(first);
            c.args(rest).arg(daemon_harness::BIN);
            c
        }
    };
    cmd.args(["hook", "--ip", ip, "--socket"])
        .arg(env.socket())
        .args(["--", "readlink", "/proc/self/fd/2"])
        .stdin(std::process::Stdio::null());
    // SAFETY: close(2) only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::close(2);
            Ok(())
        });
    }
    let o = daemon_harness::Out::from(cmd.output().unwrap());
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(env.run(&["check", ip]).code, 0, "{o:?}");
    o.stdout
}

/// A chain that starts the hook with standard error closed: the hook still reports the
/// login, and the program finds /dev/null where standard error was, not a socket the hook
/// opened (the program starts itself, not through Rust's runtime, which did this before).
#[test]
fn the_hook_started_with_standard_error_closed_puts_dev_null_there() {
    let env = Env::new();
    let _d = env.start(&[]);
    assert_eq!(
        hook_with_stderr_closed(&env, "192.0.2.64", &[]),
        "/dev/null\n"
    );
}

/// The same in a chroot-like place where /dev/null cannot be opened for writing (here a
/// read-only file mounted over it, in a mount namespace of the test's own): the hook does not
/// abort, which would stop the login; the program finds the root directory, read-only, in
/// place of standard error, and the login relays.
#[test]
#[ignore = "needs root (a mount namespace; tests/run.sh runs as root)"]
fn the_hook_without_a_usable_dev_null_still_logs_in_and_runs_the_program() {
    let env = Env::new();
    let _d = env.start(&[]);
    let stand_in = env.path("not-dev-null");
    std::fs::write(&stand_in, "").unwrap();
    let script = format!(
        "mount --bind {f} /dev/null && mount -o remount,bind,ro /dev/null && exec \"$@\"",
        f = stand_in.display()
    );
    let unshare = ["unshare", "--mount", "--propagation", "private", "--"];
    let prefix: Vec<&str> = unshare
        .into_iter()
        .chain(["sh", "-c", &script, "sh"])
        .collect();
    assert_eq!(hook_with_stderr_closed(&env, "192.0.2.65", &prefix), "/\n");
}

#[test]
fn the_hook_takes_dovecots_ip_and_explicit_flags_win() {
    let env = Env::new();
    let _d = env.start(&[]);
    let o = daemon_harness::Out::from(
        env.cmd()
            .env_remove("TCPREMOTEIP")
            .env("IP", "2001:db8:9::1")
            .args(["hook"])
            .output()
            .unwrap(),
    );
    assert_eq!(o.code, 0, "without PROGRAM the exit status tells: {o:?}");
    assert_eq!(env.run(&["check", "2001:db8:9::77"]).code, 0);
    let o = daemon_harness::Out::from(
        env.cmd()
            .env("TCPREMOTEIP", "192.0.2.1")
            .args(["hook", "--ip", "192.0.2.62", "--user", "bob"])
            .output()
            .unwrap(),
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(env.run(&["check", "192.0.2.62"]).code, 0);
    assert_eq!(env.run(&["check", "192.0.2.1"]).code, 1);
}

#[test]
fn the_hook_never_blocks_a_login() {
    let env = Env::new();
    // No daemon at all.
    let o = daemon_harness::Out::from(
        env.cmd()
            .env("TCPREMOTEIP", "192.0.2.63")
            .args(["hook", "--", "sh", "-c", "echo still-ran"])
            .output()
            .unwrap(),
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout, "still-ran\n");
    assert_eq!(o.stderr.lines().count(), 1, "one line on stderr: {o:?}");
    assert!(o.stderr.starts_with("relaylease hook: "), "{o:?}");
    let o = env.run(&["hook", "--ip", "192.0.2.63"]);
    assert_eq!(
        o.code, 2,
        "without PROGRAM, failure shows in the exit status: {o:?}"
    );

    // A daemon that accepts but never answers: the timeout lets the login go on.
    let listener = std::os::unix::net::UnixListener::bind(env.socket()).unwrap();
    let start = std::time::Instant::now();
    let o = daemon_harness::Out::from(
        env.cmd()
            .args(["hook", "--ip", "192.0.2.64", "--timeout", "300ms", "--"])
            .args(["sh", "-c", "echo went-on"])
            .output()
            .unwrap(),
    );
    drop(listener);
    assert_eq!(o.stdout, "went-on\n", "{o:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );

    // Garbage in the flags does not stop the chain either.
    let o = daemon_harness::Out::from(
        env.cmd()
            .args(["hook", "--ip", "not-an-ip", "--timeout", "bogus", "--"])
            .args(["sh", "-c", "echo anyway"])
            .output()
            .unwrap(),
    );
    assert_eq!(o.stdout, "anyway\n", "{o:?}");
    assert!(o.stderr.contains("invalid address 'not-an-ip'"), "{o:?}");

    // A program that cannot be run: checkpassword's temporary failure.
    let o = env.run(&["hook", "--ip", "192.0.2.65", "--", "/nonexistent/prog"]);
    assert_eq!(o.code, 111, "{o:?}");
    assert!(o.stderr.contains("/nonexistent/prog"), "{o:?}");
}

#[test]
fn the_hook_reports_a_refusal_and_still_runs_the_program() {
    let env = Env::new();
    let _d = env.start(&["--deny", "192.0.2.0/28"]);
    let o = daemon_harness::Out::from(
        env.cmd()
            .args(["hook", "--ip", "192.0.2.5", "--", "true"])
            .output()
            .unwrap(),
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("--deny 192.0.2.0/28"), "{o:?}");
    assert_eq!(env.run(&["hook", "--ip", "192.0.2.5"]).code, 1);
    assert_eq!(env.run(&["check", "192.0.2.5"]).code, 1);
}

#[test]
fn the_hook_says_yes_for_an_always_allowed_address() {
    let env = Env::new();
    let _d = env.start(&["--allow", "10.0.0.0/8"]);
    let o = env.run(&["hook", "--ip", "10.1.2.3"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stderr.is_empty(), "{o:?}");
}

#[test]
fn only_listed_users_get_leases_and_sighup_rereads_the_list() {
    let env = Env::new();
    let users = env.path("users");
    std::fs::write(&users, "alice\n").unwrap();
    let d = env.start(&["--users", users.to_str().unwrap()]);
    assert_eq!(
        env.run(&["hook", "--ip", "192.0.2.70", "--user", "bob"])
            .code,
        1
    );
    assert_eq!(
        env.run(&["hook", "--ip", "192.0.2.71", "--user", "alice"])
            .code,
        0
    );
    std::fs::write(&users, "alice\nbob\n").unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(eventually(Duration::from_secs(5), || d
        .log_text()
        .contains("re-read the users file")));
    assert_eq!(
        env.run(&["hook", "--ip", "192.0.2.70", "--user", "bob"])
            .code,
        0
    );
}

#[test]
fn forged_failed_and_old_lines_in_a_watched_log_grant_nothing() {
    let env = Env::new();
    let log = env.path("mail.log");
    std::fs::write(&log, "").unwrap();
    let _d = env.start(&["--watch", log.to_str().unwrap()]);
    let now = stamp_now();
    let forty_min_ago = {
        let t = std::time::SystemTime::now() - Duration::from_secs(40 * 60);
        let s = humantime::format_rfc3339_micros(t).to_string();
        format!("{}+00:00", s.trim_end_matches('Z'))
    };
    let lines = [
        // A Postfix line quoting a whole login line in MAIL FROM (CVE-2001-1075's trick).
        format!(
            "{now} vm postfix/smtpd[77]: NOQUEUE: reject: RCPT from unknown[203.0.113.9]: 554 5.7.1 <x@y>: Relay access denied; from=<pop3-login: Login: user=<a>, method=PLAIN, rip=10.66.0.1, lip=1.2.3.4> to=<x@y> proto=ESMTP helo=<dovecot: pop3-login: Login: user=<a>, method=PLAIN, rip=10.66.0.2, lip=1.2.3.4>"
        ),
        // The right words under another program's tag.
        format!(
            "{now} vm mallory: pop3-login: Login: user=<a>, method=PLAIN, rip=10.66.0.3, lip=127.0.0.1"
        ),
        // A user name carrying an address: the real client is 10.66.0.5.
        format!(
            "{now} vm dovecot: pop3-login: Login: user=<x, rip=10.66.0.4, y>, method=PLAIN, rip=10.66.0.5, lip=127.0.0.1, mpid=1, session=<a>"
        ),
        // Failures and aborts.
        format!(
            "{now} vm dovecot: pop3-login: Disconnected: auth failed, 1 attempts in 2 secs: user=<a>, method=PLAIN, rip=10.66.0.6, lip=127.0.0.1, session=<b>"
        ),
        format!(
            "{now} vm dovecot: imap-login: Login aborted: Logged out (auth failed, 1 attempts in 2 secs) (auth_failed): user=<a>, method=PLAIN, rip=10.66.0.7, lip=127.0.0.1, session=<c>"
        ),
        format!("{now} vm pop3d: LOGIN FAILED, user=alice, ip=[::ffff:10.66.0.8], port=[4000]"),
        // A real login, 40 minutes old: its lease would already have run out.
        format!(
            "{forty_min_ago} vm dovecot: pop3-login: Login: user=<a>, method=PLAIN, rip=10.66.0.9, lip=127.0.0.1, mpid=2, session=<d>"
        ),
        // The one that counts, last, to know the others were read.
        format!(
            "{now} vm dovecot: imap-login: Login: user=<bob>, method=PLAIN, rip=10.66.0.10, lip=127.0.0.1, mpid=3, session=<e>"
        ),
    ];
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    for l in &lines {
        writeln!(f, "{l}").unwrap();
    }
    assert!(eventually(Duration::from_secs(5), || env
        .run(&["check", "10.66.0.10"])
        .code
        == 0));
    let o = env.run(&["list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let nets: Vec<&str> = v["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["net"].as_str().unwrap())
        .collect();
    assert_eq!(nets, vec!["10.66.0.5/32", "10.66.0.10/32"], "{o:?}");
}

#[test]
fn parse_log_finds_every_login_in_the_real_corpus() {
    let env = Env::new();
    let files: Vec<String> = std::fs::read_dir(DATA)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| p.display().to_string())
        .collect();
    let mut args = vec!["parse-log", "--json"];
    args.extend(files.iter().map(String::as_str));
    let o = env.run(&args);
    assert_eq!(o.code, 0, "{o:?}");
    let expected = std::fs::read_to_string(format!("{DATA}/expected.tsv")).unwrap();
    let ambiguous = std::fs::read_to_string(format!("{DATA}/ambiguous.tsv")).unwrap();
    let rows = expected.lines().skip(1).filter(|l| !l.is_empty()).count();
    let maybe = ambiguous.lines().skip(1).filter(|l| !l.is_empty()).count();
    let mut logins = 0;
    let mut summary = None;
    let (mut opened, mut ended) = (Vec::new(), std::collections::HashSet::new());
    for line in o.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        match v["type"].as_str() {
            Some("login") => {
                logins += 1;
                assert_ne!(v["address"], "127.0.0.99", "forged address granted: {v}");
                if let Some(s) = v["session"].as_str() {
                    opened.push(s.to_string());
                }
            }
            Some("logout") => {
                ended.insert(v["session"].as_str().expect("a session").to_string());
            }
            Some("summary") => summary = Some(v),
            _ => panic!("unexpected line {line}"),
        }
    }
    // Dovecot, Courier and Cyrus logins name their sessions, and each one's end is printed.
    assert!(opened.len() > 100, "{} logins with a session", opened.len());
    let unended: Vec<&String> = opened.iter().filter(|s| !ended.contains(*s)).collect();
    assert!(unended.len() <= 1, "sessions with no end line: {unended:?}");
    assert!(
        logins >= rows && logins <= rows + maybe,
        "{logins} logins, expected {rows} (+ up to {maybe} ambiguous)"
    );
    let summary = summary.expect("summary line");
    assert_eq!(summary["logins"], logins);
    assert!(summary["session_ends"].as_u64().unwrap() >= ended.len() as u64);
    assert!(summary["failures"].as_u64().unwrap() > 0);
    assert!(
        o.stderr.contains("acl { log from any; }"),
        "mailutils logins without an address are pointed out: {o:?}"
    );
    // No daemon, no database: a dry run touches nothing.
    assert!(!env.db().exists());
}

#[test]
fn parse_log_reads_stdin_and_prints_a_readable_table() {
    let env = Env::new();
    let mut child = env
        .cmd()
        .args(["parse-log", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"Nov 22 03:11:18 vm pop3d: LOGIN, user=alice, ip=[::ffff:192.0.2.21], port=[37769]\nNov 22 03:11:22 vm pop3d: LOGIN FAILED, user=alice, ip=[::ffff:192.0.2.24], port=[43397]\n",
        )
        .unwrap();
    let o = daemon_harness::Out::from(child.wait_with_output().unwrap());
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(
        o.stdout,
        "192.0.2.21\talice\tpop3\tcourier\t-:1\nsummary: 2 lines, 1 logins (0 without an address), 1 failures, 0 login-like lines in no known format, 0 session ends\n"
    );
}

#[test]
fn bad_login_patterns_and_formats_are_refused_at_start() {
    let env = Env::new();
    let o = env.run(&["daemon", "--login-pattern", r"accepted from (?P<addr>\S+)"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.stderr.contains("accepted from"),
        "names the pattern: {o:?}"
    );
    assert!(o.stderr.contains("ip"), "{o:?}");
    let o = env.run(&["daemon", "--login-pattern", "(unclosed"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("(unclosed"), "{o:?}");
    let o = env.run(&["daemon", "--watch", "/tmp/x.log", "--format", "sendmail"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("'sendmail'"), "{o:?}");
    let o = env.run(&["daemon", "--format", "dovecot", "--watch", "/tmp/x.log"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("must follow the --watch"), "{o:?}");
    for o in [
        env.run(&["daemon", "--login-pattern", "(unclosed"]),
        env.run(&["daemon", "--format", "dovecot"]),
    ] {
        assert_eq!(o.stderr.lines().count(), 1, "{o:?}");
    }
}

#[test]
fn a_site_pattern_grants_from_its_own_format() {
    let env = Env::new();
    let log = env.path("custom.log");
    std::fs::write(&log, "").unwrap();
    let _d = env.start(&[
        "--watch",
        log.to_str().unwrap(),
        "--login-pattern",
        r"^\S+ \S+ mypop\[\d+\]: auth ok user=(?P<user>\S+) from (?P<ip>[0-9.]+)$",
    ]);
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(
        f,
        "{} vm mypop[9]: auth ok user=carol from 192.0.2.90",
        stamp_now()
    )
    .unwrap();
    assert!(eventually(Duration::from_secs(5), || env
        .run(&["check", "192.0.2.90"])
        .code
        == 0));
    assert!(env.run(&["check", "192.0.2.90"]).stdout.contains("carol"));
}
