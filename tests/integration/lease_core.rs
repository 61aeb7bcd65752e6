//! The lease core as an administrator meets it: the real daemon on temporary paths, every
//! shell command and its exit code, persistence, crashes, corruption, permissions, bad input.

use crate::daemon_harness;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::daemon_harness::{Env, closed, eventually, raw};

#[test]
fn every_command_and_its_exit_code() {
    let env = Env::new();
    let d = env.start(&["--allow", "10.0.0.0/8"]);

    let o = env.run(&["check", "192.0.2.7"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(o.stdout, "192.0.2.7: no lease\n");

    let o = env.run(&["add", "192.0.2.7", "--for", "20m"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.starts_with("192.0.2.7: lease until "), "{o:?}");
    assert!(
        o.stderr.is_empty(),
        "a running daemon is used without comment: {o:?}"
    );

    let o = env.run(&["check", "::ffff:192.0.2.7"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout.starts_with("::ffff:192.0.2.7: lease until "),
        "{o:?}"
    );
    assert!(
        o.stdout.contains("(20m 0s left)") || o.stdout.contains("(19m 59s left)"),
        "{o:?}"
    );
    assert!(o.stdout.trim_end().ends_with("via manual add"), "{o:?}");

    let o = env.run(&["check", "10.20.30.40"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout, "10.20.30.40: static --allow 10.0.0.0/8\n");

    // Without --for the daemon's window (30m by default) applies; IPv6 shares a /64.
    assert_eq!(env.run(&["add", "2001:db8:5:6::1"]).code, 0);
    let o = env.run(&["check", "2001:db8:5:6:abcd::9"]);
    assert_eq!(o.code, 0, "{o:?}");

    let o = env.run(&["list"]);
    assert_eq!(o.code, 0, "{o:?}");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(lines[0].starts_with("ADDRESS"), "{o:?}");
    assert!(
        lines[1].starts_with("192.0.2.7 "),
        "sorted by deadline: {o:?}"
    );
    assert!(lines[2].starts_with("2001:db8:5:6::/64 "), "{o:?}");
    assert_eq!(lines.len(), 3, "static networks are not leases: {o:?}");

    let o = env.run(&["list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("list --json is JSON");
    let leases = v["leases"].as_array().expect("leases array");
    assert_eq!(leases.len(), 2);
    assert_eq!(leases[0]["net"], "192.0.2.7/32");
    assert_eq!(leases[0]["source"], "manual");

    let o = env.run(&["del", "192.0.2.7"]);
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "192.0.2.7: lease deleted\n")
    );
    let o = env.run(&["del", "192.0.2.7"]);
    assert_eq!((o.code, o.stdout.as_str()), (1, "192.0.2.7: no lease\n"));
    assert_eq!(env.run(&["check", "192.0.2.7"]).code, 1);

    let o = env.run(&["stats", "--json"]);
    assert_eq!(o.code, 0, "{o:?}");
    let s: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(s["leases_active"], 1);
    assert_eq!(s["deleted"], 1);
    let o = env.run(&["stats"]);
    assert!(o.stdout.contains("leases active: 1\n"), "{o:?}");
    let o = env.run(&["stats", "--prometheus"]);
    assert!(o.stdout.contains("relaylease_leases_active 1\n"), "{o:?}");
    assert!(
        o.stdout
            .contains("relaylease_lease_events_total{event=\"deleted\"} 1\n"),
        "{o:?}"
    );

    let o = env.run(&["window"]);
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "expiry window 30m\n"),
        "{o:?}"
    );
    let o = env.run(&["window", "1h 15m"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.starts_with("expiry window now 1h 15m"), "{o:?}");
    assert_eq!(env.run(&["add", "192.0.2.33"]).code, 0);
    let o = env.run(&["check", "192.0.2.33"]);
    assert!(
        o.stdout.contains("(1h 15m left)") || o.stdout.contains("(1h 14m left)"),
        "a new lease gets the new window: {o:?}"
    );
    assert_eq!(env.run(&["window", "forever"]).code, 2);
    assert_eq!(env.run(&["del", "192.0.2.33"]).code, 0);

    let o = env.run(&["flush"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "1 leases deleted\n"));
    assert_eq!(env.run(&["check", "2001:db8:5:6::1"]).code, 1);
    assert_eq!(d.stop(), 0);
}

#[test]
fn leases_survive_a_restart_and_expired_ones_do_not_come_back() {
    let env = Env::new();
    let d = env.start(&[]);
    assert_eq!(env.run(&["add", "192.0.2.1", "--for", "1h"]).code, 0);
    assert_eq!(env.run(&["add", "192.0.2.2", "--for", "1s"]).code, 0);
    assert_eq!(d.stop(), 0);
    assert!(!env.socket().exists(), "socket removed at shutdown");
    std::thread::sleep(Duration::from_millis(1200));
    let _d = env.start(&[]);
    assert_eq!(env.run(&["check", "192.0.2.1"]).code, 0);
    let o = env.run(&["check", "192.0.2.2"]);
    assert_eq!(o.code, 1, "expired while stopped: {o:?}");
    let o = env.run(&["list", "--json"]);
    assert_eq!(o.stdout.matches("\"net\"").count(), 1, "{o:?}");
}

#[test]
fn an_acknowledged_add_survives_kill_9() {
    let env = Env::new();
    let d = env.start(&[]);
    for i in 1..=20 {
        let o = env.run(&["add", &format!("198.51.100.{i}")]);
        assert_eq!(o.code, 0, "{o:?}");
    }
    d.kill9();
    let _d = env.start(&[]);
    for i in 1..=20 {
        let o = env.run(&["check", &format!("198.51.100.{i}")]);
        assert_eq!(o.code, 0, "lease {i} lost: {o:?}");
    }
}

#[test]
fn the_expiry_task_removes_a_lease_at_its_deadline() {
    let env = Env::new();
    let _d = env.start(&[]);
    assert_eq!(env.run(&["add", "192.0.2.9", "--for", "1s"]).code, 0);
    assert_eq!(env.run(&["check", "192.0.2.9"]).code, 0);
    // The expiry task, not a lookup, must have removed it: the counter says so.
    assert!(
        eventually(Duration::from_secs(5), || {
            env.run(&["stats", "--json"])
                .stdout
                .contains("\"expired\":1")
        }),
        "lease not expired by the expiry task"
    );
    assert_eq!(env.run(&["check", "192.0.2.9"]).code, 1);
}

#[test]
fn commands_work_on_the_database_without_a_daemon() {
    let env = Env::new();
    let o = env.run(&["add", "192.0.2.44", "--for", "10m"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("no daemon on"),
        "says so on stderr: {o:?}"
    );
    assert!(o.stderr.contains("directly"), "{o:?}");
    let o = env.run(&["check", "192.0.2.44"]);
    assert_eq!(o.code, 0, "{o:?}");
    // The daemon then starts with what the commands wrote.
    let _d = env.start(&[]);
    let o = env.run(&["check", "192.0.2.44"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stderr.is_empty(), "{o:?}");
}

#[test]
fn a_corrupt_database_is_moved_aside_and_the_daemon_starts_empty() {
    let env = Env::new();
    {
        let d = env.start(&[]);
        assert_eq!(env.run(&["add", "192.0.2.3"]).code, 0);
        assert_eq!(d.stop(), 0);
    }
    // Overwrite sled's files with junk.
    for entry in std::fs::read_dir(env.db()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::write(&p, vec![0xA5u8; 4096]).unwrap();
        }
    }
    let d = env.start(&[]);
    let log = d.log_text();
    assert!(log.contains("database is corrupt"), "{log}");
    let aside: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("db.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "old database kept aside for inspection");
    assert_eq!(env.run(&["check", "192.0.2.3"]).code, 1);
    assert_eq!(env.run(&["add", "192.0.2.4"]).code, 0);
}

#[test]
fn a_database_in_use_is_a_clear_error_not_a_quarantine() {
    let env = Env::new();
    let _d = env.start(&[]);
    let o = env
        .cmd()
        .env("RELAYLEASE_SOCKET", env.path("other.sock"))
        .args(["daemon"])
        .output()
        .unwrap();
    let o = daemon_harness::Out::from(o);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("is in use by another process"), "{o:?}");
    assert_eq!(o.stderr.lines().count(), 1, "one line: {o:?}");
    assert!(!o.stderr.contains("corrupt"), "{o:?}");
    assert!(
        !std::fs::read_dir(env.dir.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("corrupt"))
    );
}

#[test]
#[ignore = "needs root (tests/run.sh runs it): switches a client to nobody"]
fn peer_credentials_decide_who_may_change_leases() {
    let env = Env::new();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = env.start(&["--socket-mode", "0666"]);
    assert_eq!(env.run(&["add", "192.0.2.50"]).code, 0);

    let o = env.run_as_nobody(&["check", "192.0.2.50"]);
    assert_eq!(o.code, 0, "anyone who can connect may check: {o:?}");
    assert_eq!(env.run_as_nobody(&["list"]).code, 0);
    assert_eq!(env.run_as_nobody(&["stats"]).code, 0);

    assert_eq!(env.run_as_nobody(&["window"]).code, 0);
    for args in [
        &["add", "192.0.2.51"][..],
        &["del", "192.0.2.50"][..],
        &["flush"][..],
        &["window", "5h"][..],
    ] {
        let o = env.run_as_nobody(args);
        assert_eq!(o.code, 2, "{args:?}: {o:?}");
        assert!(o.stderr.contains("permission denied: uid 65534"), "{o:?}");
        assert_eq!(o.stderr.lines().count(), 1, "{o:?}");
    }
    assert_eq!(env.run(&["check", "192.0.2.50"]).code, 0, "nothing changed");
    assert_eq!(env.run(&["check", "192.0.2.51"]).code, 1);
    assert!(
        d.log_text()
            .contains("refused a change from an unprivileged peer")
    );
    drop(d);

    // Members of --writer-group may write (nobody's primary group is nogroup, 65534).
    let _d = env.start(&["--socket-mode", "0666", "--writer-group", "65534"]);
    let o = env.run_as_nobody(&["add", "192.0.2.52"]);
    assert_eq!(o.code, 0, "{o:?}");
}

#[test]
fn the_control_socket_survives_bad_input() {
    let env = Env::new();
    let _d = env.start(&[]);
    let sock = env.socket();

    let replies = raw(
        &sock,
        b"garbage\n{\"op\":\"explode\"}\n{\"op\":\"check\",\"addr\":\"999.1.1.1\"}\n{\"v\":7,\"op\":\"list\"}\n\xff\xfe\n{\"op\":\"check\",\"addr\":\"192.0.2.1\"}\n",
        6,
    );
    assert_eq!(replies.len(), 6, "{replies:?}");
    for r in &replies[..5] {
        assert!(r.contains("\"ok\":false"), "{r}");
    }
    assert!(
        replies[2].contains("invalid address '999.1.1.1'"),
        "{}",
        replies[2]
    );
    assert!(replies[3].contains("unsupported protocol version 7"));
    assert!(
        replies[5].contains("\"allowed\":false"),
        "still serving: {}",
        replies[5]
    );

    // Over 64 KiB without a newline: an error reply, then the connection is closed.
    let mut s = UnixStream::connect(&sock).unwrap();
    let _ = s.write_all(&vec![b'a'; 70 * 1024]);
    let mut reply = String::new();
    let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(&s), &mut reply);
    assert!(reply.contains("request too long"), "{reply}");
    assert!(closed(&mut s));

    // A client that connects and says nothing does not hold up anyone else.
    let _idle = UnixStream::connect(&sock).unwrap();
    assert_eq!(env.run(&["add", "192.0.2.77"]).code, 0);
    assert_eq!(env.run(&["check", "192.0.2.77"]).code, 0);
}

#[test]
fn bad_command_lines_get_one_line_errors_and_exit_2() {
    let env = Env::new();
    let cases: &[(&[&str], &str)] = &[
        (&["check", "192.0.2.300"], "invalid address '192.0.2.300'"),
        (&["add", "example.org"], "invalid address 'example.org'"),
        (
            &["add", "192.0.2.1", "--for", "soon"],
            "invalid duration 'soon'",
        ),
        (
            &["add", "192.0.2.1", "--for", "0s"],
            "invalid duration '0s'",
        ),
        (&["del", "10.0.0.0/40"], "'10.0.0.0/40'"),
        (
            &["daemon", "--expire", "forever"],
            "invalid duration 'forever'",
        ),
        (
            &["daemon", "--allow", "10.0.0.0/99"],
            "invalid network '10.0.0.0/99'",
        ),
        (
            &["daemon", "--socket-mode", "rw"],
            "invalid socket mode 'rw'",
        ),
        (
            &["daemon", "--writer-group", "no-such-group-x"],
            "unknown group 'no-such-group-x'",
        ),
    ];
    for (args, want) in cases {
        let o = env.run(args);
        assert_eq!(o.code, 2, "{args:?}: {o:?}");
        assert!(o.stderr.contains(want), "{args:?}: {o:?}");
        assert_eq!(o.stderr.lines().count(), 1, "one line: {args:?}: {o:?}");
        assert!(!o.stderr.contains("panicked"), "{o:?}");
    }
    assert!(
        !env.db().exists(),
        "nothing created for a refused command line"
    );
    let o = env.run(&["frobnicate"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("unrecognized subcommand"), "{o:?}");
    assert_eq!(env.run(&["--version"]).code, 0);
}

#[test]
fn a_stale_socket_file_is_replaced_but_a_live_one_is_not() {
    let env = Env::new();
    // A leftover file from a crash: nobody answers on it.
    drop(std::os::unix::net::UnixListener::bind(env.socket()).unwrap());
    assert!(env.socket().exists());
    let _d = env.start(&[]);
    assert_eq!(env.run(&["check", "192.0.2.1"]).code, 1);
    // A second daemon on the same socket (other database) must not steal it.
    let o = daemon_harness::Out::from(
        env.cmd()
            .env("RELAYLEASE_DB", env.path("db2"))
            .arg("daemon")
            .output()
            .unwrap(),
    );
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("already answering"), "{o:?}");
    assert_eq!(
        env.run(&["check", "192.0.2.1"]).code,
        1,
        "first daemon still answers"
    );
}
