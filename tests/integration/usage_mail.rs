//! Who relayed, with the real programs: POP3/IMAP logins to Dovecot, mail through Postfix
//! (configured as contrib/postfix/main.cf.snippet says) relayed on to Postfix's own
//! smtp-sink, and tcpserver for qmail. Shows the audit lines joined to Postfix's queue ids,
//! the usage table after several users' logins and relays, the header on and off, the token
//! round trip, `--unleased-action defer`, the freeze in two commands, and TCPREMOTEINFO.

use crate::daemon_harness;

use std::io::Read;
use std::net::{IpAddr, Shutdown};
use std::path::Path;
use std::time::Duration;

use crate::daemon_harness::{BIN, Daemon, Env, eventually};
use crate::mail_rig::{
    Dovecot, LOCAL_RCPT, PASSWORD, Postfix, REMOTE_RCPT, SmtpSink, TcpServer, connect_from,
    contrib_parameter, contrib_restrictions, imap_login, pop3_login, rcpt, relay_allowed,
    send_message, tcprules,
};

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

fn soon(f: impl FnMut() -> bool) -> bool {
    eventually(Duration::from_secs(5), f)
}

/// Dovecot's settings for an auth socket Postfix can use for SASL ([`sasl_socket`]).
const SASL_LISTENER: &str =
    "service auth {\n  unix_listener auth-smtp {\n    mode = 0666\n  }\n}\n";

fn sasl_socket(dovecot: &Dovecot) -> std::path::PathBuf {
    dovecot.dir().join("run/auth-smtp")
}

/// Postfix configured from the contrib snippet (relay and DATA restrictions pointed at
/// `policy`), relaying every message, local ones too, to `sink`.
fn postfix(dir: &Path, policy: &Path, sink: &SmtpSink) -> Postfix {
    postfix_with(dir, policy, sink, "")
}

/// [`postfix`] with `more` main.cf lines.
fn postfix_with(dir: &Path, policy: &Path, sink: &SmtpSink, more: &str) -> Postfix {
    let endpoint = format!("unix:{}", policy.display());
    let contrib = "unix:/run/relaylease/policy.sock";
    let relay =
        contrib_restrictions("main.cf.snippet", "check_policy_service").replace(contrib, &endpoint);
    let data =
        contrib_parameter("main.cf.snippet", "smtpd_data_restrictions").replace(contrib, &endpoint);
    assert!(data.contains("check_policy_service"), "{data}");
    let port = sink.port();
    let extra = format!(
        "smtpd_data_restrictions = {data}\n\
         relayhost = [127.0.0.1]:{port}\n\
         default_transport = smtp\n\
         local_transport = smtp:[127.0.0.1]:{port}\n{more}"
    );
    Postfix::start_with_main_cf(dir, &relay, &extra)
}

fn daemon_args<'a>(dovecot: &'a Dovecot, policy: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--watch",
        dovecot.log_path().to_str().unwrap(),
        "--policy",
        policy,
    ];
    args.extend(extra);
    args
}

fn json(env: &Env, args: &[&str]) -> serde_json::Value {
    let o = env.run(args);
    assert_eq!(o.code, 0, "{o:?}");
    serde_json::from_str(o.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {o:?}"))
}

fn row(table: &serde_json::Value, who: &str) -> serde_json::Value {
    table["users"]
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|r| r["user"] == who || r["address"] == who)
        })
        .cloned()
        .unwrap_or_else(|| panic!("no row for {who}: {table}"))
}

/// The value of `field="..."` (or `field=...`) in a text log line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    let rest = &line[at..];
    match rest.strip_prefix('"') {
        Some(q) => q.split('"').next(),
        None => rest.split(' ').next(),
    }
}

/// Has `addr` a lease? Asked of the daemon, so that waiting for one is no use of it.
fn leased(env: &Env, addr: IpAddr) -> bool {
    env.run(&["check", &addr.to_string()]).code == 0
}

fn audit_lines(d: &Daemon) -> Vec<String> {
    d.log_text()
        .lines()
        .filter(|l| l.contains(" INFO relayed through a lease "))
        .map(str::to_string)
        .collect()
}

/// The header line named `name` in a message smtp-sink dumped.
fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .find(|l| l.starts_with(&format!("{name}: ")))
}

/// Two messages from alice's leased address, one to a local recipient only, one from an
/// --allow client, one from alice authenticated with SASL, and a stranger's try; bob only
/// logs in. Then the same without --mark-header.
#[test]
#[ignore = "needs root and Debian's postfix, dovecot, ucspi-tcp-ipv6, swaks (tests/run.sh installs and runs them)"]
fn audit_lines_join_postfixs_queue_ids_and_only_mail_relayed_through_a_lease_is_marked() {
    let env = Env::new();
    let dir = env.dir.path().to_path_buf();
    let dovecot = Dovecot::start_with(&dir, SASL_LISTENER);
    let sink = SmtpSink::start(&dir);
    let policy = env.path("policy.sock");
    let endpoint = format!("unix:{}", policy.display());
    let marked = daemon_args(
        &dovecot,
        &endpoint,
        &["--mark-header", "X-Relayed-By", "--allow", "127.0.0.90"],
    );
    let d = env.start(&marked);
    let sasl = format!(
        "smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = {}\n",
        sasl_socket(&dovecot).display()
    );
    let postfix = postfix_with(&dir, &policy, &sink, &sasl);
    let port = postfix.smtp_port();
    let (alice, bob, allowed, stranger) = (ip(81), ip(83), ip(90), ip(84));

    assert!(pop3_login(alice, dovecot.pop3_port(), "alice", PASSWORD));
    assert!(imap_login(bob, dovecot.imap_port(), "bob", PASSWORD));
    assert!(
        soon(|| leased(&env, alice) && leased(&env, bob)),
        "{}",
        d.log_text()
    );
    assert!(!relay_allowed(stranger, port));

    let rcpts = ["one@remote.example", "two@remote.example"];
    let q1 = send_message(alice, port, "alice@rig.test", &rcpts, "relayed-1");
    let q2 = send_message(
        alice,
        port,
        "alice@rig.test",
        &["three@remote.example"],
        "relayed-2",
    );
    let q3 = send_message(alice, port, "alice@rig.test", &[LOCAL_RCPT], "local-1");
    let q4 = send_message(
        allowed,
        port,
        "office@rig.test",
        &[REMOTE_RCPT],
        "allowed-1",
    );
    // Alice authenticates with SASL from her leased address: permit_sasl_authenticated lets
    // her relay before relaylease is asked, so the lease is not used.
    let swaks = std::process::Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--local-interface",
            "127.0.0.81",
            "--helo",
            "client.rig.test",
        ])
        .args(["--from", "alice@rig.test", "--to", REMOTE_RCPT])
        .args([
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            PASSWORD,
        ])
        .args(["--header", "Subject: sasl-1", "--timeout", "30s"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run swaks");
    let said = String::from_utf8_lossy(&swaks.stdout).into_owned();
    assert!(swaks.status.success(), "swaks: {said}\n{}", postfix.log());
    assert!(said.contains("<-  235 "), "not authenticated: {said}");

    // What Postfix handed on: the header on mail relayed through the lease only.
    let login_line = |m: &str| header(m, "X-Relayed-By").map(str::to_string);
    for subject in ["relayed-1", "relayed-2"] {
        let h =
            login_line(&sink.wait_for(subject)).unwrap_or_else(|| panic!("{subject}: no header"));
        assert!(
            h.starts_with("X-Relayed-By: pop-before-smtp; user=alice; login=20"),
            "{subject}: {h}"
        );
    }
    for subject in ["local-1", "allowed-1", "sasl-1"] {
        assert_eq!(
            login_line(&sink.wait_for(subject)),
            None,
            "{subject} was marked"
        );
    }

    // One audit line per relayed message, each joined to Postfix's own line for its queue id.
    assert!(soon(|| audit_lines(&d).len() >= 2), "{}", d.log_text());
    let lines = audit_lines(&d);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    for (line, qid, count) in [(&lines[0], &q1, "2"), (&lines[1], &q2, "1")] {
        assert_eq!(field(line, "queue_id"), Some(qid.as_str()), "{line}");
        assert_eq!(field(line, "client"), Some("127.0.0.81"), "{line}");
        assert_eq!(field(line, "user"), Some("alice"), "{line}");
        assert_eq!(field(line, "sender"), Some("alice@rig.test"), "{line}");
        assert_eq!(field(line, "rcpt_count"), Some(count), "{line}");
        assert!(
            field(line, "login_source").is_some_and(|s| s.ends_with("dovecot.log")),
            "{line}"
        );
        let postfix_line = format!("{qid}: client=unknown[127.0.0.81]");
        assert!(
            postfix.log().contains(&postfix_line),
            "no {postfix_line:?}:\n{}",
            postfix.log()
        );
    }
    assert_eq!(
        field(&lines[0], "recipients"),
        Some("one@remote.example,two@remote.example")
    );
    for q in [&q3, &q4] {
        assert!(!d.log_text().contains(q.as_str()), "{q} is no lease use");
    }

    // The usage table: alice relayed, bob only logged in.
    let table = json(&env, &["usage", "--json"]);
    let a = row(&table, "alice");
    assert_eq!(
        (&a["logins"], &a["messages"], &a["recipients"]),
        (&1.into(), &2.into(), &3.into()),
        "{a}"
    );
    let b = row(&table, "bob");
    assert_eq!(
        (&b["logins"], &b["messages"], &b["never_relayed"]),
        (&1.into(), &0.into(), &true.into()),
        "{b}"
    );
    let text = env.run(&["usage"]).stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[1].starts_with("alice ") && lines[2].starts_with("bob "),
        "{text}"
    );
    assert!(lines[2].ends_with("never relayed"), "{text}");
    let csv = env.run(&["usage", "--csv"]).stdout;
    assert!(
        csv.lines()
            .any(|l| l.starts_with("alice,,1,") && l.contains(",2,3,0,")),
        "{csv}"
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with("bob,,1,") && l.ends_with(",true")),
        "{csv}"
    );

    // Without --mark-header: relayed, logged, not marked.
    assert_eq!(d.stop(), 0);
    let d = env.start(&daemon_args(&dovecot, &endpoint, &[]));
    assert!(pop3_login(alice, dovecot.pop3_port(), "alice", PASSWORD));
    assert!(soon(|| leased(&env, alice)));
    let q5 = send_message(alice, port, "alice@rig.test", &[REMOTE_RCPT], "unmarked-1");
    assert_eq!(login_line(&sink.wait_for("unmarked-1")), None);
    assert!(soon(|| audit_lines(&d).iter().any(|l| field(
        l, "queue_id"
    ) == Some(
        q5.as_str()
    ))));
}

#[test]
#[ignore = "needs root and Debian's postfix, dovecot, ucspi-tcp-ipv6, swaks (tests/run.sh installs and runs them)"]
fn defer_gives_450_before_the_login_and_tokens_map_back_to_their_user() {
    let env = Env::new();
    let dir = env.dir.path().to_path_buf();
    let dovecot = Dovecot::start(&dir);
    let sink = SmtpSink::start(&dir);
    let policy = env.path("policy.sock");
    let endpoint = format!("unix:{}", policy.display());
    let secret = env.path("token.secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").unwrap();
    let d = env.start(&daemon_args(
        &dovecot,
        &endpoint,
        &[
            "--unleased-action",
            "defer",
            "--mark-header",
            "X-Relayed-By",
            "--mark-token-secret",
            secret.to_str().unwrap(),
        ],
    ));
    let postfix = postfix(&dir, &policy, &sink);
    let port = postfix.smtp_port();
    let client = ip(85);

    // Outlook sends before it fetches: a relay attempt now is deferred, not bounced.
    let r = rcpt(client, port, REMOTE_RCPT);
    assert_eq!(r.code, 450, "{r:?}");
    assert!(r.text.contains("4.7.1"), "{r:?}");
    assert_eq!(
        rcpt(client, port, "someone@rig.test").code,
        250,
        "local mail flows"
    );

    assert!(pop3_login(client, dovecot.pop3_port(), "alice", PASSWORD));
    assert!(
        soon(|| rcpt(client, port, REMOTE_RCPT).code == 250),
        "{}",
        d.log_text()
    );

    send_message(client, port, "alice@rig.test", &[REMOTE_RCPT], "tokened-1");
    let m = sink.wait_for("tokened-1");
    let h = header(&m, "X-Relayed-By").unwrap_or_else(|| panic!("no header in {m}"));
    assert!(!h.contains("alice"), "{h}");
    let token = h
        .split("; ")
        .find_map(|p| p.strip_prefix("token="))
        .unwrap_or_else(|| panic!("no token in {h}"));
    let o = env.run(&["usage", "--token", token]);
    assert_eq!(
        (o.code, o.stdout.trim()),
        (0, format!("{token}: alice").as_str()),
        "{o:?}"
    );
    let stats = json(&env, &["stats", "--json"]);
    assert!(stats["policy_defer"].as_u64() >= Some(1), "{stats}");
    assert_eq!(stats["policy_prepend"], 1, "{stats}");
}

#[test]
#[ignore = "needs root and Debian's postfix, dovecot, ucspi-tcp-ipv6, swaks (tests/run.sh installs and runs them)"]
fn the_freeze_in_two_commands_keeps_who_relayed_and_refuses_who_only_logged_in() {
    let env = Env::new();
    let dir = env.dir.path().to_path_buf();
    let dovecot = Dovecot::start(&dir);
    let sink = SmtpSink::start(&dir);
    let policy = env.path("policy.sock");
    let endpoint = format!("unix:{}", policy.display());
    let users = env.path("users");
    // Before the freeze the file lists every mailbox (e.g. `doveadm user '*'`).
    std::fs::write(&users, "alice\nbob\n").unwrap();
    let d = env.start(&daemon_args(
        &dovecot,
        &endpoint,
        &["--users", users.to_str().unwrap()],
    ));
    let postfix = postfix(&dir, &policy, &sink);
    let port = postfix.smtp_port();

    assert!(pop3_login(ip(86), dovecot.pop3_port(), "alice", PASSWORD));
    assert!(pop3_login(ip(87), dovecot.pop3_port(), "bob", PASSWORD));
    // Waiting for the leases asks the daemon, not Postfix: bob never relays.
    assert!(soon(|| leased(&env, ip(86)) && leased(&env, ip(87))));
    send_message(
        ip(86),
        port,
        "alice@rig.test",
        &[REMOTE_RCPT],
        "before-freeze",
    );
    sink.wait_for("before-freeze");

    // The provider's two commands, as documented.
    let script = format!(
        "{BIN} usage --since 180d --users-file > {} && kill -HUP {}",
        users.display(),
        d.pid()
    );
    let o = daemon_harness::Out::from(
        std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .env("RELAYLEASE_SOCKET", env.socket())
            .env("RELAYLEASE_DB", env.db())
            .output()
            .unwrap(),
    );
    assert_eq!(o.code, 0, "{o:?}");
    let file = std::fs::read_to_string(&users).unwrap();
    let listed: Vec<&str> = file.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(listed, ["alice"], "{file}");
    assert!(file.contains("--since 180d --users-file"), "{file}");
    assert!(
        soon(|| d.log_text().contains("re-read the users file")),
        "{}",
        d.log_text()
    );

    // Alice keeps getting leases; bob is refused, and the log names him.
    assert!(pop3_login(ip(88), dovecot.pop3_port(), "alice", PASSWORD));
    assert!(soon(|| relay_allowed(ip(88), port)), "{}", d.log_text());
    assert!(pop3_login(ip(89), dovecot.pop3_port(), "bob", PASSWORD));
    assert!(
        soon(|| d
            .log_text()
            .lines()
            .any(|l| l.contains("login refused a lease: user not in --users")
                && l.contains("user=\"bob\"")
                && l.contains("addr=127.0.0.89"))),
        "{}",
        d.log_text()
    );
    assert!(!relay_allowed(ip(89), port), "bob relays after the freeze");
}

/// A program for tcpserver: what qmail-smtpd would see of RELAYCLIENT and TCPREMOTEINFO.
const SHOW: &str =
    "#!/bin/sh\nprintf '%s|%s\\n' \"${RELAYCLIENT-unset}\" \"${TCPREMOTEINFO-unset}\"\n";

fn tcpserver_sees(from: IpAddr, port: u16) -> String {
    let stream = connect_from(from, port);
    let _ = stream.shutdown(Shutdown::Write);
    let mut out = String::new();
    stream.take(4096).read_to_string(&mut out).unwrap();
    out.trim_end().to_string()
}

#[test]
#[ignore = "needs root and Debian's postfix, dovecot, ucspi-tcp-ipv6, swaks (tests/run.sh installs and runs them)"]
fn with_mark_header_qmails_cdb_and_smtp_wrap_set_tcpremoteinfo_to_the_user() {
    let env = Env::new();
    let dir = env.dir.path().to_path_buf();
    let cdb = env.path("relay.cdb");
    let show = env.path("show-env");
    std::fs::write(&show, SHOW).unwrap();
    std::fs::set_permissions(&show, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let show = show.to_str().unwrap();
    let args = [
        "--tcprules",
        cdb.to_str().unwrap(),
        "--mark-header",
        "X-Relayed-By",
    ];
    let d = env.start(&args);
    let o = env.run(&["hook", "--ip", "127.0.0.91", "--user", "alice"]);
    assert_eq!(o.code, 0, "{o:?}");
    let by_cdb = TcpServer::start_program(&dir, &cdb, &[show]);
    let open = env.path("open.cdb");
    tcprules(&open, ":allow\n");
    let socket = env.socket().display().to_string();
    let by_wrap = TcpServer::start_program(
        &dir,
        &open,
        &[BIN, "--socket", &socket, "smtp-wrap", "--", show],
    );

    assert!(
        soon(|| tcpserver_sees(ip(91), by_cdb.port()) == "|alice"),
        "{}",
        tcpserver_sees(ip(91), by_cdb.port())
    );
    assert_eq!(tcpserver_sees(ip(91), by_wrap.port()), "|alice");
    assert_eq!(tcpserver_sees(ip(92), by_cdb.port()), "unset|unset");
    assert_eq!(tcpserver_sees(ip(92), by_wrap.port()), "unset|unset");
    // smtp-wrap asks, so it counts; the cdb is read by tcpserver and cannot.
    assert!(soon(
        || json(&env, &["usage", "--json"])["users"][0]["checks"] == 1
    ));

    // Without --mark-header: RELAYCLIENT only.
    assert_eq!(d.stop(), 0);
    let _d = env.start(&args[..2]);
    let o = env.run(&["hook", "--ip", "127.0.0.91", "--user", "alice"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(soon(|| tcpserver_sees(ip(91), by_cdb.port()) == "|unset"));
    assert_eq!(tcpserver_sees(ip(91), by_wrap.port()), "|unset");
}
