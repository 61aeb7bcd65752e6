//! solid-pop3d: `user U authenticated - A` (with `--enable-logextend`) or `user U authenticated`.
//!
//! With logextend the server appends ` - ADDRESS`, so the address is the last field and is
//! read from the right; without it the line ends in `authenticated` and the address comes
//! from the pid's earlier `connect from` line. A user name cannot make a line end in an
//! address, because the server always writes its own suffix after it.

use super::text::{self, connect_from, ip};
use super::{Addr, Conn, Parsed, Service};

pub(crate) fn parse(msg: &[u8]) -> Parsed<'_> {
    if let Some(rest) = msg.strip_prefix(b"connect from ") {
        return connect_from(rest).map_or(Parsed::Nothing, Parsed::Connect);
    }
    if let Some(body) = msg.strip_prefix(b"user ") {
        return login(body);
    }
    if msg.starts_with(b"session ended for user ") {
        return Parsed::End;
    }
    if msg.starts_with(b"authentication failed") || msg.starts_with(b"APOP authentication failed") {
        return Parsed::Failure;
    }
    Parsed::Nothing
}

fn login(body: &[u8]) -> Parsed<'_> {
    let (left, addr) = match text::rfind(body, b" - ").and_then(|d| Some((d, ip(&body[d + 3..])?)))
    {
        Some((d, a)) => (&body[..d], Addr::Here(a)),
        None => (body, Addr::Pid),
    };
    let user = left
        .strip_suffix(b" authenticated")
        .or_else(|| left.strip_suffix(b" authenticated through APOP"));
    match user {
        Some(user) if !user.is_empty() => Parsed::Login {
            addr,
            user: Some(user),
            service: Service::Pop3,
            conn: Conn::None,
        },
        _ => Parsed::Nothing,
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
            parse(b"user alice authenticated through APOP - 127.0.0.22"),
            Parsed::Login {
                addr: here("127.0.0.22"),
                user: Some(b"alice"),
                service: Service::Pop3,
                conn: Conn::None
            }
        );
        assert_eq!(
            parse(b"user tom authenticated - 127.0.0.99 authenticated - 127.0.0.40"),
            Parsed::Login {
                addr: here("127.0.0.40"),
                user: Some(b"tom authenticated - 127.0.0.99"),
                service: Service::Pop3,
                conn: Conn::None
            }
        );
        // Without logextend: the address is the pid's.
        assert_eq!(
            parse(b"user bob authenticated - 10.0.0.1 authenticated"),
            Parsed::Login {
                addr: Addr::Pid,
                user: Some(b"bob authenticated - 10.0.0.1"),
                service: Service::Pop3,
                conn: Conn::None
            }
        );
    }

    #[test]
    fn other_lines() {
        assert_eq!(
            parse(b"connect from localhost (127.0.0.1)"),
            Parsed::Connect("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            parse(b"session ended for user alice - 127.0.0.21"),
            Parsed::End
        );
        assert_eq!(
            parse(b"authentication failed: no such user: connect from 127.0.0.99 (127.0.0.99) - 127.0.0.42"),
            Parsed::Failure
        );
        assert_eq!(parse(b"user alice logged out - 10.0.0.1"), Parsed::Nothing);
    }
}
