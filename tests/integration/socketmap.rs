//! The socketmap lookup server with the real daemon, and with the real Postfix asking it
//! through `check_client_access socketmap:...` as contrib/postfix/socketmap.cf.snippet does.

use crate::daemon_harness;

use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::daemon_harness::{Env, closed, eventually};
use crate::mail_rig::{
    Dovecot, LOCAL_RCPT, PASSWORD, Postfix, REMOTE_RCPT, contrib_restrictions, pop3_login, rcpt,
    relay_allowed,
};

fn netstring(s: &str) -> Vec<u8> {
    format!("{}:{s},", s.len()).into_bytes()
}

/// One netstring reply, or `None` when the server closed the connection first.
fn read_reply(s: &mut UnixStream) -> Option<String> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut len = String::new();
    let mut byte = [0u8; 1];
    loop {
        match s.read(&mut byte) {
            Ok(1) if byte[0] == b':' => break,
            Ok(1) => len.push(byte[0] as char),
            _ => return None,
        }
    }
    let n: usize = len.parse().expect("a netstring length");
    let mut data = vec![0u8; n + 1];
    s.read_exact(&mut data).ok()?;
    assert_eq!(data.pop(), Some(b','), "netstring ends with a comma");
    Some(String::from_utf8(data).expect("a text reply"))
}

fn start(env: &Env, extra: &[&str]) -> (daemon_harness::Daemon, std::path::PathBuf) {
    let sock = env.path("socketmap.sock");
    let mut args = vec![
        "--socketmap".to_string(),
        format!("unix:{}", sock.display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (env.start(&args), sock)
}

#[test]
fn lookups_say_ok_only_for_addresses_that_may_relay_and_never_for_bad_requests() {
    let env = Env::new();
    let (d, sock) = start(&env, &["--allow", "10.0.0.0/8"]);
    assert_eq!(env.run(&["add", "192.0.2.7"]).code, 0);

    // Many lookups on one connection, pipelined, answered in order; an unknown map name is
    // refused without closing the connection.
    let mut s = UnixStream::connect(&sock).unwrap();
    let mut pipelined = Vec::new();
    for req in [
        "relaylease 192.0.2.7",
        "relaylease 192.0.2.8",
        "other 192.0.2.7",
        "relaylease mail.example.org",
    ] {
        pipelined.extend(netstring(req));
    }
    s.write_all(&pipelined).unwrap();
    assert_eq!(read_reply(&mut s).as_deref(), Some("OK OK"));
    assert_eq!(read_reply(&mut s).as_deref(), Some("NOTFOUND "));
    let perm = read_reply(&mut s).unwrap();
    assert!(perm.starts_with("PERM unknown map 'other'"), "{perm}");
    assert_eq!(read_reply(&mut s).as_deref(), Some("NOTFOUND "));
    s.write_all(&netstring("relaylease 10.1.2.3")).unwrap();
    assert_eq!(read_reply(&mut s).as_deref(), Some("OK OK"), "--allow");

    // `del` closes it at once.
    assert_eq!(env.run(&["del", "192.0.2.7"]).code, 0);
    s.write_all(&netstring("relaylease 192.0.2.7")).unwrap();
    assert_eq!(read_reply(&mut s).as_deref(), Some("NOTFOUND "));

    // Not netstrings, or too long: PERM, then the connection is closed.
    for bad in [&b"GET / HTTP/1.0\r\n\r\n"[..], b"5000:relaylease 192.0.2.7"] {
        let mut s = UnixStream::connect(&sock).unwrap();
        s.write_all(bad).unwrap();
        let reply = read_reply(&mut s).expect("a PERM reply before closing");
        assert!(reply.starts_with("PERM "), "{reply}");
        assert!(closed(&mut s), "connection left open after {reply}");
    }
    assert!(
        d.log_text().contains("socketmap: bad request"),
        "{}",
        d.log_text()
    );
    // And the daemon serves the next client as before.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(&netstring("relaylease 10.9.9.9")).unwrap();
    assert_eq!(read_reply(&mut s).as_deref(), Some("OK OK"));
}

#[test]
fn a_bad_map_name_or_value_is_refused_at_start() {
    let env = Env::new();
    for (flag, value) in [
        ("--socketmap-name", "two words"),
        ("--socketmap-value", "a\nb"),
    ] {
        let o = env.run(&[
            "daemon",
            "--socketmap",
            "unix:/nonexistent/x.sock",
            flag,
            value,
        ]);
        assert_eq!(o.code, 2, "{o:?}");
        assert!(o.stderr.contains(flag), "{o:?}");
        assert_eq!(o.stderr.trim().lines().count(), 1, "{o:?}");
    }
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

fn soon(f: impl FnMut() -> bool) -> bool {
    eventually(Duration::from_secs(5), f)
}

#[test]
#[ignore = "needs root and Debian's postfix, dovecot, swaks (tests/run.sh installs and runs them)"]
fn postfix_relays_through_the_socketmap_after_a_real_login_and_defers_while_it_is_down() {
    let env = Env::new();
    let dir = env.dir.path().to_path_buf();
    let dovecot = Dovecot::start(&dir);
    let (d, sock) = start(
        &env,
        &[
            "--watch",
            dovecot.log_path().to_str().unwrap(),
            "--socketmap-value",
            "OK",
        ],
    );
    let restrictions = contrib_restrictions("socketmap.cf.snippet", "socketmap:").replace(
        "unix:/run/relaylease/socketmap.sock",
        &format!("unix:{}", Path::new(&sock).display()),
    );
    let postfix = Postfix::start_with_restrictions(&dir, &restrictions);
    let port = postfix.smtp_port();
    let (who, failed) = (ip(81), ip(82));

    assert!(!relay_allowed(who, port), "relay before any login");
    assert!(pop3_login(who, dovecot.pop3_port(), "alice", PASSWORD));
    assert!(soon(|| relay_allowed(who, port)), "{}", postfix.log());
    assert!(!pop3_login(failed, dovecot.pop3_port(), "alice", "wrong"));
    assert!(!relay_allowed(failed, port), "relay after a failed login");
    assert_eq!(rcpt(failed, port, LOCAL_RCPT).code, 250, "local mail");

    // relaylease stopped: no relay, and the table lookup fails, so Postfix defers (451)
    // rather than refuses; contrib's snippet says so.
    assert_eq!(d.stop(), 0);
    let reply = rcpt(who, port, REMOTE_RCPT);
    assert_eq!(reply.code, 451, "{reply:?}");
    assert_eq!(rcpt(failed, port, LOCAL_RCPT).code, 451);
}
