//! Byte-level helpers shared by the format parsers: exact field checks, no searching.

use std::net::IpAddr;

use crate::lease::canonical;

/// An address that fills the whole field: nothing before or after it, no brackets, no
/// spaces. A field that merely contains an address is not one.
pub(crate) fn ip(field: &[u8]) -> Option<IpAddr> {
    // The longest textual form is an IPv4-mapped address written out in full (45 bytes).
    if field.is_empty() || field.len() > 45 {
        return None;
    }
    let s = std::str::from_utf8(field).ok()?;
    s.parse::<IpAddr>().ok().map(canonical)
}

/// A host name as a resolver hands it to a server (letters, digits, dots, dashes). Servers
/// print reverse-DNS names next to the address, and a name with spaces or brackets in it
/// would let whoever controls a PTR record move the fields around.
pub(crate) fn is_hostname(b: &[u8]) -> bool {
    !b.is_empty()
        && b.len() <= 255
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
}

/// A mechanism, protocol or service name: letters, digits, `-` and `_`.
pub(crate) fn is_word(b: &[u8]) -> bool {
    !b.is_empty()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'))
}

pub(crate) fn is_digits(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(u8::is_ascii_digit)
}

/// Last occurrence of `needle`: fields after the user name are the server's own, so the
/// rightmost copy of a field marker is the real one.
pub(crate) fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::rfind(haystack, needle)
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// Split at the first `byte`, dropping it.
pub(crate) fn split_once(b: &[u8], byte: u8) -> Option<(&[u8], &[u8])> {
    let i = memchr::memchr(byte, b)?;
    Some((&b[..i], &b[i + 1..]))
}

/// A user name as reported: lossy UTF-8, because servers log whatever bytes the client sent.
pub(crate) fn user(b: &[u8]) -> Option<String> {
    if b.is_empty() {
        None
    } else {
        Some(String::from_utf8_lossy(b).into_owned())
    }
}

/// tcpd's `connect from NAME (ADDR)` and the bare `connect from ADDR` that some servers
/// write themselves. A bare host name is not an address and gives nothing.
pub(crate) fn connect_from(rest: &[u8]) -> Option<IpAddr> {
    if let Some(inner) = rest.strip_suffix(b")") {
        let open = memchr::memrchr(b'(', inner)?;
        let name = &inner[..open];
        if !name.ends_with(b" ") {
            return None;
        }
        return ip(&inner[open + 1..]);
    }
    ip(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_must_fill_the_field() {
        assert_eq!(ip(b"127.0.0.1"), "127.0.0.1".parse().ok());
        assert_eq!(ip(b"::ffff:10.1.2.3"), "10.1.2.3".parse().ok());
        assert_eq!(ip(b"0:0:0:0:0:0:0:1"), "::1".parse().ok());
        for bad in [
            &b""[..],
            b" 127.0.0.1",
            b"127.0.0.1 ",
            b"[127.0.0.1]",
            b"127.0.0.1x",
            b"fe80::1%eth0",
            b"\xff\xfe",
        ] {
            assert_eq!(ip(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn connect_from_reads_the_parenthesised_address() {
        assert_eq!(
            connect_from(b"localhost (127.0.0.1)"),
            "127.0.0.1".parse().ok()
        );
        assert_eq!(connect_from(b"::1"), "::1".parse().ok());
        assert_eq!(connect_from(b"mail.example.org"), None);
        assert_eq!(connect_from(b"x(127.0.0.1)"), None);
        assert_eq!(connect_from(b"a (b) (127.0.0.9) junk"), None);
    }
}
