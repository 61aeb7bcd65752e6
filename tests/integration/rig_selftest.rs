//! Proves the end-to-end test rig drives the real Dovecot, Postfix and tcpserver as intended.

use crate::mail_rig;

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::mail_rig::{
    Dovecot, PASSWORD, Postfix, TcpServer, imap_login, local_delivery_accepted, pop3_login,
    relay_allowed, tcprules, tcpserver_env,
};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

#[test]
#[ignore = "needs root and Debian's postfix, dovecot, ucspi-tcp-ipv6, swaks (tests/run.sh installs and runs them)"]
fn dovecot_accepts_right_password_refuses_wrong_and_logs_client_address() {
    let dir = tempfile::tempdir().unwrap();
    let dovecot = Dovecot::start(dir.path());

    assert!(pop3_login(
        ip("127.0.0.21"),
        dovecot.pop3_port(),
        "alice",
        PASSWORD
    ));
    assert!(imap_login(
        ip("127.0.0.22"),
        dovecot.imap_port(),
        "alice",
        PASSWORD
    ));
    assert!(!pop3_login(
        ip("127.0.0.23"),
        dovecot.pop3_port(),
        "alice",
        "wrong"
    ));
    assert!(!imap_login(
        ip("127.0.0.24"),
        dovecot.imap_port(),
        "bob",
        "wrong"
    ));

    let pop3 = dovecot.wait_for_log("rip=127.0.0.21,");
    assert!(
        pop3.contains("pop3-login: Info: Login: user=<alice>"),
        "{pop3}"
    );
    let imap = dovecot.wait_for_log("rip=127.0.0.22,");
    assert!(
        imap.contains("imap-login: Info: Login: user=<alice>"),
        "{imap}"
    );
    dovecot.wait_for_log("passwd-file(alice,127.0.0.23,");
    dovecot.wait_for_log("passwd-file(bob,127.0.0.24,");
    let log = dovecot.log();
    for failed in ["rip=127.0.0.23,", "rip=127.0.0.24,"] {
        assert!(
            !log.lines()
                .any(|l| l.contains("Login: ") && l.contains(failed)),
            "a failed login was logged as a login:\n{log}"
        );
    }

    if mail_rig::ipv6_loopback_available() {
        assert!(pop3_login(ip("::1"), dovecot.pop3_port(), "bob", PASSWORD));
        dovecot.wait_for_log("Login: user=<bob>, method=PLAIN, rip=::1,");
    } else {
        eprintln!("no ::1 on this machine: IPv6 login not checked");
    }
}

#[test]
#[ignore = "needs root and Debian's postfix, dovecot, ucspi-tcp-ipv6, swaks (tests/run.sh installs and runs them)"]
fn postfix_without_policy_refuses_relay_but_accepts_local_mail() {
    let dir = tempfile::tempdir().unwrap();
    let postfix = Postfix::start(dir.path(), None);
    let client = ip("127.0.0.30");

    assert!(!relay_allowed(client, postfix.smtp_port()));
    assert!(local_delivery_accepted(client, postfix.smtp_port()));
    postfix.wait_for_log(
        "reject: RCPT from unknown[127.0.0.30]: 554 5.7.1 <b@remote.example>: Relay access denied",
    );
    if mail_rig::ipv6_loopback_available() {
        assert!(!relay_allowed(ip("::1"), postfix.smtp_port()));
    }
}

/// Answers Postfix policy requests: OK for one client address, DUNNO for everyone else.
/// Records every client_address asked about. Runs until dropped, for at most a minute.
struct PolicyResponder {
    asked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PolicyResponder {
    fn start(socket: &Path, ok_for: &'static str) -> Self {
        let listener = UnixListener::bind(socket).unwrap();
        // smtpd runs as user postfix and needs write permission on the socket to connect.
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (asked, stop) = (asked.clone(), stop.clone());
            thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut workers = Vec::new();
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (asked, stop) = (asked.clone(), stop.clone());
                            workers.push(thread::spawn(move || serve(conn, ok_for, &asked, &stop)));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
                for worker in workers {
                    worker.join().unwrap();
                }
            })
        };
        Self {
            asked,
            stop,
            thread: Some(thread),
        }
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl Drop for PolicyResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One policy connection: requests are `name=value` lines ending with an empty line, and
/// smtpd keeps the connection for further requests. Reads time out every 100 ms to check `stop`.
fn serve(conn: UnixStream, ok_for: &str, asked: &Mutex<Vec<String>>, stop: &AtomicBool) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    let mut client = None;
    let mut line = String::new();
    for _ in 0..100_000 {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) if line.ends_with('\n') => {
                let attr = line.trim_end().to_owned();
                line.clear();
                if let Some(addr) = attr.strip_prefix("client_address=") {
                    client = Some(addr.to_owned());
                } else if attr.is_empty() {
                    let addr = client.take().unwrap_or_default();
                    let action = if addr == ok_for { "OK" } else { "DUNNO" };
                    asked.lock().unwrap().push(addr);
                    writer
                        .write_all(format!("action={action}\n\n").as_bytes())
                        .unwrap();
                }
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("policy connection: {e}"),
        }
    }
}

#[test]
#[ignore = "needs root and Debian's postfix, dovecot, ucspi-tcp-ipv6, swaks (tests/run.sh installs and runs them)"]
fn postfix_consults_policy_service_for_untrusted_clients() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("policy.sock");
    let responder = PolicyResponder::start(&socket, "127.0.0.31");
    let policy = format!("unix:{}", socket.display());
    let postfix = Postfix::start(dir.path(), Some(&policy));

    assert!(relay_allowed(ip("127.0.0.31"), postfix.smtp_port()));
    assert!(!relay_allowed(ip("127.0.0.32"), postfix.smtp_port()));
    assert!(local_delivery_accepted(
        ip("127.0.0.32"),
        postfix.smtp_port()
    ));
    let asked = responder.asked();
    assert!(asked.contains(&"127.0.0.31".to_owned()), "{asked:?}");
    assert!(asked.contains(&"127.0.0.32".to_owned()), "{asked:?}");
}

#[test]
#[ignore = "needs root and Debian's postfix, dovecot, ucspi-tcp-ipv6, swaks (tests/run.sh installs and runs them)"]
fn tcpserver_sets_relayclient_only_for_addresses_in_the_cdb() {
    let dir = tempfile::tempdir().unwrap();
    let cdb = dir.path().join("rules.cdb");
    tcprules(&cdb, "127.0.0.41:allow,RELAYCLIENT=\"\"\n:allow\n");
    let server = TcpServer::start(dir.path(), &cdb);

    assert_eq!(
        tcpserver_env(ip("127.0.0.41"), server.port()),
        Some(String::new())
    );
    assert_eq!(tcpserver_env(ip("127.0.0.42"), server.port()), None);
}
