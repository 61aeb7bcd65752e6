//! Cyrus IMAP `imapd`/`pop3d`: `login: HOST [A] USER MECH User logged in SESSIONID=<S>`.
//!
//! Cyrus writes the address before the user name, so it is read from the left: an
//! optional reverse-DNS name, then `[address]`. The user name is whatever lies between
//! that and the mechanism, which is the last word before ` User logged in`.

use super::text::{self, ip, is_hostname};
use super::{Addr, Conn, Parsed, Service};

pub(crate) fn parse<'a>(tag: &'a [u8], msg: &'a [u8]) -> Parsed<'a> {
    let service = Service::from_program(tag.strip_prefix(b"cyrus/").unwrap_or(tag));
    if service == Service::Unknown {
        // Cyrus' sieve, nntp, http and lmtp services log logins too; they are not mailbox
        // logins.
        return Parsed::Nothing;
    }
    if let Some(body) = msg.strip_prefix(b"login: ") {
        return login(body, service);
    }
    if msg.starts_with(b"badlogin: ") {
        return Parsed::Failure;
    }
    // A process serves one client at a time and logs its usage when the client leaves
    // (pop3d its counts too). A dropped connection logs nothing: the process's next login
    // then ends the session.
    if msg.starts_with(b"USAGE ") || msg.starts_with(b"counts: ") {
        return Parsed::Logout(Conn::Pid);
    }
    Parsed::Nothing
}

fn login(body: &[u8], service: Service) -> Parsed<'_> {
    let Some(open) = memchr::memchr(b'[', body) else {
        return Parsed::Suspect;
    };
    // `[a]` when reverse DNS fails, `name [a]` otherwise.
    let host = &body[..open];
    if !host.is_empty() && !host.strip_suffix(b" ").is_some_and(is_hostname) {
        return Parsed::Suspect;
    }
    let Some((address, rest)) = text::split_once(&body[open + 1..], b']') else {
        return Parsed::Suspect;
    };
    let Some(addr) = ip(address) else {
        return Parsed::Suspect;
    };
    let Some(mut rest) = rest.strip_prefix(b" ") else {
        return Parsed::Suspect;
    };
    if let Some(s) = text::rfind(rest, b" SESSIONID=<") {
        let id = &rest[s + 12..];
        if id.ends_with(b">")
            && id[..id.len() - 1]
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
        {
            rest = &rest[..s];
        }
    }
    let Some(rest) = rest.strip_suffix(b" User logged in") else {
        return Parsed::Suspect;
    };
    let Some(sp) = memchr::memrchr(b' ', rest) else {
        return Parsed::Suspect;
    };
    let (user, mech) = (&rest[..sp], &rest[sp + 1..]);
    let mech_ok = !mech.is_empty()
        && mech
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'+'));
    if !mech_ok || user.is_empty() {
        return Parsed::Suspect;
    }
    Parsed::Login {
        addr: Addr::Here(addr),
        user: Some(user),
        service,
        conn: Conn::Pid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here(s: &str) -> Addr<'static> {
        Addr::Here(s.parse().unwrap())
    }

    #[test]
    fn logins() {
        assert_eq!(
            parse(b"cyrus/pop3", b"login: [127.0.0.21] alice plaintext User logged in SESSIONID=<cyrus-1795317204-9071-1-12399184542919026669>"),
            Parsed::Login { addr: here("127.0.0.21"), user: Some(b"alice"), service: Service::Pop3, conn: Conn::Pid }
        );
        assert_eq!(
            parse(
                b"cyrus/imap6",
                b"login: localhost [::1] bob smith PLAIN+TLS User logged in"
            ),
            Parsed::Login {
                addr: here("::1"),
                user: Some(b"bob smith"),
                service: Service::Imap,
                conn: Conn::Pid
            }
        );
        assert_eq!(
            parse(
                b"imaps",
                b"login: mail.example.org [192.0.2.3] a@b CRAM-MD5 User logged in SESSIONID=<x>"
            ),
            Parsed::Login {
                addr: here("192.0.2.3"),
                user: Some(b"a@b"),
                service: Service::Imap,
                conn: Conn::Pid
            }
        );
    }

    #[test]
    fn failures_and_other_services() {
        assert_eq!(
            parse(b"cyrus/pop3", b"badlogin: [127.0.0.25] plaintext (alice) [SASL(-13): authentication failure: checkpass failed]"),
            Parsed::Failure
        );
        assert_eq!(
            parse(
                b"cyrus/sieve",
                b"login: [192.0.2.3] alice PLAIN User logged in"
            ),
            Parsed::Nothing
        );
        assert_eq!(
            parse(b"cyrus/pop3", b"USAGE alice user: 0.008256 sys: 0.008256"),
            Parsed::Logout(Conn::Pid)
        );
        assert_eq!(
            parse(b"cyrus/sieve", b"USAGE alice user: 0.008256 sys: 0.008256"),
            Parsed::Nothing
        );
    }

    #[test]
    fn hostile_user_names_keep_the_real_address() {
        for user in [
            "ann [10.0.0.1]",
            "x> rip=10.0.0.1 <y",
            "joe, ip=[10.0.0.1]",
            "[10.0.0.1] PLAIN User logged in SESSIONID=<a>",
        ] {
            let line = format!("login: [192.0.2.7] {user} PLAIN User logged in SESSIONID=<c-1>");
            match parse(b"cyrus/imap", line.as_bytes()) {
                Parsed::Login { addr, user: u, .. } => {
                    assert_eq!(addr, here("192.0.2.7"), "{line}");
                    assert_eq!(u, Some(user.as_bytes()));
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn odd_shapes_are_suspect() {
        for l in [
            &b"login: evil host [10.0.0.1] a PLAIN User logged in"[..],
            b"login: [10.0.0.1 a PLAIN User logged in",
            b"login: [10.0.0.1]a PLAIN User logged in",
            b"login: [10.0.0.1] a PLAIN",
            b"login: [10.0.0.1] PLAIN User logged in",
            b"login: [10.0.0.1] a P(L) User logged in",
        ] {
            assert_eq!(
                parse(b"cyrus/pop3", l),
                Parsed::Suspect,
                "{}",
                String::from_utf8_lossy(l)
            );
        }
    }
}
