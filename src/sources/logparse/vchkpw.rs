//! vpopmail's vchkpw (qmail-pop3d): `vchkpw-pop3: (PLAIN) login success user@domain:A`.
//!
//! vchkpw checks the domain exists before it logs a success, so the part after the last
//! `@` is `domain:address` with a domain that has neither `@` nor `:` in it; the address
//! is what follows its first `:` (IPv6 addresses have colons of their own).

use super::text::{self, ip, is_hostname};
use super::{Addr, Conn, Parsed, Service};

pub(crate) fn parse(msg: &[u8]) -> Parsed<'_> {
    let Some(rest) = msg.strip_prefix(b"vchkpw") else {
        return Parsed::Nothing;
    };
    let (service, rest) = if let Some(r) = rest.strip_prefix(b": ") {
        // vpopmail before 5.4 logged POP3 logins as plain `vchkpw:`.
        (Service::Pop3, r)
    } else if let Some(r) = rest.strip_prefix(b"-") {
        let Some((name, r)) = text::split_once(r, b':') else {
            return Parsed::Nothing;
        };
        let service = match name {
            b"pop3" | b"pop3s" => Service::Pop3,
            b"imap" | b"imaps" => Service::Imap,
            // SMTP AUTH through vchkpw: the client authenticates to the MTA itself.
            _ => return Parsed::Nothing,
        };
        (service, r.strip_prefix(b" ").unwrap_or(r))
    } else {
        return Parsed::Nothing;
    };
    // `(PLAIN) `, `(APOP) `, `(CRAM-MD5) ` in vpopmail 5.4 and later.
    let rest = match rest.strip_prefix(b"(") {
        Some(r) => match text::split_once(r, b')') {
            Some((kind, r)) if text::is_word(kind) => r.strip_prefix(b" ").unwrap_or(r),
            _ => return Parsed::Nothing,
        },
        None => rest,
    };
    if let Some(body) = rest.strip_prefix(b"login success ") {
        return login(body, service);
    }
    if rest.starts_with(b"password fail") || rest.starts_with(b"vpopmail user not found") {
        return Parsed::Failure;
    }
    Parsed::Nothing
}

fn login(body: &[u8], service: Service) -> Parsed<'_> {
    let Some(at) = memchr::memrchr(b'@', body) else {
        return Parsed::Suspect;
    };
    let Some(colon) = memchr::memchr(b':', &body[at..]).map(|c| at + c) else {
        return Parsed::Suspect;
    };
    if !is_hostname(&body[at + 1..colon]) || at == 0 {
        return Parsed::Suspect;
    }
    let address = &body[colon + 1..];
    let addr = if address.is_empty() {
        // Run without tcpserver (TCPREMOTEIP unset).
        Addr::Absent
    } else {
        match ip(address) {
            Some(a) => Addr::Here(a),
            None => return Parsed::Suspect,
        }
    };
    Parsed::Login {
        addr,
        user: Some(&body[..colon]),
        service,
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
    fn documented_logins() {
        assert_eq!(
            parse(b"vchkpw-pop3: (PLAIN) login success alice@example.com:192.0.2.5"),
            Parsed::Login {
                addr: here("192.0.2.5"),
                user: Some(b"alice@example.com"),
                service: Service::Pop3,
                conn: Conn::None
            }
        );
        assert_eq!(
            parse(b"vchkpw-imaps: (PLAIN) login success a@example.com:::ffff:192.0.2.5"),
            Parsed::Login {
                addr: here("192.0.2.5"),
                user: Some(b"a@example.com"),
                service: Service::Imap,
                conn: Conn::None
            }
        );
        assert_eq!(
            parse(b"vchkpw-pop3: (APOP) login success a@example.com:2001:db8::5"),
            Parsed::Login {
                addr: here("2001:db8::5"),
                user: Some(b"a@example.com"),
                service: Service::Pop3,
                conn: Conn::None
            }
        );
        assert_eq!(
            parse(b"vchkpw: login success a@example.com:192.0.2.5"),
            Parsed::Login {
                addr: here("192.0.2.5"),
                user: Some(b"a@example.com"),
                service: Service::Pop3,
                conn: Conn::None
            }
        );
    }

    #[test]
    fn smtp_auth_and_failures() {
        assert_eq!(
            parse(b"vchkpw-smtp: (CRAM-MD5) login success a@example.com:192.0.2.5"),
            Parsed::Nothing
        );
        assert_eq!(
            parse(b"vchkpw-pop3: password fail (pass: 'x login success a@b.c:10.0.0.1') a@example.com:192.0.2.5"),
            Parsed::Failure
        );
        assert_eq!(
            parse(b"vchkpw-pop3: vpopmail user not found x@example.com:192.0.2.5"),
            Parsed::Failure
        );
    }

    #[test]
    fn hostile_user_parts_keep_the_real_address() {
        assert_eq!(
            parse(b"vchkpw-pop3: (PLAIN) login success evil:10.0.0.1@example.com:192.0.2.7"),
            Parsed::Login {
                addr: here("192.0.2.7"),
                user: Some(b"evil:10.0.0.1@example.com"),
                service: Service::Pop3,
                conn: Conn::None
            }
        );
        assert_eq!(
            parse(b"vchkpw-pop3: (PLAIN) login success a@example.com:10.0.0.1 junk"),
            Parsed::Suspect
        );
        assert_eq!(
            parse(b"vchkpw-pop3: (PLAIN) login success example.com:10.0.0.1"),
            Parsed::Suspect
        );
    }
}
