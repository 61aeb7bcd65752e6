//! Secure by default: a local process running as `nobody` cannot create a lease through a
//! followed log, the hook or `add` unless a flag named for the risk opens that way. One test
//! per row of docs/security.md (the Dovecot auth-policy and Redis rows are in
//! dovecot_policy.rs and redis.rs, beside their servers).

use crate::daemon_harness;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::daemon_harness::{Env, as_nobody, eventually};

fn may_relay(env: &Env, addr: &str) -> bool {
    let o = env.run(&["check", addr]);
    assert!(o.code == 0 || o.code == 1, "{o:?}");
    o.code == 0
}

fn login_line(addr: &str) -> String {
    format!(
        "{} vm dovecot: pop3-login: Login: user=<mallory>, method=PLAIN, rip={addr}, lip=127.0.0.1, mpid=9, secured, session=<f0rg3d>\n",
        daemon_harness::stamp_now()
    )
}

/// Append a perfect Dovecot login line to `log` as `nobody`, as a hostile local user would.
fn append_as_nobody(log: &Path, addr: &str) -> bool {
    let mut c = std::process::Command::new("sh");
    c.args(["-c", "printf '%s' \"$1\" >> \"$2\"", "sh"])
        .arg(login_line(addr))
        .arg(log);
    as_nobody(&mut c).status().expect("run sh").success()
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(p: &Path, uid: u32, gid: u32) {
    nix::unistd::chown(
        p,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .unwrap();
}

/// A `logs` directory in a fresh environment that `nobody` can reach.
fn logs_dir(env: &Env) -> std::path::PathBuf {
    chmod(env.dir.path(), 0o755);
    let logs = env.path("logs");
    std::fs::create_dir(&logs).unwrap();
    logs
}

/// A way to make a log untrustworthy: what it is, what it does, what the refusal says.
type Spoiled = (&'static str, fn(&Path), &'static str);

#[test]
#[ignore = "needs root (tests/run.sh runs it): writes as nobody and changes owners"]
fn a_log_any_user_can_write_is_refused_at_start_with_one_line() {
    let env = Env::new();
    let logs = logs_dir(&env);
    let sticky = env.path("tmp");
    std::fs::create_dir(&sticky).unwrap();
    chmod(&sticky, 0o1777);
    let cases: [Spoiled; 4] = [
        (
            "world-writable file",
            |p| chmod(p, 0o666),
            "writable by every user (mode 0666)",
        ),
        (
            "owned by nobody",
            |p| chown(p, 65534, 65534),
            "owned by an ordinary user (uid 65534)",
        ),
        (
            "owned by uid 1000",
            |p| chown(p, 1000, 1000),
            "owned by an ordinary user (uid 1000)",
        ),
        (
            "in a sticky directory like tmp",
            |_| {},
            "every user can write (mode 1777)",
        ),
    ];
    for (i, (what, spoil, needle)) in cases.into_iter().enumerate() {
        let addr = format!("192.0.2.{}", 60 + i);
        let dir = if what.contains("sticky") {
            &sticky
        } else {
            &logs
        };
        let log = dir.join(format!("{}.log", what.replace(' ', "-")));
        std::fs::write(&log, "").unwrap();
        chmod(&log, 0o644);
        spoil(&log);
        let o = env.run(&["daemon", "--watch", log.to_str().unwrap()]);
        assert_eq!(o.code, 2, "{what}: {o:?}");
        let err = o.stderr.trim();
        assert_eq!(err.lines().count(), 1, "{what}: {o:?}");
        assert!(
            err.contains(needle) && err.contains("--watch-insecure"),
            "{what}: {o:?}"
        );
        assert!(!env.socket().exists(), "{what}: a socket was left behind");

        // The flag, not an accident, opens it: nobody's forged line then grants relay.
        chmod(&log, 0o666);
        let d = env.start(&["--watch", log.to_str().unwrap(), "--watch-insecure"]);
        assert!(
            d.log_text()
                .contains("--watch-insecure: log files that ordinary users can write"),
            "{}",
            d.log_text()
        );
        assert!(append_as_nobody(&log, &addr), "{what}");
        assert!(
            eventually(Duration::from_secs(5), || may_relay(&env, &addr)),
            "{what}: {}",
            d.log_text()
        );
        assert_eq!(d.stop(), 0);
    }
}

#[test]
#[ignore = "needs root (tests/run.sh runs it): changes owners"]
fn debian_and_ubuntu_log_layouts_are_followed() {
    let adm = 4; // group adm on Debian and Ubuntu
    let env = Env::new();
    // Debian: /var/log root:root 0755, mail.log root:adm 0640.
    let debian = logs_dir(&env);
    let debian_log = debian.join("mail.log");
    std::fs::write(&debian_log, "").unwrap();
    chown(&debian_log, 0, adm);
    chmod(&debian_log, 0o640);
    // Ubuntu: /var/log root:syslog 0775 (group-writable), mail.log syslog:adm 0640 (syslog
    // is a system user, uid 104 on Ubuntu).
    let ubuntu = env.path("ubuntu-log");
    std::fs::create_dir(&ubuntu).unwrap();
    chown(&ubuntu, 0, adm);
    chmod(&ubuntu, 0o775);
    let ubuntu_log = ubuntu.join("mail.log");
    std::fs::write(&ubuntu_log, "").unwrap();
    chown(&ubuntu_log, 104, adm);
    chmod(&ubuntu_log, 0o640);

    let d = env.start(&[
        "--watch",
        debian_log.to_str().unwrap(),
        "--watch",
        ubuntu_log.to_str().unwrap(),
    ]);
    for (log, addr) in [(&debian_log, "192.0.2.70"), (&ubuntu_log, "192.0.2.71")] {
        let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
        f.write_all(login_line(addr).as_bytes()).unwrap();
        assert!(
            eventually(Duration::from_secs(5), || may_relay(&env, addr)),
            "{}: {}",
            log.display(),
            d.log_text()
        );
    }
    assert!(!d.log_text().contains("watch-insecure"), "{}", d.log_text());
}

#[test]
#[ignore = "needs root (tests/run.sh runs it): writes as nobody"]
fn a_log_rotated_into_a_file_any_user_can_write_grants_nothing() {
    let env = Env::new();
    let logs = logs_dir(&env);
    let log = logs.join("mail.log");
    std::fs::write(&log, "").unwrap();
    chmod(&log, 0o640);
    let d = env.start(&["--watch", log.to_str().unwrap()]);

    // Rotated by a logrotate told `create 0666`: the new file is anyone's to write.
    std::fs::rename(&log, logs.join("mail.log.1")).unwrap();
    std::fs::write(&log, "").unwrap();
    chmod(&log, 0o666);
    assert!(append_as_nobody(&log, "192.0.2.67"));
    let refused = "the file is writable by every user (mode 0666)";
    assert!(
        eventually(Duration::from_secs(5), || d.log_text().contains(refused)),
        "{}",
        d.log_text()
    );
    // Given time to be read, had it been trusted, and a SIGHUP reopen: still nothing.
    d.signal(nix::sys::signal::Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!may_relay(&env, "192.0.2.67"), "{}", d.log_text());
    assert_eq!(
        d.log_text().matches(refused).count(),
        1,
        "said once per file: {}",
        d.log_text()
    );

    // Permissions fixed (the administrator's next rotation): logins are followed again.
    std::fs::rename(&log, logs.join("mail.log.2")).unwrap();
    std::fs::write(&log, "").unwrap();
    chmod(&log, 0o640);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(login_line("192.0.2.68").as_bytes())
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || may_relay(&env, "192.0.2.68")),
        "{}",
        d.log_text()
    );
    assert!(!may_relay(&env, "192.0.2.67"));
}

#[test]
#[ignore = "needs root (tests/run.sh runs it): runs the hook as nobody"]
fn nobody_cannot_report_a_login_through_the_hook_or_add_one() {
    let env = Env::new();
    chmod(env.dir.path(), 0o755);
    // Every local user may connect (and ask), as the warning at start says.
    let d = env.start(&["--socket-mode", "0666"]);
    assert!(
        d.log_text()
            .contains("--socket-mode lets every local user connect to the control socket"),
        "{}",
        d.log_text()
    );
    let hook = |addr: &str| {
        let mut c = env.cmd();
        c.args([
            "hook",
            "--ip",
            addr,
            "--user",
            "mallory",
            "--",
            "sh",
            "-c",
            "echo login-went-on",
        ]);
        daemon_harness::Out::from(as_nobody(&mut c).output().expect("run hook"))
    };
    let o = hook("192.0.2.90");
    // The login itself goes on; the report is refused.
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("login-went-on"), "{o:?}");
    let o = env.run_as_nobody(&["add", "192.0.2.91"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("permission denied: uid 65534"), "{o:?}");
    assert!(!may_relay(&env, "192.0.2.90"));
    assert!(!may_relay(&env, "192.0.2.91"));
    assert!(
        d.log_text()
            .contains("refused a change from an unprivileged peer"),
        "{}",
        d.log_text()
    );
    drop(d);

    // --writer-group is the flag that opens it (nobody's group is nogroup, 65534).
    let d = env.start(&["--socket-mode", "0666", "--writer-group", "65534"]);
    assert_eq!(
        d.log_text()
            .matches("--socket-mode lets every local user")
            .count(),
        1,
        "warned at the first start only: {}",
        d.log_text()
    );
    let o = hook("192.0.2.90");
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(env.run_as_nobody(&["add", "192.0.2.91"]).code, 0);
    assert!(may_relay(&env, "192.0.2.90"));
    assert!(may_relay(&env, "192.0.2.91"));
}

#[test]
fn policy_and_socketmap_beyond_loopback_are_warned_about() {
    let env = Env::new();
    let d = env.start(&[
        "--policy",
        "inet:0.0.0.0:0",
        "--socketmap",
        "inet:127.0.0.1:0",
    ]);
    let text = d.log_text();
    assert!(
        text.contains("--policy listens beyond this host")
            && !text.contains("--socketmap listens beyond this host"),
        "{text}"
    );
}
