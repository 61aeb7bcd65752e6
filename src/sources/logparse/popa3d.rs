//! popa3d: `Authentication passed for U`, with the address only on tcpd's earlier line.
//!
//! Under inetd and tcpd, tcpd logs `connect from NAME (ADDRESS)` with popa3d's tag and
//! pid before popa3d starts; standalone popa3d logs `Session from ADDRESS`. The login line
//! names only the user, so the parser remembers each pid's address until its session ends.

use super::text::connect_from;
use super::{Addr, Conn, Parsed, Service};

pub(crate) fn parse(msg: &[u8]) -> Parsed<'_> {
    if let Some(rest) = msg
        .strip_prefix(b"connect from ")
        .or_else(|| msg.strip_prefix(b"Session from "))
    {
        return connect_from(rest).map_or(Parsed::Nothing, Parsed::Connect);
    }
    if let Some(user) = msg.strip_prefix(b"Authentication passed for ") {
        // The user name runs to the end of the line; nothing in it is read as an address.
        return Parsed::Login {
            addr: Addr::Pid,
            user: Some(user),
            service: Service::Pop3,
            conn: Conn::None,
        };
    }
    if msg.starts_with(b"Authentication failed for ") {
        return Parsed::Failure;
    }
    if msg == b"Didn't attempt authentication" || msg == b"Premature disconnect" {
        return Parsed::End;
    }
    Parsed::Nothing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(
            parse(b"connect from ::ffff:127.0.0.28 (::ffff:127.0.0.28)"),
            Parsed::Connect("127.0.0.28".parse().unwrap())
        );
        assert_eq!(
            parse(b"Session from 192.0.2.1"),
            Parsed::Connect("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            parse(b"Authentication passed for x -- [10.0.0.1]"),
            Parsed::Login {
                addr: Addr::Pid,
                user: Some(b"x -- [10.0.0.1]"),
                service: Service::Pop3,
                conn: Conn::None
            }
        );
        assert_eq!(parse(b"Authentication failed for alice"), Parsed::Failure);
        assert_eq!(parse(b"Didn't attempt authentication"), Parsed::End);
        assert_eq!(parse(b"0 messages (0 bytes) loaded"), Parsed::Nothing);
        assert_eq!(parse(b"connect from unknown"), Parsed::Nothing);
    }
}
