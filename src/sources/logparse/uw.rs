//! UW-IMAP `ipop3d`/`imapd` (c-client): `Login user=U host=NAME [A] nmsgs=N/M` and friends.
//!
//! The host field comes from c-client's `tcp_clienthost()`: `name [address]`, `[address]`,
//! or `UNKNOWN` when stdin is not a socket. It follows the user name, so the real field
//! is the last ` host=`, and only `nmsgs=`, `no mailbox` or `mech=` may follow it.

use super::text::{self, ip, is_digits, is_hostname, is_word};
use super::{Addr, Conn, Parsed, Service};

const LOGINS: [&[u8]; 5] = [
    b"Login user=",
    b"Admin Login user=",
    b"Auth user=",
    b"APOP user=",
    b"Authenticated user=",
];

pub(crate) fn parse<'a>(tag: &'a [u8], msg: &'a [u8]) -> Parsed<'a> {
    for prefix in LOGINS {
        if let Some(body) = msg.strip_prefix(prefix) {
            return login(body, Service::from_program(tag));
        }
    }
    if msg.starts_with(b"Login failed")
        || msg.starts_with(b"Login failure")
        || msg.starts_with(b"Excessive login")
        || (msg.starts_with(b"AUTHENTICATE ") && text::find(msg, b" failure host=").is_some())
    {
        return Parsed::Failure;
    }
    Parsed::Nothing
}

fn login(body: &[u8], service: Service) -> Parsed<'_> {
    let Some(h) = text::rfind(body, b" host=") else {
        return Parsed::Suspect;
    };
    let user = &body[..h];
    let host = &body[h + 6..];
    if let Some(tail) = host.strip_prefix(b"UNKNOWN") {
        if known_tail(tail) {
            return Parsed::Login {
                addr: Addr::Absent,
                user: Some(user),
                service,
                conn: Conn::None,
            };
        }
        return Parsed::Suspect;
    }
    let Some(open) = memchr::memchr(b'[', host) else {
        return Parsed::Suspect;
    };
    let name = &host[..open];
    if !name.is_empty() && !name.strip_suffix(b" ").is_some_and(is_hostname) {
        return Parsed::Suspect;
    }
    let Some((address, tail)) = text::split_once(&host[open + 1..], b']') else {
        return Parsed::Suspect;
    };
    match ip(address) {
        Some(addr) if known_tail(tail) => Parsed::Login {
            addr: Addr::Here(addr),
            user: Some(user),
            service,
            conn: Conn::None,
        },
        _ => Parsed::Suspect,
    }
}

fn known_tail(t: &[u8]) -> bool {
    if t.is_empty() || t == b" no mailbox" {
        return true;
    }
    if let Some(n) = t.strip_prefix(b" nmsgs=") {
        return text::split_once(n, b'/').is_some_and(|(a, b)| is_digits(a) && is_digits(b));
    }
    // The mechanism a client named, but only one c-client accepted gets logged here.
    t.strip_prefix(b" mech=").is_some_and(is_word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here(s: &str) -> Addr<'static> {
        Addr::Here(s.parse().unwrap())
    }

    #[test]
    fn documented_logins() {
        assert_eq!(
            parse(
                b"ipop3d",
                b"Login user=alice host=client.example.org [192.0.2.5] nmsgs=3/3"
            ),
            Parsed::Login {
                addr: here("192.0.2.5"),
                user: Some(b"alice"),
                service: Service::Pop3,
                conn: Conn::None
            }
        );
        assert_eq!(
            parse(b"imapd", b"Login user=alice host=[192.0.2.5]"),
            Parsed::Login {
                addr: here("192.0.2.5"),
                user: Some(b"alice"),
                service: Service::Imap,
                conn: Conn::None
            }
        );
        assert_eq!(
            parse(b"ipop3d", b"Auth user=bob host=[::1] nmsgs=0/0"),
            Parsed::Login {
                addr: here("::1"),
                user: Some(b"bob"),
                service: Service::Pop3,
                conn: Conn::None
            }
        );
        assert_eq!(
            parse(b"ipop3d", b"APOP user=bob host=h [192.0.2.6] no mailbox"),
            Parsed::Login {
                addr: here("192.0.2.6"),
                user: Some(b"bob"),
                service: Service::Pop3,
                conn: Conn::None
            }
        );
        assert_eq!(
            parse(
                b"imapd",
                b"Authenticated user=carol host=h.example [192.0.2.8] mech=PLAIN"
            ),
            Parsed::Login {
                addr: here("192.0.2.8"),
                user: Some(b"carol"),
                service: Service::Imap,
                conn: Conn::None
            }
        );
        assert_eq!(
            parse(b"imapd", b"Login user=dave host=UNKNOWN"),
            Parsed::Login {
                addr: Addr::Absent,
                user: Some(b"dave"),
                service: Service::Imap,
                conn: Conn::None
            }
        );
    }

    #[test]
    fn failures_are_not_logins() {
        for l in [
            &b"Login failed user=alice auth=alice host=[192.0.2.5]"[..],
            b"Login failure user=alice host=[192.0.2.5]",
            b"AUTHENTICATE PLAIN failure host=[192.0.2.5]",
            b"Excessive login failures user=alice host=[192.0.2.5]",
        ] {
            assert_eq!(
                parse(b"imapd", l),
                Parsed::Failure,
                "{}",
                String::from_utf8_lossy(l)
            );
        }
        assert_eq!(
            parse(b"imapd", b"Logout user=alice host=[192.0.2.5]"),
            Parsed::Nothing
        );
        assert_eq!(
            parse(
                b"ipop3d",
                b"IMAP login to host=x user=alice host=[192.0.2.5]"
            ),
            Parsed::Nothing
        );
    }

    #[test]
    fn hostile_user_names_keep_the_real_address() {
        for user in [
            "x host=[10.0.0.1]",
            "y host=evil [10.0.0.1] nmsgs=1/1",
            "rip=10.0.0.1",
            "[10.0.0.1]",
            ", rip=10.0.0.1",
        ] {
            let line = format!("Login user={user} host=client [192.0.2.7] nmsgs=1/1");
            match parse(b"ipop3d", line.as_bytes()) {
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
            &b"Login user=a host=two words [10.0.0.1]"[..],
            b"Login user=a host=[10.0.0.1] nmsgs=x",
            b"Login user=a host=[10.0.0.1] from 10.9.9.9",
            b"Login user=a host=h [10.0.0",
            b"Login user=a",
            b"Login user=a host=UNKNOWN [10.0.0.1]",
        ] {
            assert_eq!(
                parse(b"imapd", l),
                Parsed::Suspect,
                "{}",
                String::from_utf8_lossy(l)
            );
        }
    }
}
