//! Dovecot's auth-policy reports as a login source: a real Dovecot configured with
//! contrib/dovecot/92-relaylease-policy.conf grants relay through its HTTP reports alone (no
//! log followed, no hook), and the daemon's HTTP endpoint refuses whatever is not a good
//! report from Dovecot.

use crate::daemon_harness;

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::daemon_harness::{Env, eventually};
use crate::mail_rig::{Dovecot, PASSWORD, free_port, imap_login, pop3_login};

const SECRET: &str = "X-Relaylease-Secret: 6f1c0e4b9a2d";

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

fn soon(f: impl FnMut() -> bool) -> bool {
    eventually(Duration::from_secs(5), f)
}

/// May `addr` relay? As `relaylease check` says, to the daemon or (stopped) the database.
fn may_relay(env: &Env, addr: &str) -> bool {
    let o = env.run(&["check", addr]);
    assert!(o.code == 0 || o.code == 1, "{o:?}");
    o.code == 0
}

fn secret_file(env: &Env, text: &str) -> std::path::PathBuf {
    let p = env.path("dovecot-policy.secret");
    std::fs::write(&p, text).unwrap();
    p
}

/// The contrib snippet as shipped, pointed at this test's port, with [`SECRET`].
fn contrib_snippet(port: u16) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/dovecot/92-relaylease-policy.conf"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let header = "X-Relaylease-Secret: the-value-in-the-secret-file";
    assert!(text.contains("http://127.0.0.1:10032/") && text.contains(header));
    text.replace("127.0.0.1:10032", &format!("127.0.0.1:{port}"))
        .replace(header, SECRET)
}

/// With `-v`: one debug line per request answered, naming its command.
fn start_daemon(env: &Env, port: u16, secret: &Path) -> daemon_harness::Daemon {
    env.start(&[
        "-v",
        "--dovecot-policy",
        &format!("inet:127.0.0.1:{port}"),
        "--dovecot-policy-secret-file",
        secret.to_str().unwrap(),
    ])
}

#[test]
#[ignore = "needs root and Debian's dovecot (tests/run.sh installs and runs them)"]
fn dovecot_reports_grant_relay_and_logins_go_on_while_relaylease_is_stopped() {
    let env = Env::new();
    let port = free_port();
    let secret = secret_file(&env, &format!("{SECRET}\n"));
    let d = start_daemon(&env, port, &secret);
    let dovecot = Dovecot::start_with(env.dir.path(), &contrib_snippet(port));
    let pop3 = dovecot.pop3_port();
    let (good, failed, later, down) = (ip(91), ip(92), ip(93), ip(94));

    assert!(!may_relay(&env, &good.to_string()));
    assert!(
        pop3_login(good, pop3, "alice", PASSWORD),
        "{}\n{}",
        d.log_text(),
        dovecot.log()
    );
    assert!(
        soon(|| may_relay(&env, &good.to_string())),
        "no lease after a login\n{}\n{}",
        d.log_text(),
        dovecot.log()
    );

    // A failure is reported too, and grants nothing: once a later success is in, the
    // failure's report (sent before it) has been judged.
    assert!(!pop3_login(failed, pop3, "alice", "wrong"));
    dovecot.wait_for_log("Password mismatch");
    assert!(pop3_login(later, pop3, "bob", PASSWORD));
    assert!(soon(|| may_relay(&env, &later.to_string())));
    assert!(!may_relay(&env, &failed.to_string()), "{}", d.log_text());
    let stats = env.run(&["stats"]).stdout;
    assert!(stats.contains("logins from dovecot-policy: 2"), "{stats}");
    let list = env.run(&["list"]).stdout;
    assert!(list.contains("alice") && list.contains("bob"), "{list}");
    assert!(
        !dovecot.log().contains("Policy server"),
        "{}",
        dovecot.log()
    );
    // As the snippet asks, Dovecot only reported: it never waited for a check.
    let log = d.log_text();
    assert!(
        log.contains("command=report") && !log.contains("command=allow"),
        "{log}"
    );

    // relaylease stopped: Dovecot still authenticates (and refuses a wrong password), logging
    // that the policy server is unreachable; nothing is granted meanwhile.
    assert_eq!(d.stop(), 0);
    assert!(
        pop3_login(down, pop3, "alice", PASSWORD),
        "{}",
        dovecot.log()
    );
    assert!(!pop3_login(down, pop3, "alice", "wrong"));
    dovecot.wait_for_log("Policy server HTTP error");
    assert!(!may_relay(&env, &down.to_string()));
}

#[test]
#[ignore = "needs root and Debian's dovecot (tests/run.sh installs and runs them)"]
fn with_dovecots_default_checks_on_every_login_is_answered_go_on() {
    let env = Env::new();
    let port = free_port();
    let secret = secret_file(&env, &format!("{SECRET}\n"));
    let d = start_daemon(&env, port, &secret);
    // Later settings win: Dovecot's defaults for the checks, which the snippet turns off.
    let extra = contrib_snippet(port)
        + "auth_policy_check_before_auth = yes\nauth_policy_check_after_auth = yes\n";
    let dovecot = Dovecot::start_with(env.dir.path(), &extra);
    assert!(pop3_login(ip(95), dovecot.pop3_port(), "alice", PASSWORD));
    assert!(imap_login(ip(96), dovecot.imap_port(), "bob", PASSWORD));
    assert!(!imap_login(ip(97), dovecot.imap_port(), "bob", "wrong"));
    assert!(soon(
        || may_relay(&env, "127.0.0.95") && may_relay(&env, "127.0.0.96")
    ));
    dovecot.wait_for_log("Password mismatch");
    assert!(!may_relay(&env, "127.0.0.97"));
    let log = dovecot.log();
    assert!(
        !log.contains("Policy server") && !log.contains("policy server refusal"),
        "{log}"
    );
    let log = d.log_text();
    assert!(
        log.contains("command=allow") && log.contains("command=report"),
        "{log}"
    );
}

/// One request on its own connection; the status and the body of the reply.
fn http(port: u16, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer (and close) before taking all of a refused body.
    let _ = s.write_all(request);
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let status = reply
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP reply: {reply:?}"));
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn post(query: &str, header: Option<&str>, body: &str) -> Vec<u8> {
    let header = header.map_or(String::new(), |h| format!("{h}\r\n"));
    format!(
        "POST {query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n{header}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn report(addr: &str) -> String {
    format!(
        r#"{{"device_id":"","login":"alice","protocol":"pop3","pwhash":"0520","remote":"{addr}","session_id":"x","success":true,"policy_reject":false,"tls":false}}"#
    )
}

#[test]
fn over_tcp_only_a_good_report_with_the_secret_grants_and_bad_requests_get_http_errors() {
    let env = Env::new();
    let port = free_port();
    let secret = secret_file(&env, &format!("{SECRET}\n"));
    let d = start_daemon(&env, port, &secret);
    let neutral = r#"{"status":0,"msg":""}"#;

    // The request that grants, so the refusals below are refusals of that very request.
    let (status, body) = http(
        port,
        &post("/?command=report", Some(SECRET), &report("192.0.2.10")),
    );
    assert_eq!((status, body.as_str()), (200, neutral));
    assert!(may_relay(&env, "192.0.2.10"));

    let bad_json = report("192.0.2.11");
    let bad_json = &bad_json[..bad_json.len() - 1];
    let huge = format!(
        "POST /?command=report HTTP/1.1\r\nHost: 127.0.0.1\r\n{SECRET}\r\nContent-Length: 100000000\r\n\r\n{}",
        report("192.0.2.12")
    );
    let padded = format!(
        r#"{{"pad":"{}","remote":"192.0.2.13","success":true}}"#,
        "x".repeat(70 * 1024)
    );
    let chunked = format!(
        "POST /?command=report HTTP/1.1\r\nHost: 127.0.0.1\r\n{SECRET}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{padded}\r\n0\r\n\r\n",
        padded.len()
    );
    let wrong = "X-Relaylease-Secret: 6f1c0e4b9a2e";
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "bad JSON",
            post("/?command=report", Some(SECRET), bad_json),
            400,
        ),
        ("huge declared body", huge.into_bytes(), 413),
        ("huge chunked body", chunked.into_bytes(), 413),
        (
            "no secret",
            post("/?command=report", None, &report("192.0.2.14")),
            401,
        ),
        (
            "wrong secret",
            post("/?command=report", Some(wrong), &report("192.0.2.15")),
            403,
        ),
        (
            "wrong path",
            post("/admin?command=report", Some(SECRET), &report("192.0.2.16")),
            404,
        ),
        (
            "wrong method",
            format!(
                "GET /?command=report HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{SECRET}\r\n\r\n"
            )
            .into_bytes(),
            405,
        ),
    ];
    for (what, request, want) in cases {
        let (status, body) = http(port, &request);
        assert_eq!(status, want, "{what}: {body}");
        assert!(body.contains("\"error\""), "{what}: {body}");
    }
    for n in 11..=16 {
        assert!(!may_relay(&env, &format!("192.0.2.{n}")), "192.0.2.{n}");
    }
    // Not HTTP at all (a TLS hello): hyper's own 400, logged, and the daemon goes on.
    let (status, _) = http(port, b"\x16\x03\x01\x00\x05hello\r\n\r\n");
    assert_eq!(status, 400);
    // A failure report and an allow check: the neutral answer, nothing granted.
    let failure = report("192.0.2.17").replace(r#""success":true"#, r#""success":false"#);
    assert_eq!(
        http(port, &post("/?command=report", Some(SECRET), &failure)),
        (200, neutral.into())
    );
    assert_eq!(
        http(
            port,
            &post("/?command=allow", Some(SECRET), &report("192.0.2.18"))
        ),
        (200, neutral.into())
    );
    assert!(!may_relay(&env, "192.0.2.17") && !may_relay(&env, "192.0.2.18"));
    assert!(
        d.log_text().contains("dovecot-policy: request refused")
            && d.log_text().contains("dovecot-policy: not HTTP"),
        "{}",
        d.log_text()
    );
}

#[test]
fn a_reachable_address_or_a_bad_secret_file_is_refused_at_start() {
    let env = Env::new();
    let empty = env.path("empty.secret");
    std::fs::write(&empty, "\n").unwrap();
    let missing = env.path("missing.secret");
    let (empty, missing) = (empty.to_str().unwrap(), missing.to_str().unwrap());
    for (args, needle) in [
        (vec!["--dovecot-policy", "inet:0.0.0.0:10032"], "loopback"),
        (
            vec!["--dovecot-policy", "unix:/run/relaylease/dovecot.sock"],
            "TCP only",
        ),
        (
            vec![
                "--dovecot-policy",
                "inet:127.0.0.1:10032",
                "--dovecot-policy-secret-file",
                empty,
            ],
            "expected one line",
        ),
        (
            vec![
                "--dovecot-policy",
                "inet:127.0.0.1:10032",
                "--dovecot-policy-secret-file",
                missing,
            ],
            "cannot read",
        ),
    ] {
        let mut argv = vec!["daemon"];
        argv.extend(&args);
        let o = env.run(&argv);
        assert_eq!(o.code, 2, "{args:?}: {o:?}");
        assert!(o.stderr.contains(needle), "{args:?}: {o:?}");
        assert_eq!(o.stderr.trim().lines().count(), 1, "{args:?}: {o:?}");
    }
}

/// `curl` run as `nobody`, posting a successful report for `addr` with `header` (if any).
/// Returns the HTTP status.
fn report_as_nobody(port: u16, header: Option<&str>, addr: &str) -> String {
    let mut c = std::process::Command::new("curl");
    c.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"]);
    if let Some(h) = header {
        c.args(["-H", h]);
    }
    c.args(["--data", &report(addr)])
        .arg(format!("http://127.0.0.1:{port}/?command=report"))
        .stdin(std::process::Stdio::null());
    let out = daemon_harness::as_nobody(&mut c)
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
#[ignore = "needs root and Debian's curl (tests/run.sh installs and runs them)"]
fn nobody_cannot_report_a_login_unless_the_daemon_was_told_to_take_reports_without_a_secret() {
    // Default: no secret, no start, one line naming the fix.
    let env = Env::new();
    let port = free_port();
    let addr = format!("inet:127.0.0.1:{port}");
    let o = env.run(&["daemon", "--dovecot-policy", &addr]);
    assert_eq!(o.code, 2, "{o:?}");
    assert_eq!(o.stderr.trim().lines().count(), 1, "{o:?}");
    assert!(
        o.stderr.contains("needs --dovecot-policy-secret-file"),
        "{o:?}"
    );

    // With the secret: nobody, who cannot read it, is refused and grants nothing.
    let secret = secret_file(&env, &format!("{SECRET}\n"));
    let d = start_daemon(&env, port, &secret);
    assert_eq!(report_as_nobody(port, None, "203.0.113.66"), "401");
    assert_eq!(
        report_as_nobody(port, Some("X-Relaylease-Secret: guess"), "203.0.113.66"),
        "403"
    );
    assert!(!may_relay(&env, "203.0.113.66"));
    drop(d);

    // --dovecot-policy-no-secret is what opens it: the same request from nobody grants.
    let d = env.start(&["--dovecot-policy", &addr, "--dovecot-policy-no-secret"]);
    assert!(
        d.log_text().contains(
            "--dovecot-policy-no-secret: any local process can report a login and open the relay"
        ),
        "{}",
        d.log_text()
    );
    assert_eq!(report_as_nobody(port, None, "203.0.113.66"), "200");
    assert!(may_relay(&env, "203.0.113.66"));
}
