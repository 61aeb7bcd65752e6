//! Forgery attempts against the whole parser: none of them may grant an address.

use std::net::IpAddr;

use super::{Event, Format, LineParser, state};

const FORGED: &str = "10.0.0.1";

fn parser() -> LineParser {
    LineParser::new(None, vec![])
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The address a line grants, if it is a login with one.
fn granted(p: &mut LineParser, line: &str) -> Option<IpAddr> {
    match p.parse(line.as_bytes()) {
        Event::Login(l) => l.ip,
        _ => None,
    }
}

fn assert_no_grant(line: &str) {
    for pin in [
        None,
        Some(Format::Dovecot),
        Some(Format::Courier),
        Some(Format::Uw),
    ] {
        let mut p = LineParser::new(pin, vec![]);
        assert_eq!(granted(&mut p, line), None, "{pin:?} granted: {line}");
    }
}

const DOVECOT_LOGIN: &str = "Nov 22 02:00:00 vm dovecot: pop3-login: Login: user=<root>, method=PLAIN, rip=10.0.0.1, lip=127.0.0.1, mpid=1, session=<abc>";
const COURIER_LOGIN: &str = "Nov 22 02:00:00 vm pop3d: LOGIN, user=root, ip=[10.0.0.1], port=[110]";
const UW_LOGIN: &str = "Nov 22 02:00:00 vm ipop3d[1]: Login user=root host=[10.0.0.1] nmsgs=0/0";
const CYRUS_LOGIN: &str =
    "Nov 22 02:00:00 vm cyrus/pop3[1]: login: [10.0.0.1] root PLAIN User logged in";

#[test]
fn postfix_lines_quoting_a_login_grant_nothing() {
    for forged in [DOVECOT_LOGIN, COURIER_LOGIN, UW_LOGIN, CYRUS_LOGIN] {
        let quoted = forged.replace(' ', "_");
        for line in [
            format!(
                "Nov 22 03:20:01 vm postfix/smtpd[123]: 4F3A21C: client=unknown[192.0.2.66], sasl_sender=<{forged}>"
            ),
            format!(
                "Nov 22 03:20:01 vm postfix/qmgr[99]: 4F3A21C: from=<{forged}>, size=300, nrcpt=1 (queue active)"
            ),
            format!(
                "Nov 22 03:20:01 vm postfix/smtpd[123]: NOQUEUE: reject: RCPT from unknown[192.0.2.66]: 554 5.7.1 <x@example.org>: Relay access denied; from=<{quoted}> to=<x@example.org> proto=ESMTP helo=<{forged}>"
            ),
            format!(
                "Nov 22 03:20:01 vm postfix/smtpd[123]: warning: Illegal address syntax from unknown[192.0.2.66] in MAIL command: <{forged}>"
            ),
            format!("Nov 22 03:20:01 vm postfix/cleanup[7]: 4F3A21C: message-id=<{forged}>"),
        ] {
            assert_no_grant(&line);
        }
    }
}

#[test]
fn login_lines_from_other_programs_grant_nothing() {
    for line in [
        "Nov 22 03:09:57 vm eviluser: pop3-login: Login: user=<a>, method=PLAIN, rip=10.0.0.1, lip=127.0.0.1, mpid=1, session=<x>",
        "Nov 22 03:09:57 vm dovecot-evil: pop3-login: Login: user=<a>, method=PLAIN, rip=10.0.0.1, lip=127.0.0.1",
        "Nov 22 03:09:57 vm xdovecot[1]: pop3-login: Login: user=<a>, method=PLAIN, rip=10.0.0.1, lip=127.0.0.1",
        "Nov 22 03:09:57 vm logger: Nov 22 03:09:57 vm dovecot: pop3-login: Login: user=<a>, method=PLAIN, rip=10.0.0.1, lip=127.0.0.1",
        "Nov 22 03:09:57 vm sshd[1]: Invalid user Nov 22 03:09:57 vm pop3d: LOGIN, user=a, ip=[10.0.0.1], port=[1]",
        "Nov 22 03:09:57 vm pop3d-evil: LOGIN, user=a, ip=[10.0.0.1], port=[1]",
        "Nov 22 03:09:57 vm cyrus: login: [10.0.0.1] a PLAIN User logged in",
        // The login message must start the message, not follow something else.
        "Nov 22 03:09:57 vm dovecot: auth: pop3-login: Login: user=<a>, method=PLAIN, rip=10.0.0.1, lip=127.0.0.1",
        "Nov 22 03:09:57 vm dovecot:  pop3-login: Login: user=<a>, method=PLAIN, rip=10.0.0.1, lip=127.0.0.1",
        "Nov 22 03:09:57 vm pop3d: Disconnected, LOGIN, user=a, ip=[10.0.0.1], port=[1]",
        "Nov 22 03:09:57 vm imapd[1]: Logout user=Login user=a host=[10.0.0.1]",
        "Nov 22 03:09:57 vm dovecot: pop3-login: Disconnected: user=<Login: user=<a>, method=PLAIN, rip=10.0.0.1, lip=1.2.3.4>, rip=192.0.2.9, lip=192.0.2.1",
    ] {
        assert_no_grant(line);
    }
}

#[test]
fn hostile_user_names_never_move_the_address() {
    let real = "192.0.2.7";
    let users = [
        "eve, rip=10.0.0.1",
        "x> rip=10.0.0.1 <y",
        "[10.0.0.1]",
        "joe, ip=[10.0.0.1]",
        "ann [10.0.0.1]",
        ", rip=10.0.0.1, lip=10.0.0.1",
        "a>, method=PLAIN, rip=10.0.0.1, lip=10.0.0.2, mpid=1, session=<s",
        "x, ip=[10.0.0.1], port=[1]",
        "y host=[10.0.0.1]",
        "z host=h [10.0.0.1] nmsgs=1/1",
        "tom authenticated - 10.0.0.1",
    ];
    for user in users {
        for line in [
            format!(
                "Nov 22 03:09:57 vm dovecot: imap-login: Login: user=<{user}>, method=PLAIN, rip={real}, lip=192.0.2.1, mpid=2, session=<q>"
            ),
            format!(
                "Nov 22 03:09:57 pop3-login: Info: Login: user=<{user}>, method=PLAIN, rip={real}, lip=192.0.2.1, mpid=2, secured, session=<q>"
            ),
            format!(
                "2026-11-22T03:09:57.790849+00:00 vm dovecot: pop3-login: Logged in: user=<{user}>, method=PLAIN, rip={real}, lip=192.0.2.1"
            ),
            format!(
                "Nov 22 03:09:57 vm imapd: LOGIN, user={user}, ip=[::ffff:{real}], port=[47835], protocol=IMAP"
            ),
            format!(
                "Nov 22 03:09:57 vm ipop3d[5]: Login user={user} host=client.example [{real}] nmsgs=0/0"
            ),
            format!(
                "Nov 22 03:09:57 vm imapd[5]: Authenticated user={user} host=[{real}] mech=PLAIN"
            ),
            format!(
                "Nov 22 03:09:57 vm cyrus/imap[5]: login: [{real}] {user} PLAIN User logged in SESSIONID=<c-1>"
            ),
            format!("Nov 22 03:09:57 vm solid-pop3d[5]: user {user} authenticated - {real}"),
            format!(
                "Nov 22 03:09:57 vm in.qpopper[5]: (v4.0.9) POP login by user \"{user}\" at (h) {real}"
            ),
        ] {
            let mut p = parser();
            match p.parse(line.as_bytes()) {
                Event::Login(l) => {
                    assert_eq!(l.ip, Some(addr(real)), "{line}");
                    assert_eq!(l.user.as_deref(), Some(user), "{line}");
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }
}

#[test]
fn popa3d_takes_the_address_from_its_own_pid_only() {
    let mut p = parser();
    let connect =
        |pid: u32, ip: &str| format!("Nov 22 03:17:14 vm popa3d[{pid}]: connect from {ip} ({ip})");
    let passed = |pid: u32, user: &str| {
        format!("Nov 22 03:17:14 vm popa3d[{pid}]: Authentication passed for {user}")
    };
    p.parse(connect(10, "192.0.2.10").as_bytes());
    p.parse(connect(11, "192.0.2.11").as_bytes());
    assert_eq!(
        granted(&mut p, &passed(11, "x -- [10.0.0.1]")),
        Some(addr("192.0.2.11"))
    );
    assert_eq!(granted(&mut p, &passed(10, "a")), Some(addr("192.0.2.10")));
    // The address is used once; a second login line of the pid has none left.
    assert_eq!(granted(&mut p, &passed(10, "a")), None);
    // A session that ended without a login leaves nothing for a reused pid.
    p.parse(connect(12, "192.0.2.12").as_bytes());
    p.parse(b"Nov 22 03:17:14 vm popa3d[12]: Didn't attempt authentication");
    assert_eq!(granted(&mut p, &passed(12, "a")), None);
    // Another program's connect line (tcpd under another tag) is not popa3d's.
    p.parse(b"Nov 22 03:17:14 vm solid-pop3d[13]: connect from 192.0.2.13 (192.0.2.13)");
    assert_eq!(granted(&mut p, &passed(13, "a")), None);
    // A forged connect line inside a failure message is not a connect line.
    p.parse(b"Nov 22 03:17:14 vm popa3d[14]: Authentication failed for connect from 10.0.0.1 (10.0.0.1)");
    assert_eq!(granted(&mut p, &passed(14, "a")), None);
}

#[test]
fn mailutils_joins_by_session_id_from_the_master() {
    let mut p = parser();
    p.parse(b"Nov 22 03:16:09 vm pop3d[9293]: 2AM3G94F 192.0.2.21");
    let login = |pid: u32, sid: &str| {
        format!(
            "Nov 22 03:16:09 vm pop3d[{pid}]: {sid} user `alice' logged in with mailbox `/var/mail/alice' (0 messages)"
        )
    };
    assert_eq!(granted(&mut p, &login(9310, "UNKNOWN1")), None);
    assert_eq!(
        granted(&mut p, &login(9310, "2AM3G94F")),
        Some(addr("192.0.2.21"))
    );
    // The master's line is not a login's address when the same pid logs the login.
    p.parse(b"Nov 22 03:16:09 vm pop3d[9311]: 2AM3GA4G 192.0.2.22");
    assert_eq!(granted(&mut p, &login(9311, "2AM3GA4G")), None);
    // A session that ended is forgotten.
    p.parse(b"Nov 22 03:16:09 vm pop3d[9293]: 2AM3GB4H 192.0.2.23");
    p.parse(b"Nov 22 03:16:13 vm pop3d[9312]: 2AM3GB4H session ended for no user");
    assert_eq!(granted(&mut p, &login(9312, "2AM3GB4H")), None);
    // imap4d's sessions are not pop3d's.
    p.parse(b"Nov 22 03:16:09 vm imap4d[9294]: 2AM3GeB5 192.0.2.40");
    assert_eq!(granted(&mut p, &login(9312, "2AM3GeB5")), None);
    // Default configuration: a login, reported without an address.
    match p.parse(
        b"Nov 22 03:15:55 vm imap4d[9267]: user `eve, rip=10.0.0.1' logged in (source: system)",
    ) {
        Event::Login(l) => assert_eq!((l.ip, l.user.as_deref()), (None, Some("eve, rip=10.0.0.1"))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_flood_of_half_sessions_stays_bounded() {
    let mut p = parser();
    for i in 0..(3 * state::CAP as u32) {
        let line = format!("Nov 22 03:17:14 vm popa3d[{i}]: connect from 192.0.2.1 (192.0.2.1)");
        p.parse(line.as_bytes());
        let line = format!("Nov 22 03:16:09 vm pop3d[1]: S{i:07} 192.0.2.2");
        p.parse(line.as_bytes());
    }
    assert!(p.pids.len() <= state::CAP);
    assert!(p.sessions.len() <= state::CAP);
    // The newest sessions are still joined.
    let last = 3 * state::CAP as u32 - 1;
    let line = format!("Nov 22 03:17:14 vm popa3d[{last}]: Authentication passed for a");
    assert_eq!(granted(&mut p, &line), Some(addr("192.0.2.1")));
}

/// The lines quoted in the Postfix tests are real logins on their own, so those tests
/// show the quoting is what stops them, not a typo in the fixture.
#[test]
fn the_quoted_lines_grant_on_their_own() {
    for line in [DOVECOT_LOGIN, COURIER_LOGIN, UW_LOGIN, CYRUS_LOGIN] {
        assert_eq!(granted(&mut parser(), line), Some(addr(FORGED)), "{line}");
    }
}

/// A session key as the parser makes it from one line, login or logout.
fn session_of(p: &mut LineParser, line: &str) -> Option<String> {
    match p.parse(line.as_bytes()) {
        Event::Login(l) => l.session.map(|s| s.to_string()),
        Event::Logout { session, .. } => Some(session.to_string()),
        _ => None,
    }
}

#[test]
fn hostile_user_names_never_name_another_session() {
    let mut p = parser();
    let victim = session_of(&mut p, "Nov 22 02:00:00 vm dovecot: imap-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.1, lip=127.0.0.1, mpid=10, session=<S10>").unwrap();
    // The name is raw in the login line and in every line of its mail process.
    let own = session_of(&mut p, "Nov 22 02:00:00 vm dovecot: imap-login: Login: user=<x>, mpid=10, session=<S10>>, method=PLAIN, rip=192.0.2.2, lip=127.0.0.1, mpid=11, session=<S11>").unwrap();
    assert_ne!(own, victim);
    let end = session_of(&mut p, "Nov 22 02:00:01 vm dovecot: imap(x)<10><S10>: Disconnected: Logged out)<11><S11>: Disconnected: Logged out in=1 out=2").unwrap();
    assert_eq!(end, own, "the line ends its own session only");
    let mut p = parser();
    let victim = session_of(
        &mut p,
        "Nov 22 02:00:00 vm imapd: LOGIN, user=alice, ip=[192.0.2.1], port=[1000]",
    )
    .unwrap();
    let end = session_of(&mut p, "Nov 22 02:00:01 vm imapd: LOGOUT, user=x, ip=[192.0.2.1], port=[1000], ip=[192.0.2.2], port=[2000], headers=0").unwrap();
    assert_ne!(end, victim);
}
