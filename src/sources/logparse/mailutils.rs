//! GNU Mailutils `pop3d` and `imap4d`: logins never carry the address; `acl log` adds it.
//!
//! - `user `U' logged in with mailbox `M' (N messages)` (pop3d) and
//!   `user `U' logged in (source: S)` (imap4d) are the success lines. By default nothing
//!   in the log names the client, so these are logins without an address.
//! - With `acl { log from any; }` and `session-id yes`, the master process writes
//!   `SID ADDRESS` for each connection and the child prefixes its lines with `SID `, which
//!   joins the login to the address.

use super::text::{self, ip};
use super::{Addr, Conn, Parsed, Service};

/// Mailutils session ids are 8 characters; allow some room, but keep them short enough to
/// store inline.
pub(crate) const MAX_SID: usize = 32;

pub(crate) fn parse<'a>(tag: &'a [u8], msg: &'a [u8]) -> Parsed<'a> {
    let service = Service::from_program(tag);
    let plain = message(msg, service, Addr::Absent);
    if plain != Parsed::Nothing {
        return plain;
    }
    let Some((sid, rest)) = text::split_once(msg, b' ') else {
        return Parsed::Nothing;
    };
    if sid.len() < 4 || sid.len() > MAX_SID || !sid.iter().all(u8::is_ascii_alphanumeric) {
        return Parsed::Nothing;
    }
    if let Some(addr) = ip(rest) {
        return Parsed::Session {
            sid,
            ip: addr,
            service,
        };
    }
    if rest.starts_with(b"session ended") || rest.starts_with(b"session terminating") {
        return Parsed::SessionEnd { sid, service };
    }
    message(rest, service, Addr::Session(sid))
}

fn message<'a>(msg: &'a [u8], service: Service, addr: Addr<'a>) -> Parsed<'a> {
    let body = [&b"user `"[..], b"User `", b"User '"]
        .iter()
        .find_map(|p| msg.strip_prefix(*p));
    if let Some(body) = body {
        if let Some(user) = logged_in(body) {
            return Parsed::Login {
                addr,
                user,
                service,
                conn: Conn::None,
            };
        }
        if body.ends_with(b"': authentication failed") || body.ends_with(b"' nonexistent") {
            return Parsed::Failure;
        }
        return Parsed::Nothing;
    }
    if msg.starts_with(b"APOP failed for ")
        || msg.starts_with(b"login failed: ")
        || msg.starts_with(b"GSASL error: ")
    {
        return Parsed::Failure;
    }
    Parsed::Nothing
}

/// `Some(user)` for a success line; the inner `None` when the user name itself contains
/// the success phrase and cannot be told apart from the mailbox name.
fn logged_in(body: &[u8]) -> Option<Option<&[u8]>> {
    // imap4d: the source is the last field, so the last phrase is the real one.
    if let Some(r) = text::rfind(body, b"' logged in (source: ")
        && let Some(source) = body[r + 21..].strip_suffix(b")")
        && super::text::is_word(source)
    {
        return Some(Some(&body[..r]));
    }
    // pop3d: `U' logged in with mailbox `M'` and an optional message count. The mailbox
    // name usually contains the user name, so the phrase can appear more than once; the
    // end of the mailbox name is fixed, only where the user name stops is in question.
    let inner = strip_count(body)?.strip_suffix(b"'")?;
    let mut found: Option<(&[u8], bool)> = None;
    let mut count = 0;
    for needle in [
        &b"' logged in with mailbox `"[..],
        b"' logged in with mailbox '",
    ] {
        for at in memchr::memmem::find_iter(inner, needle).take(MAX_SPLITS) {
            let (user, mailbox) = (&inner[..at], &inner[at + needle.len()..]);
            let owns = mailbox.ends_with(user);
            count += 1;
            if found.is_none_or(|(_, best)| owns && !best) {
                found = Some((user, owns));
            }
        }
    }
    match (found, count) {
        (None, _) => None,
        (Some((user, _)), 1) | (Some((user, true)), _) => Some(Some(user)),
        (Some(_), _) => Some(None),
    }
}

/// A user name would have to repeat the success phrase to make more than one split
/// possible; past a few, stop looking (the login is still reported, without a user).
const MAX_SPLITS: usize = 8;

/// Drop ` (3 messages)`, ` (1 message)` or ` (3 msgs)`; a line without one is fine too.
fn strip_count(m: &[u8]) -> Option<&[u8]> {
    let Some(inner) = m.strip_suffix(b")") else {
        return Some(m);
    };
    let open = text::rfind(inner, b" (")?;
    let (n, word) = text::split_once(&inner[open + 2..], b' ')?;
    if text::is_digits(n) && matches!(word, b"messages" | b"message" | b"msgs") {
        Some(&m[..open])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_logins_have_no_address() {
        assert_eq!(
            parse(
                b"pop3d",
                b"user `alice' logged in with mailbox `/var/mail/alice' (0 messages)"
            ),
            Parsed::Login {
                addr: Addr::Absent,
                user: Some(b"alice"),
                service: Service::Pop3,
                conn: Conn::None
            }
        );
        assert_eq!(
            parse(
                b"imap4d",
                b"user `ann [127.0.0.99]' logged in (source: system)"
            ),
            Parsed::Login {
                addr: Addr::Absent,
                user: Some(b"ann [127.0.0.99]"),
                service: Service::Imap,
                conn: Conn::None
            }
        );
        assert_eq!(
            parse(
                b"gnu-pop3d",
                b"User 'bob' logged in with mailbox 'mbox:/var/mail/bob' (2 msgs)"
            ),
            Parsed::Login {
                addr: Addr::Absent,
                user: Some(b"bob"),
                service: Service::Pop3,
                conn: Conn::None
            }
        );
    }

    #[test]
    fn secondary_and_failure_lines() {
        assert_eq!(
            parse(b"pop3d", b"POP3 login: user `alice', source system"),
            Parsed::Nothing
        );
        assert_eq!(
            parse(b"pop3d", b"session ended for user: alice"),
            Parsed::Nothing
        );
        assert_eq!(
            parse(
                b"pop3d",
                b"process 9234 finished with code 0 (Normal termination)"
            ),
            Parsed::Nothing
        );
        for l in [
            &b"user `alice': authentication failed"[..],
            b"user `nosuchuser' nonexistent",
            b"APOP failed for `alice'",
            b"2AM3GgB7 login failed: alice",
        ] {
            assert_eq!(
                parse(b"imap4d", l),
                Parsed::Failure,
                "{}",
                String::from_utf8_lossy(l)
            );
        }
    }

    #[test]
    fn acl_log_lines() {
        assert_eq!(
            parse(b"pop3d", b"2AM3G94F 127.0.0.21"),
            Parsed::Session {
                sid: b"2AM3G94F",
                ip: "127.0.0.21".parse().unwrap(),
                service: Service::Pop3
            }
        );
        assert_eq!(
            parse(b"imap4d", b"2AM3GvBE 0:0:0:0:0:0:0:1"),
            Parsed::Session {
                sid: b"2AM3GvBE",
                ip: "::1".parse().unwrap(),
                service: Service::Imap
            }
        );
        assert_eq!(
            parse(
                b"imap4d",
                b"2AM3GeB5 user `alice' logged in (source: system)"
            ),
            Parsed::Login {
                addr: Addr::Session(b"2AM3GeB5"),
                user: Some(b"alice"),
                service: Service::Imap,
                conn: Conn::None
            }
        );
        assert_eq!(
            parse(b"pop3d", b"2AM3GB4H session ended for no user"),
            Parsed::SessionEnd {
                sid: b"2AM3GB4H",
                service: Service::Pop3
            }
        );
        // Without session ids the address line cannot be joined to anything.
        assert_eq!(parse(b"pop3d", b"127.0.0.21"), Parsed::Nothing);
    }

    #[test]
    fn a_user_name_repeating_the_phrase_is_resolved_by_the_mailbox() {
        let line = b"user `x' logged in with mailbox `y' logged in with mailbox `/var/mail/x' logged in with mailbox `y' (0 messages)";
        assert_eq!(
            parse(b"pop3d", line),
            Parsed::Login {
                addr: Addr::Absent,
                user: Some(b"x' logged in with mailbox `y"),
                service: Service::Pop3,
                conn: Conn::None
            }
        );
        let line = b"user `a' logged in with mailbox `b' logged in with mailbox `c' (0 messages)";
        assert_eq!(
            parse(b"pop3d", line),
            Parsed::Login {
                addr: Addr::Absent,
                user: None,
                service: Service::Pop3,
                conn: Conn::None
            }
        );
    }
}
