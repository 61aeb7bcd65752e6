//! Courier-IMAP `imapd` and courier-pop `pop3d`: `LOGIN, user=U, ip=[A], port=[P]`.
//!
//! The user name is written raw, so the real `ip=[` is the last one, and only Courier's
//! own `port=`, `protocol=` and `stls=` may follow it.

use super::text::{self, ip, is_digits, is_word};
use super::{Addr, Conn, Parsed, Service};

pub(crate) fn parse<'a>(tag: &'a [u8], msg: &'a [u8]) -> Parsed<'a> {
    // courierlogger normally strips the `INFO: ` severity; older setups keep it.
    let msg = msg.strip_prefix(b"INFO: ").unwrap_or(msg);
    if let Some(fields) = msg.strip_prefix(b"LOGIN, user=") {
        return login(fields, Service::from_program(tag));
    }
    if msg.starts_with(b"LOGIN FAILED,") {
        return Parsed::Failure;
    }
    if msg.starts_with(b"LOGOUT, ")
        || msg.starts_with(b"DISCONNECTED, ")
        || msg.starts_with(b"TIMEOUT, ")
    {
        return logout(msg);
    }
    Parsed::Nothing
}

/// `LOGOUT, user=U, ip=[A], port=[P], top=0, ...` (`DISCONNECTED`, `TIMEOUT` alike): the
/// session is named by the address and port, read like the login's, from the right.
fn logout(msg: &[u8]) -> Parsed<'_> {
    let Some(r) = text::rfind(msg, b", ip=[") else {
        return Parsed::Nothing;
    };
    let Some((address, tail)) = text::split_once(&msg[r + 6..], b']') else {
        return Parsed::Nothing;
    };
    let Some(port) = tail
        .strip_prefix(b", port=[")
        .and_then(|t| text::split_once(t, b']'))
        .map(|(p, _)| p)
        .filter(|p| is_digits(p))
    else {
        return Parsed::Nothing;
    };
    if ip(address).is_none() {
        return Parsed::Nothing;
    }
    Parsed::Logout(Conn::Pair(address, port))
}

fn login(f: &[u8], service: Service) -> Parsed<'_> {
    let Some(r) = text::rfind(f, b", ip=[") else {
        return Parsed::Suspect;
    };
    let user = &f[..r];
    let Some((address, mut tail)) = text::split_once(&f[r + 6..], b']') else {
        return Parsed::Suspect;
    };
    let Some(addr) = ip(address) else {
        return Parsed::Suspect;
    };
    let mut conn = Conn::None;
    while !tail.is_empty() {
        let Some(t) = tail.strip_prefix(b", ") else {
            return Parsed::Suspect;
        };
        let end = text::find(t, b", ").unwrap_or(t.len());
        let field = &t[..end];
        if !known_trailer(field) {
            return Parsed::Suspect;
        }
        if let Some(p) = field.strip_prefix(b"port=[") {
            conn = Conn::Pair(address, &p[..p.len() - 1]);
        }
        tail = &t[end..];
    }
    Parsed::Login {
        addr: Addr::Here(addr),
        user: Some(user),
        service,
        conn,
    }
}

fn known_trailer(t: &[u8]) -> bool {
    if let Some(p) = t.strip_prefix(b"port=[").and_then(|p| p.strip_suffix(b"]")) {
        return is_digits(p);
    }
    if let Some(p) = t.strip_prefix(b"protocol=") {
        return is_word(p);
    }
    t == b"stls=1"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here(s: &str) -> Addr<'static> {
        Addr::Here(s.parse().unwrap())
    }

    #[test]
    fn pop3_and_imap_logins() {
        assert_eq!(
            parse(
                b"pop3d",
                b"LOGIN, user=alice, ip=[::ffff:127.0.0.21], port=[37769]"
            ),
            Parsed::Login {
                addr: here("127.0.0.21"),
                user: Some(b"alice"),
                service: Service::Pop3,
                conn: Conn::Pair(b"::ffff:127.0.0.21", b"37769")
            }
        );
        assert_eq!(
            parse(
                b"imapd-ssl",
                b"INFO: LOGIN, user=a, ip=[::1], port=[1], protocol=IMAP, stls=1"
            ),
            Parsed::Login {
                addr: here("::1"),
                user: Some(b"a"),
                service: Service::Imap,
                conn: Conn::Pair(b"::1", b"1")
            }
        );
    }

    #[test]
    fn failures_and_other_lines() {
        assert_eq!(
            parse(
                b"pop3d",
                b"LOGIN FAILED, method=PLAIN, ip=[::ffff:127.0.0.26], port=[33491]"
            ),
            Parsed::Failure
        );
        assert_eq!(
            parse(
                b"pop3d",
                b"LOGOUT, user=alice, ip=[::ffff:127.0.0.21], port=[37769], top=0"
            ),
            Parsed::Logout(Conn::Pair(b"::ffff:127.0.0.21", b"37769"))
        );
        // The session's address is the last one, like the login's.
        assert_eq!(
            parse(
                b"imapd",
                b"DISCONNECTED, user=x, ip=[10.0.0.1], port=[2], ip=[::1], port=[53971], headers=0"
            ),
            Parsed::Logout(Conn::Pair(b"::1", b"53971"))
        );
        assert_eq!(
            parse(b"imapd", b"TIMEOUT, user=alice, ip=[::1], port=[x]"),
            Parsed::Nothing
        );
        assert_eq!(
            parse(b"imapd", b"Connection, ip=[::ffff:127.0.0.1], port=[44744]"),
            Parsed::Nothing
        );
    }

    #[test]
    fn hostile_user_names_keep_the_real_address() {
        for user in [
            "joe, ip=[10.0.0.1]",
            "ann [10.0.0.1]",
            "x, ip=[10.0.0.1], port=[1], protocol=IMAP",
            "eve, rip=10.0.0.1",
        ] {
            let line =
                format!("LOGIN, user={user}, ip=[::ffff:192.0.2.7], port=[5], protocol=IMAP");
            match parse(b"imapd", line.as_bytes()) {
                Parsed::Login { addr, user: u, .. } => {
                    assert_eq!(addr, here("192.0.2.7"), "{line}");
                    assert_eq!(u, Some(user.as_bytes()));
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_trailers_are_suspect() {
        for l in [
            &b"LOGIN, user=a, ip=[192.0.2.7], port=[5], user=b"[..],
            b"LOGIN, user=a, ip=[192.0.2.7",
            b"LOGIN, user=a, ip=[192.0.2.7] , port=[5]",
            b"LOGIN, user=a, ip=[nowhere], port=[5]",
            b"LOGIN, user=a",
        ] {
            assert_eq!(
                parse(b"pop3d", l),
                Parsed::Suspect,
                "{}",
                String::from_utf8_lossy(l)
            );
        }
    }
}
