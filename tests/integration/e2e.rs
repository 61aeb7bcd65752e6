//! The whole chain with the real programs: a POP3/IMAP login to Dovecot makes Postfix (through
//! the policy service) and tcpserver (through the rules cdb and smtp-wrap) let that address
//! relay, and nothing else does.

use crate::daemon_harness;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use crate::daemon_harness::{BIN, Env, eventually};
use crate::mail_rig::{
    Dovecot, PASSWORD, Postfix, TcpServer, imap_login, local_delivery_accepted, pop3_login,
    relay_allowed, swaks_relay_allowed, tcprules, tcpserver_env,
};

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// A program for tcpserver that reports RELAYCLIENT the way the rig's reader expects.
fn show_relayclient(env: &Env) -> String {
    let script = env.path("show-relayclient");
    std::fs::write(
        &script,
        "#!/bin/sh\nif [ \"${RELAYCLIENT+set}\" = set ]; then printf 'RELAYCLIENT=%s\\n' \"$RELAYCLIENT\"; else echo unset; fi\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script.display().to_string()
}

fn soon(f: impl FnMut() -> bool) -> bool {
    eventually(Duration::from_secs(3), f)
}

struct Rig {
    env: Env,
    dovecot: Dovecot,
    postfix: Postfix,
    cdb_server: TcpServer,
    wrap_server: TcpServer,
}

fn start_rig(expire: &str) -> (Rig, daemon_harness::Daemon) {
    let env = Env::new();
    let dir = env.dir.path().to_path_buf();
    let dovecot = Dovecot::start(&dir);
    let policy = env.path("policy.sock");
    let cdb = env.path("relay.cdb");
    let base = env.path("relay.rules");
    std::fs::write(&base, "127.0.0.59:allow,RELAYCLIENT=\"static\"\n").unwrap();
    let d = env.start(&[
        "--watch",
        dovecot.log_path().to_str().unwrap(),
        "--policy",
        &format!("unix:{}", policy.display()),
        "--tcprules",
        cdb.to_str().unwrap(),
        "--tcprules-base",
        base.to_str().unwrap(),
        "--expire",
        expire,
    ]);
    let postfix = Postfix::start(&dir, Some(&format!("unix:{}", policy.display())));
    assert!(soon(|| cdb.exists()), "the cdb is written at start");
    let cdb_server = TcpServer::start(&dir, &cdb);
    let open = env.path("open.cdb");
    tcprules(&open, ":allow\n");
    let show = show_relayclient(&env);
    let socket = env.socket().display().to_string();
    let wrap_server = TcpServer::start_program(
        &dir,
        &open,
        &[BIN, "--socket", &socket, "smtp-wrap", "--", &show],
    );
    (
        Rig {
            env,
            dovecot,
            postfix,
            cdb_server,
            wrap_server,
        },
        d,
    )
}

impl Rig {
    fn relay(&self, from: IpAddr) -> bool {
        relay_allowed(from, self.postfix.smtp_port())
    }
    fn cdb_env(&self, from: IpAddr) -> Option<String> {
        tcpserver_env(from, self.cdb_server.port())
    }
    fn wrap_env(&self, from: IpAddr) -> Option<String> {
        tcpserver_env(from, self.wrap_server.port())
    }
    /// Postfix, the cdb and smtp-wrap all agree that `from` may relay.
    fn all_allow(&self, from: IpAddr) -> bool {
        self.relay(from)
            && self.cdb_env(from).as_deref() == Some("")
            && self.wrap_env(from).as_deref() == Some("")
    }
    fn none_allow(&self, from: IpAddr) -> bool {
        !self.relay(from) && self.cdb_env(from).is_none() && self.wrap_env(from).is_none()
    }
}

#[test]
#[ignore = "needs root and Debian's postfix, dovecot, ucspi-tcp-ipv6, swaks (tests/run.sh installs and runs them)"]
fn a_real_login_lets_postfix_and_tcpserver_relay_and_nothing_else_does() {
    let (rig, _d) = start_rig("6s");
    let (pop, imap, failed, hooked, stranger, deleted) =
        (ip(51), ip(52), ip(53), ip(54), ip(55), ip(56));
    let pop3 = rig.dovecot.pop3_port();

    // Before any login: refused everywhere, but local mail still flows.
    assert!(rig.none_allow(pop));
    assert!(!swaks_relay_allowed(pop, rig.postfix.smtp_port()));
    assert!(local_delivery_accepted(pop, rig.postfix.smtp_port()));

    // A POP3 login opens the relay at once.
    assert!(pop3_login(pop, pop3, "alice", PASSWORD));
    assert!(soon(|| rig.all_allow(pop)), "relay after a POP3 login");
    assert!(swaks_relay_allowed(pop, rig.postfix.smtp_port()));

    // So does an IMAP login.
    assert!(imap_login(imap, rig.dovecot.imap_port(), "bob", PASSWORD));
    assert!(soon(|| rig.all_allow(imap)), "relay after an IMAP login");

    // A failed login opens nothing (a later login proves its line was read).
    assert!(!pop3_login(failed, pop3, "alice", "wrong-password"));
    assert!(pop3_login(deleted, pop3, "alice", PASSWORD));
    assert!(soon(|| rig.all_allow(deleted)));
    assert!(rig.none_allow(failed), "relay after a failed login");
    assert!(!swaks_relay_allowed(failed, rig.postfix.smtp_port()));
    assert!(rig.none_allow(stranger));

    // `del` closes it again.
    let o = rig.env.run(&["del", &deleted.to_string()]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(soon(|| rig.none_allow(deleted)), "relay after del");

    // The hook opens it too.
    let o = rig
        .env
        .run(&["hook", "--ip", &hooked.to_string(), "--user", "carol"]);
    assert_eq!(o.code, 0, "{o:?}");
    // Postfix and smtp-wrap ask the daemon: yes as soon as the hook returns. The cdb file
    // follows within its rebuild delay.
    assert!(
        rig.relay(hooked),
        "the hook returns once the address may relay"
    );
    assert_eq!(rig.wrap_env(hooked).as_deref(), Some(""));
    assert!(soon(|| rig.cdb_env(hooked).as_deref() == Some("")));

    // A static rule from the base file stays as the administrator wrote it.
    assert_eq!(rig.cdb_env(ip(59)).as_deref(), Some("static"));

    // And when the window has passed, the relay closes everywhere (the cdb is rebuilt).
    assert!(
        eventually(Duration::from_secs(15), || rig.none_allow(pop)),
        "relay still open after expiry"
    );
    assert!(local_delivery_accepted(pop, rig.postfix.smtp_port()));
}

#[test]
#[ignore = "needs root and Debian's postfix, dovecot, ucspi-tcp-ipv6, swaks (tests/run.sh installs and runs them)"]
fn with_relaylease_stopped_postfix_refuses_relay_and_mail_still_flows() {
    let (rig, d) = start_rig("30m");
    let who = ip(61);
    assert!(pop3_login(who, rig.dovecot.pop3_port(), "alice", PASSWORD));
    assert!(soon(|| rig.relay(who)));
    assert_eq!(d.stop(), 0);
    assert!(
        !Path::new(&rig.env.path("policy.sock")).exists(),
        "socket removed"
    );
    // Postfix's default_action=DUNNO: reject_unauth_destination decides, local mail flows.
    assert!(!rig.relay(who), "relay open with relaylease stopped");
    assert!(local_delivery_accepted(who, rig.postfix.smtp_port()));
    // smtp-wrap still runs the SMTP server, without RELAYCLIENT.
    assert_eq!(rig.wrap_env(who), None);
    // The cdb no longer lets leases relay once nobody keeps it current; static rules stay.
    assert_eq!(rig.cdb_env(who), None);
    assert_eq!(rig.cdb_env(ip(59)).as_deref(), Some("static"));
}

#[test]
#[ignore = "needs root and Debian's postfix, dovecot, ucspi-tcp-ipv6, swaks (tests/run.sh installs and runs them)"]
fn dovecot_post_login_script_from_contrib_grants_relay_without_any_log() {
    let env = Env::new();
    let dir = env.dir.path().to_path_buf();
    // The contrib script and service config, pointed at this test's binary and socket.
    let contrib = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/dovecot");
    let script = env.path("relaylease-postlogin");
    let text = std::fs::read_to_string(format!("{contrib}/relaylease-postlogin")).unwrap();
    assert!(text.contains("exec relaylease hook -- \"$@\""), "{text}");
    let text = text.replace(
        "exec relaylease hook",
        &format!("exec {BIN} --socket {} hook", env.socket().display()),
    );
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let conf = std::fs::read_to_string(format!("{contrib}/91-relaylease.conf")).unwrap();
    let conf = conf.replace(
        "/usr/local/lib/relaylease/relaylease-postlogin",
        &script.display().to_string(),
    );
    let _d = env.start(&["--socket-mode", "0666", "--writer-group", "dovecot"]);
    let dovecot = Dovecot::start_with(&dir, &conf);

    let (pop, imap, failed) = (ip(71), ip(72), ip(73));
    assert!(pop3_login(pop, dovecot.pop3_port(), "alice", PASSWORD));
    assert!(imap_login(imap, dovecot.imap_port(), "bob", PASSWORD));
    assert!(!pop3_login(failed, dovecot.pop3_port(), "alice", "nope"));
    for who in [pop, imap] {
        let o = env.run(&["check", &who.to_string()]);
        assert_eq!(o.code, 0, "{o:?}\n{}", dovecot.log());
        assert!(o.stdout.contains("via hook"), "{o:?}");
    }
    let o = env.run(&["check", &failed.to_string()]);
    assert_eq!(o.code, 1, "a failed login runs no post-login script: {o:?}");
}
