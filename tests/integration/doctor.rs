//! `relaylease doctor` against the rig's real Postfix and Dovecot configurations: it passes on
//! the working setup and, broken in one way at a time, fails that one check with its fix, and
//! passes again once the fix is made.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::daemon_harness::{Env, Out};
use crate::mail_rig::{Dovecot, Postfix};

fn doctor(env: &Env, args: &[&str]) -> Out {
    env.run(&[&["doctor"], args].concat())
}

/// The line of check `name`, which must be there.
fn line<'a>(out: &'a Out, name: &str) -> &'a str {
    let tag = format!(" {name}: ");
    out.stdout
        .lines()
        .find(|l| l.contains(&tag))
        .unwrap_or_else(|| panic!("no {name} line\n{out:?}"))
}

fn assert_clean(out: &Out) {
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains("FAIL"), "{out:?}");
}

/// Exit 1, `name` failed with a fix containing `fix`, and nothing else failed.
fn assert_fails(out: &Out, name: &str, fix: &str) {
    assert_eq!(out.code, 1, "{out:?}");
    let l = line(out, name);
    assert!(
        l.starts_with("FAIL ") && l.contains(fix),
        "{name}: {l}\n{out:?}"
    );
    let fails = out.stdout.lines().filter(|l| l.starts_with("FAIL")).count();
    assert_eq!(fails, 1, "only {name} fails\n{out:?}");
}

fn postconf(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("postconf")
        .arg("-c")
        .arg(dir)
        .args(args)
        .output()
        .expect("run postconf");
    assert!(out.status.success(), "postconf {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
#[ignore = "needs root and Debian's postfix and dovecot (tests/run.sh installs and runs them)"]
fn postfix_each_break_fails_its_check_and_its_fix_passes() {
    let env = Env::new();
    let dir = env.dir.path().to_path_buf();
    let dovecot = Dovecot::start(&dir);
    let policy = format!("unix:{}", env.path("policy.sock").display());
    let flags = [
        "--watch",
        dovecot.log_path().to_str().unwrap(),
        "--policy",
        &policy,
    ];
    let _d = env.start(&flags);
    let postfix = Postfix::start(&dir, Some(&policy));
    let conf = postfix.config_dir();
    let confs = conf.to_str().unwrap();
    let dconf = dovecot.config_path().to_str().unwrap();
    let args: Vec<&str> = ["--postfix-config", confs, "--dovecot-config", dconf]
        .into_iter()
        .chain(flags)
        .collect();
    let good = doctor(&env, &args);
    assert_clean(&good);
    for name in [
        "daemon.answers",
        "postfix.placement",
        "postfix.default_action",
        "postfix.chroot",
        "postfix.timeouts",
        "postfix.socket_access",
        "dovecot.log",
        "dovecot.login_format",
        "daemon.watch_readable",
        "daemon.db_owner",
        "daemon.clock_zone",
        "daemon.session_hold",
    ] {
        assert!(line(&good, name).starts_with("ok "), "{name}\n{good:?}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&doctor(&env, &[&["--json"], &args[..]].concat()).stdout)
            .expect("--json gives JSON");
    assert_eq!(json["failed"], 0);

    let relay = postconf(conf, &["-h", "smtpd_relay_restrictions"]);
    let set = |v: &str| postconf(conf, &["-e", &format!("smtpd_relay_restrictions={v}")]);

    // The check after reject_unauth_destination.
    let moved = relay.replace(", reject_unauth_destination", "");
    set(&format!("reject_unauth_destination, {moved}"));
    assert_fails(
        &doctor(&env, &args),
        "postfix.placement",
        "move the relaylease check before reject_unauth_destination",
    );
    // Missing entirely.
    set("permit_mynetworks, reject_unauth_destination");
    assert_fails(&doctor(&env, &args), "postfix.placement", &policy);
    // No default_action, and mail to local domains reaches the check.
    set(&relay
        .replace(", default_action=DUNNO", "")
        .replace("permit_auth_destination,", ""));
    assert_fails(
        &doctor(&env, &args),
        "postfix.default_action",
        "default_action=DUNNO",
    );
    // A policy timeout of 0.
    set(&relay.replace("timeout=10s", "timeout=0"));
    assert_fails(&doctor(&env, &args), "postfix.timeouts", "timeout=10s");
    set(&relay);
    assert_clean(&doctor(&env, &args));

    // smtpd chrooted: the absolute socket path is looked up under the queue directory.
    let service = format!("{}/inet", postfix.smtp_port());
    postconf(conf, &["-F", &format!("{service}/chroot=y")]);
    let out = doctor(&env, &args);
    assert_fails(&out, "postfix.chroot", "/private/relaylease");
    postconf(conf, &["-F", &format!("{service}/chroot=n")]);
    assert_clean(&doctor(&env, &args));

    // The socket's mode keeps user postfix out.
    let sock = env.path("policy.sock");
    chmod(&sock, 0o600);
    assert_fails(
        &doctor(&env, &args),
        "postfix.socket_access",
        "--policy-mode 0666",
    );
    chmod(&sock, 0o666);
    assert_clean(&doctor(&env, &args));

    // The socketmap lookup of contrib/postfix/socketmap.cf.snippet, asking for another map
    // than the daemon's --socketmap-name.
    let socketmap = crate::mail_rig::contrib_restrictions("socketmap.cf.snippet", "socketmap:");
    let sm_args = [
        "--postfix-config",
        confs,
        "--socketmap",
        "unix:/run/relaylease/socketmap.sock",
    ];
    set(&socketmap.replace(":relaylease,", ":pbs,"));
    assert_fails(
        &doctor(&env, &sm_args),
        "postfix.socketmap_name",
        "--socketmap-name pbs",
    );
    set(&socketmap);
    let out = doctor(&env, &sm_args);
    assert_clean(&out);
    assert!(
        line(&out, "postfix.socketmap_name").starts_with("ok "),
        "{out:?}"
    );
    set(&relay);

    // A configuration postconf cannot read: doctor could not run.
    let out = doctor(
        &env,
        &[&["--postfix-config", "/nonexistent/postfix"], &flags[..]].concat(),
    );
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("postconf"), "{out:?}");
}

#[test]
#[ignore = "needs root and Debian's dovecot (tests/run.sh installs and runs them)"]
fn dovecot_each_break_fails_its_check_and_its_fix_passes() {
    let env = Env::new();
    let dir = env.dir.path().to_path_buf();
    let dovecot = Dovecot::start(&dir);
    let conf = dovecot.config_path();
    let original = std::fs::read_to_string(conf).unwrap();
    let log = dovecot.log_path().to_str().unwrap();
    let _d = env.start(&["--watch", log]);
    let dconf = conf.to_str().unwrap();
    let args = ["--dovecot-config", dconf, "--watch", log];
    assert_clean(&doctor(&env, &args));
    let with = |extra: &str| std::fs::write(conf, format!("{original}{extra}")).unwrap();

    // Logins logged to another file than the followed one.
    let info = env.path("dovecot-info.log");
    with(&format!("info_log_path = {}\n", info.display()));
    assert_fails(
        &doctor(&env, &args),
        "dovecot.log",
        &format!("--watch {}", info.display()),
    );
    // ... or to syslog.
    with("info_log_path = syslog\n");
    assert_fails(&doctor(&env, &args), "dovecot.log", "--journal");
    // Login lines without the client address, then without mpid/session.
    with("login_log_format_elements = user=<%u> method=%m lip=%l %c\n");
    assert_fails(&doctor(&env, &args), "dovecot.login_format", "rip=%r");
    with("login_log_format_elements = user=<%u> method=%m rip=%r lip=%l %c\n");
    assert_fails(
        &doctor(&env, &args),
        "dovecot.login_format",
        "--max-session-hold 0",
    );
    let no_hold = [&args[..], &["--max-session-hold", "0"]].concat();
    assert_clean(&doctor(&env, &no_hold));
    with("");
    assert_clean(&doctor(&env, &args));

    // Auth-policy reports: the header given as a <file include keeps its newline.
    let secret = env.path("policy.secret");
    std::fs::write(&secret, "X-Relaylease-Secret: s3cret-value-1234\n").unwrap();
    let policy_args = [
        "--dovecot-config",
        dconf,
        "--dovecot-policy",
        "inet:127.0.0.1:10032",
        "--dovecot-policy-secret-file",
        secret.to_str().unwrap(),
    ];
    let policy = "auth_policy_server_url = http://127.0.0.1:10032/\nauth_policy_hash_nonce = n0nce\nauth_policy_report_after_auth = yes\n";
    with(&format!(
        "{policy}auth_policy_server_api_header = <{}\n",
        secret.display()
    ));
    assert_fails(
        &doctor(&env, &policy_args),
        "dovecot.auth_policy",
        "not as <file",
    );
    with(&format!(
        "{policy}auth_policy_server_api_header = X-Relaylease-Secret: wrong\n"
    ));
    assert_fails(
        &doctor(&env, &policy_args),
        "dovecot.auth_policy",
        "secret file's line",
    );
    with(&format!(
        "{}auth_policy_server_api_header = X-Relaylease-Secret: s3cret-value-1234\n",
        policy.replace("10032", "10099")
    ));
    assert_fails(
        &doctor(&env, &policy_args),
        "dovecot.auth_policy",
        "auth_policy_server_url = http://127.0.0.1:10032/",
    );
    with(&format!(
        "{policy}auth_policy_server_api_header = X-Relaylease-Secret: s3cret-value-1234\n"
    ));
    let out = doctor(&env, &policy_args);
    assert_clean(&out);
    assert!(
        line(&out, "dovecot.auth_policy").starts_with("ok "),
        "{out:?}"
    );

    // The post-login script of contrib/dovecot, without a group that may report logins.
    let script = env.path("relaylease-postlogin");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/contrib/dovecot/relaylease-postlogin"
        ),
        &script,
    )
    .unwrap();
    let contrib = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/dovecot/91-relaylease.conf"
    ))
    .unwrap()
    .replace(
        "/usr/local/lib/relaylease/relaylease-postlogin",
        script.to_str().unwrap(),
    );
    with(&contrib);
    let hook_args = ["--dovecot-config", dconf];
    assert_fails(
        &doctor(&env, &hook_args),
        "dovecot.post_login",
        "--writer-group",
    );
    // The script runs as dovecot ($default_internal_user), who must be in the writer group.
    assert_fails(
        &doctor(
            &env,
            &[&hook_args[..], &["--writer-group", "nogroup"]].concat(),
        ),
        "dovecot.post_login",
        "adduser dovecot nogroup",
    );
    let out = doctor(
        &env,
        &[&hook_args[..], &["--writer-group", "dovecot"]].concat(),
    );
    assert!(
        line(&out, "dovecot.post_login").starts_with("ok "),
        "{out:?}"
    );
    assert_clean(&out);
}

#[test]
#[ignore = "needs root (it tries files as other users)"]
fn host_each_break_fails_its_check_and_its_fix_passes() {
    let env = Env::new();
    let log = env.path("dovecot.log");
    let stamp = chrono_free_local_stamp();
    std::fs::write(
        &log,
        format!("{stamp} pop3-login: Info: Login: user=<a>, method=PLAIN, rip=192.0.2.1, lip=192.0.2.2, mpid=1, session=<x>\n"),
    )
    .unwrap();
    chmod(&log, 0o600);
    let logs = log.to_str().unwrap();
    let d = env.start(&["--watch", logs]);
    // This host's Dovecot logs elsewhere: the checks read a configuration that logs here.
    let dc = env.path("dovecot.conf");
    std::fs::write(&dc, format!("log_path = {logs}\n")).unwrap();
    let dcs = dc.to_str().unwrap();
    let hd = |args: &[&str]| doctor(&env, &[&["--dovecot-config", dcs], args].concat());
    let args = ["--watch", logs];
    assert_clean(&hd(&args));

    // The log as the user the daemon becomes.
    let as_nobody = ["--watch", logs, "--user", "nobody"];
    assert_fails(&hd(&as_nobody), "daemon.watch_readable", "adm");
    chmod(&log, 0o644);
    let out = hd(&as_nobody);
    assert!(
        line(&out, "daemon.watch_readable").starts_with("ok "),
        "{out:?}"
    );

    // A log every user can write, with sessions held.
    chmod(&log, 0o666);
    assert_fails(&hd(&args), "daemon.session_hold", "--max-session-hold 0");
    assert_clean(&hd(&[&args[..], &["--max-session-hold", "0"]].concat()));
    chmod(&log, 0o644);

    // syslog's local time read in another zone.
    let out = Out::from(
        env.cmd()
            .env("TZ", "UTC-9")
            .args(["doctor", "--dovecot-config", dcs, "--watch", logs])
            .output()
            .unwrap(),
    );
    if std::env::var("TZ").ok().as_deref() != Some("UTC-9") {
        assert_fails(&out, "daemon.clock_zone", "TZ");
    }

    // The database directory writable by others.
    let db = env.db();
    let mode = std::fs::metadata(&db).unwrap().permissions().mode();
    chmod(&db, 0o777);
    assert_fails(&hd(&args), "daemon.db_owner", "chmod go-w");
    chmod(&db, mode & 0o7777);
    assert_clean(&hd(&args));

    // qmail: the cdb, as tcpserver's user, and the static rules.
    let cdb = env.path("relay.cdb");
    let base = env.path("tcp.smtp");
    std::fs::write(&base, "127.0.0.1:allow,RELAYCLIENT=\"\"\n").unwrap();
    let q = [
        "--tcprules",
        cdb.to_str().unwrap(),
        "--tcprules-base",
        base.to_str().unwrap(),
        "--tcprules-user",
        "nobody",
    ];
    assert_fails(&hd(&q), "qmail.cdb", "before tcpserver");
    std::fs::write(&cdb, b"").unwrap();
    chmod(&cdb, 0o600);
    assert_fails(&hd(&q), "qmail.cdb", "readable by all");
    chmod(&cdb, 0o644);
    assert_clean(&hd(&q));
    std::fs::write(&base, "127.0.0.1:allow,RELAYCLIENT=\"\n").unwrap();
    assert_fails(&hd(&q), "qmail.base_rules", "tcprules syntax");

    // The daemon stopped.
    d.stop();
    assert_fails(
        &hd(&["--max-session-hold", "0"]),
        "daemon.answers",
        "systemctl start relaylease",
    );
}

/// `Dec  5 08:30:00`: now, as syslog writes it in this process's zone.
fn chrono_free_local_stamp() -> String {
    let out = Command::new("date")
        .arg("+%b %e %H:%M:%S")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}
