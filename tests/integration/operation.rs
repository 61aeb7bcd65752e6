//! Running on a real host: dropping root, signals, and the log formats an administrator reads.

use crate::daemon_harness;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::daemon_harness::{Env, eventually};

fn status_field(pid: i32, field: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
#[ignore = "needs root (tests/run.sh runs it): the daemon drops root"]
fn the_daemon_drops_root_and_still_reads_a_log_through_its_group() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test starts the daemon as root and must run as root"
    );
    let env = Env::new();
    // Like /tmp: the unprivileged daemon must reach its files and remove its socket.
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let logs = env.path("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("mail.log");
    std::fs::write(&log, "").unwrap();
    // root:adm 0640, as Debian keeps /var/log/mail.log.
    let adm = nix::unistd::Group::from_name("adm")
        .unwrap()
        .expect("group adm");
    nix::unistd::chown(&log, Some(nix::unistd::Uid::from_raw(0)), Some(adm.gid)).unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o640)).unwrap();

    let d = env.start(&[
        "--user",
        "nobody",
        "--group",
        "adm",
        "--watch",
        log.to_str().unwrap(),
    ]);
    assert_eq!(
        status_field(d.pid(), "Uid"),
        "65534",
        "real uid after start"
    );
    assert_eq!(status_field(d.pid(), "Gid"), adm.gid.to_string());
    assert!(d.log_text().contains("dropped root privileges"));
    assert!(!d.log_text().contains("running as root"));

    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(
        f,
        "{} vm dovecot: imap-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.80, lip=127.0.0.1, mpid=1, session=<x>",
        daemon_harness::stamp_now()
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || env
            .run(&["check", "192.0.2.80"])
            .code
            == 0),
        "{}",
        d.log_text()
    );
    // Rotated by logrotate with `create 0640 root adm`: still readable after the switch.
    std::fs::rename(&log, logs.join("mail.log.1")).unwrap();
    let mut g = std::fs::File::create(&log).unwrap();
    nix::unistd::chown(&log, Some(nix::unistd::Uid::from_raw(0)), Some(adm.gid)).unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o640)).unwrap();
    writeln!(
        g,
        "{} vm dovecot: imap-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.81, lip=127.0.0.1, mpid=1, session=<y>",
        daemon_harness::stamp_now()
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || env
            .run(&["check", "192.0.2.81"])
            .code
            == 0),
        "{}",
        d.log_text()
    );
    // Manual changes still work through the socket (root is always a writer).
    assert_eq!(env.run(&["add", "192.0.2.82"]).code, 0);
    assert_eq!(d.stop(), 0);
    assert!(
        !env.socket().exists(),
        "the unprivileged daemon removed its socket"
    );
}

#[test]
#[ignore = "needs root (tests/run.sh runs it)"]
fn running_as_root_without_user_warns() {
    let env = Env::new();
    let d = env.start(&[]);
    assert!(d.log_text().contains("running as root"), "{}", d.log_text());
}

#[test]
fn sigterm_answers_what_is_in_flight_and_exits_0_quickly() {
    let env = Env::new();
    let policy = env.path("policy.sock");
    let d = env.start(&["--policy", &format!("unix:{}", policy.display())]);
    // An open Postfix-style connection must not hold up the exit.
    let _held = std::os::unix::net::UnixStream::connect(&policy).unwrap();
    let start = Instant::now();
    assert_eq!(d.stop(), 0);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(
        !env.socket().exists() && !policy.exists(),
        "sockets removed"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let env = Env::new();
    let d = env.start(&["--log-format", "json"]);
    assert_eq!(env.run(&["add", "192.0.2.90"]).code, 0);
    assert!(eventually(Duration::from_secs(5), || d
        .log_text()
        .contains("lease added")));
    for line in d.log_text().lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{line}"
        );
    }
    let added = d
        .log_text()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["fields"]["message"] == "lease added")
        .unwrap();
    assert_eq!(added["fields"]["addr"], "192.0.2.90");
}

#[test]
fn under_systemd_the_journal_stamps_lines_not_us() {
    let env = Env::new();
    let mut c = env.cmd();
    c.env("JOURNAL_STREAM", "8:12345")
        .args(["add", "192.0.2.91", "-v"]);
    let o = daemon_harness::Out::from(c.output().unwrap());
    assert_eq!(o.code, 0, "{o:?}");
    let line = o
        .stderr
        .lines()
        .find(|l| l.contains("lease added"))
        .unwrap_or_else(|| panic!("{o:?}"));
    assert!(
        line.starts_with(" INFO") || line.starts_with("INFO"),
        "no timestamp: {line}"
    );
}

/// What ucspi-tcp's `tcprulescheck` says the cdb does for a client at `ip`.
fn tcprulescheck(cdb: &std::path::Path, ip: &str) -> String {
    let out = std::process::Command::new("tcprulescheck")
        .arg(cdb)
        .env("TCPREMOTEIP", ip)
        .env_remove("TCPREMOTEINFO")
        .env_remove("TCPREMOTEHOST")
        .output()
        .expect("run tcprulescheck (Debian package ucspi-tcp-ipv6; ./tests/run.sh installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dovecot_login(log: &std::path::Path, ip: &str) {
    let line = format!(
        "{} vm dovecot: pop3-login: Login: user=<alice>, method=PLAIN, rip={ip}, lip=127.0.0.1, mpid=4242, session=<abcdEFGH>\n",
        daemon_harness::stamp_now()
    );
    let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    f.write_all(line.as_bytes()).unwrap();
}

#[test]
fn sighup_rereads_the_base_rules_rebuilds_the_cdb_and_reopens_the_logs() {
    let env = Env::new();
    let (cdb, base, log) = (
        env.path("relay.cdb"),
        env.path("relay.rules"),
        env.path("mail.log"),
    );
    std::fs::write(&base, "127.0.0.59:allow,RELAYCLIENT=\"static\"\n").unwrap();
    std::fs::write(&log, "").unwrap();
    let d = env.start(&[
        "--tcprules",
        cdb.to_str().unwrap(),
        "--tcprules-base",
        base.to_str().unwrap(),
        "--watch",
        log.to_str().unwrap(),
    ]);
    let soon = |f: &mut dyn FnMut() -> bool| eventually(Duration::from_secs(5), f);
    assert!(soon(
        &mut || tcprulescheck(&cdb, "127.0.0.59").contains("RELAYCLIENT=static")
    ));
    dovecot_login(&log, "192.0.2.61");
    assert!(soon(
        &mut || tcprulescheck(&cdb, "192.0.2.61").contains("RELAYCLIENT=\n")
    ));

    // The administrator edits the base file; nothing changes until SIGHUP.
    std::fs::write(&base, "127.0.0.60:deny\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(tcprulescheck(&cdb, "127.0.0.59").contains("RELAYCLIENT=static"));
    d.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        soon(&mut || tcprulescheck(&cdb, "127.0.0.60").contains("deny connection")),
        "{}",
        d.log_text()
    );
    let old = tcprulescheck(&cdb, "127.0.0.59");
    assert!(
        old.starts_with("default:"),
        "old static rule still there: {old}"
    );
    assert!(tcprulescheck(&cdb, "192.0.2.61").contains("RELAYCLIENT=\n"));
    assert!(d.log_text().contains("re-read the tcprules base file"));

    // The watched log was reopened: later lines count, earlier ones are not read again.
    dovecot_login(&log, "192.0.2.62");
    assert!(soon(
        &mut || tcprulescheck(&cdb, "192.0.2.62").contains("RELAYCLIENT=\n")
    ));
    let list = env.run(&["list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&list.stdout).expect("list --json");
    let logins: Vec<(String, u64)> = v["leases"]
        .as_array()
        .expect("leases")
        .iter()
        .map(|l| {
            (
                l["net"].as_str().unwrap_or("").to_string(),
                l["logins"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        logins
            .iter()
            .find(|(n, _)| n == "192.0.2.61/32")
            .map(|l| l.1),
        Some(1),
        "{list:?}"
    );

    // A base file that no longer parses keeps the rules in force, loudly.
    std::fs::write(&base, "this is not a rule\n").unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        soon(&mut || d
            .log_text()
            .contains("keeping the previous tcprules base rules")),
        "{}",
        d.log_text()
    );
    assert!(tcprulescheck(&cdb, "127.0.0.60").contains("deny connection"));
    assert!(tcprulescheck(&cdb, "192.0.2.62").contains("RELAYCLIENT=\n"));
}
