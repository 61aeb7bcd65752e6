//! Qualcomm qpopper: `(v4.0.9) POP login by user "U" at (HOST) A [pop_log.c:244]`.
//!
//! The address ends the message (before the optional source location), after the user
//! name, so it is read from the right: `" at (HOST) A`, with HOST a plain host name.

use super::text::{self, ip, is_digits};
use super::{Addr, Conn, Parsed, Service};

pub(crate) fn parse(msg: &[u8]) -> Parsed<'_> {
    let mut msg = msg;
    if msg.starts_with(b"(v") {
        let Some((_, rest)) = text::split_once(msg, b')') else {
            return Parsed::Nothing;
        };
        msg = rest.strip_prefix(b" ").unwrap_or(rest);
    }
    let Some(body) = msg.strip_prefix(b"POP login by user \"") else {
        return Parsed::Nothing;
    };
    login(strip_location(body))
}

/// Debug builds append where they logged from: ` [pop_log.c:244]`.
fn strip_location(b: &[u8]) -> &[u8] {
    if let Some(inner) = b.strip_suffix(b"]")
        && let Some(open) = text::rfind(inner, b" [")
        && let Some((file, line)) = text::split_once(&inner[open + 2..], b':')
        && file.ends_with(b".c")
        && is_digits(line)
    {
        return &b[..open];
    }
    b
}

fn login(body: &[u8]) -> Parsed<'_> {
    let Some(sp) = memchr::memrchr(b' ', body) else {
        return Parsed::Suspect;
    };
    let Some(addr) = ip(&body[sp + 1..]) else {
        return Parsed::Suspect;
    };
    let Some(left) = body[..sp].strip_suffix(b")") else {
        return Parsed::Suspect;
    };
    let Some(q) = text::rfind(left, b"\" at (") else {
        return Parsed::Suspect;
    };
    let host = &left[q + 6..];
    // The client's name, or its address when it has none.
    let host_ok = !host.is_empty()
        && host
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b':'));
    if !host_ok {
        return Parsed::Suspect;
    }
    Parsed::Login {
        addr: Addr::Here(addr),
        user: Some(&left[..q]),
        service: Service::Pop3,
        conn: Conn::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here(s: &str) -> Addr<'static> {
        Addr::Here(s.parse().unwrap())
    }

    #[test]
    fn documented_login() {
        assert_eq!(
            parse(b"(v4.0.9) POP login by user \"nick\" at (yw-out-2526.google.com) 74.125.46.35 [pop_log.c:244]"),
            Parsed::Login { addr: here("74.125.46.35"), user: Some(b"nick"), service: Service::Pop3, conn: Conn::None }
        );
        assert_eq!(
            parse(b"POP login by user \"a\" at (192.0.2.1) 192.0.2.1"),
            Parsed::Login {
                addr: here("192.0.2.1"),
                user: Some(b"a"),
                service: Service::Pop3,
                conn: Conn::None
            }
        );
    }

    #[test]
    fn hostile_user_names_keep_the_real_address() {
        for user in ["x\" at (h) 10.0.0.1", "[10.0.0.1]", "rip=10.0.0.1"] {
            let line = format!("(v4.1.0) POP login by user \"{user}\" at (client) 192.0.2.7");
            match parse(line.as_bytes()) {
                Parsed::Login { addr, user: u, .. } => {
                    assert_eq!(addr, here("192.0.2.7"), "{line}");
                    assert_eq!(u, Some(user.as_bytes()));
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn other_lines() {
        assert_eq!(
            parse(b"(v4.0.9) Servicing request from \"h\" at 74.125.46.35 [pop_init.c:1408]"),
            Parsed::Nothing
        );
        assert_eq!(
            parse(b"POP login by user \"a\" at (evil host) 192.0.2.1"),
            Parsed::Suspect
        );
        assert_eq!(
            parse(b"POP login by user \"a\" at (h) nowhere"),
            Parsed::Suspect
        );
        assert_eq!(parse(b"POP login by user \"a\""), Parsed::Suspect);
    }
}
