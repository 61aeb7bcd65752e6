//! Long sessions: an IMAP client that stays connected keeps relaying past the window, and
//! after its logout the window runs from the logout. Proven with the real Dovecot, and for
//! Courier's and Cyrus' lines, with the restart that forgets open sessions, on a log file.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::daemon_harness::{Env, eventually, stamp_now};
use crate::mail_rig::{Dovecot, PASSWORD, connect_from, pop3_login};

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// `relaylease check`'s exit status: 0 may relay, 1 may not.
fn check(env: &Env, addr: IpAddr) -> i32 {
    env.run(&["check", &addr.to_string()]).code
}

fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

/// An IMAP session that stays logged in (IDLE) until told to log out.
struct Imap {
    reader: BufReader<TcpStream>,
}

impl Imap {
    fn login(from: IpAddr, port: u16) -> Imap {
        let stream = connect_from(from, port);
        let mut s = Imap {
            reader: BufReader::new(stream),
        };
        assert!(s.line().starts_with("* OK"), "greeting");
        s.send(&format!("a1 LOGIN alice \"{PASSWORD}\""));
        let reply = s.until("a1 ");
        assert!(reply.starts_with("a1 OK"), "{reply}");
        s.send("a2 SELECT INBOX");
        assert!(s.until("a2 ").starts_with("a2 OK"));
        s.send("a3 IDLE");
        assert!(s.line().starts_with("+ "), "idling");
        s
    }

    fn logout(mut self) {
        self.send("DONE");
        assert!(self.until("a3 ").starts_with("a3 OK"));
        self.send("a4 LOGOUT");
        assert!(self.until("a4 ").starts_with("a4 OK"));
    }

    fn send(&mut self, line: &str) {
        let s = self.reader.get_mut();
        s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        s.flush().unwrap();
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.reader.read_line(&mut l).unwrap();
        assert!(!l.is_empty(), "the server closed the connection");
        l
    }

    /// Lines up to the tagged reply starting with `tag`; returns that reply.
    fn until(&mut self, tag: &str) -> String {
        for _ in 0..100 {
            let l = self.line();
            if l.starts_with(tag) {
                return l;
            }
        }
        panic!("no {tag} reply");
    }
}

#[test]
#[ignore = "needs root and Debian's dovecot (tests/run.sh installs and runs them)"]
fn an_open_imap_session_relays_past_the_window_and_its_logout_starts_one() {
    let env = Env::new();
    let dovecot = Dovecot::start(env.dir.path());
    let log = dovecot.log_path().to_str().unwrap().to_string();
    // Window 10 s; a session holds its lease at most 16 s after its login.
    let _d = env.start(&[
        "--watch",
        &log,
        "--expire",
        "10s",
        "--max-session-hold",
        "16s",
    ]);
    let (held, plain) = (ip(71), ip(72));
    assert_eq!(check(&env, held), 1, "nothing before a login");
    let session = Imap::login(held, dovecot.imap_port());
    assert!(pop3_login(plain, dovecot.pop3_port(), "alice", PASSWORD));
    let t0 = Instant::now();
    assert!(
        eventually(Duration::from_secs(3), || check(&env, held) == 0
            && check(&env, plain) == 0),
        "both logins grant"
    );

    // Past the window: the POP3 login's lease is over, the open IMAP session's is not.
    sleep_until(t0 + Duration::from_millis(11500));
    assert_eq!(check(&env, plain), 1, "a plain login gets the window");
    assert_eq!(check(&env, held), 0, "the open session still relays");

    sleep_until(t0 + Duration::from_secs(12));
    session.logout();
    dovecot.wait_for_log("imap(alice)");
    // Past the hold's ceiling (16 s after the login), so only the logout can keep it: the
    // window runs from there (to about 22 s after the login).
    sleep_until(t0 + Duration::from_millis(17500));
    assert_eq!(
        check(&env, held),
        0,
        "the window runs from the logout, not from the login"
    );
    assert!(
        eventually(Duration::from_secs(12), || check(&env, held) == 1),
        "and then ends"
    );
}

fn append(path: &std::path::Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

#[test]
fn courier_and_cyrus_sessions_hold_and_a_restart_forgets_them_safely() {
    let env = Env::new();
    let log = env.path("mail.log");
    append(&log, &[]);
    let args = ["--watch", log.to_str().unwrap(), "--expire", "6s"];
    let d = env.start(&args);
    let (dovecot, courier, cyrus) = (ip(81), ip(82), ip(83));
    let t = stamp_now();
    append(
        &log,
        &[
            format!(
                "{t} vm dovecot: imap-login: Login: user=<alice>, method=PLAIN, rip=127.0.0.81, lip=127.0.0.1, mpid=4242, session=<AbCd1234>"
            ),
            format!(
                "{t} vm imapd: LOGIN, user=alice, ip=[::ffff:127.0.0.82], port=[40001], protocol=IMAP"
            ),
            format!(
                "{t} vm cyrus/imap[777]: login: [127.0.0.83] alice plaintext User logged in SESSIONID=<cyrus-1-777-1-2>"
            ),
        ],
    );
    let t0 = Instant::now();
    assert!(
        eventually(Duration::from_secs(3), || [dovecot, courier, cyrus]
            .iter()
            .all(|a| check(&env, *a) == 0)),
        "all three logins grant"
    );
    sleep_until(t0 + Duration::from_secs(7));
    for a in [dovecot, courier, cyrus] {
        assert_eq!(check(&env, a), 0, "{a}: its session is open");
    }
    let t = stamp_now();
    append(
        &log,
        &[
            format!(
                "{t} vm imapd: LOGOUT, user=alice, ip=[::ffff:127.0.0.82], port=[40001], headers=0, body=0, rcvd=28, sent=331, time=5"
            ),
            format!("{t} vm cyrus/imap[777]: USAGE alice user: 0.003027 sys: 0.012109"),
        ],
    );
    assert!(
        eventually(Duration::from_secs(12), || check(&env, courier) == 1
            && check(&env, cyrus) == 1),
        "ended sessions run out a window after their end"
    );
    assert_eq!(check(&env, dovecot), 0, "the Dovecot session is still open");
    let stats = env.run(&["stats"]);
    assert!(stats.stdout.contains("sessions open: 1\n"), "{stats:?}");

    // A restart forgets the open session: its lease runs out within a window, as a plain
    // login's would, even though Dovecot never logged its end.
    assert_eq!(d.stop(), 0);
    let _d = env.start(&args);
    assert!(
        eventually(Duration::from_secs(12), || check(&env, dovecot) == 1),
        "a session from before the restart is not held"
    );
}
