//! The socketmap protocol that Sendmail (8.13 and later) and Postfix (2.10 and later) speak to
//! a lookup table server: netstrings (`LEN:DATA,`) holding `NAME KEY` requests and `OK VALUE`,
//! `NOTFOUND `, `TEMP REASON` or `PERM REASON` replies, many on one connection.

use std::net::IpAddr;

use crate::error::one_line;
use crate::lease::parse_ip;

/// The longest request accepted: a map name and an address need far less. Anything longer is
/// not a lookup we answer, and the connection is closed.
pub const MAX_REQUEST: usize = 1000;
/// Digits of a netstring's length that can stand for at most [`MAX_REQUEST`].
const MAX_LEN_DIGITS: usize = 4;

/// Why a request cannot be answered; the connection is closed after a `PERM` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtoError {
    /// Not a netstring (the reason names what was wrong).
    Malformed(&'static str),
    /// A netstring longer than [`MAX_REQUEST`].
    TooLong(usize),
}

impl std::fmt::Display for ProtoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtoError::Malformed(why) => write!(f, "malformed netstring: {why}"),
            ProtoError::TooLong(n) => {
                write!(f, "request of {n} bytes is over the limit of {MAX_REQUEST}")
            }
        }
    }
}

/// One netstring from the start of `buf`: its payload and the bytes it took, or `Ok(None)`
/// when more bytes are needed.
pub fn parse_netstring(buf: &[u8]) -> Result<Option<(&[u8], usize)>, ProtoError> {
    let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits > MAX_LEN_DIGITS {
        return Err(ProtoError::TooLong(MAX_REQUEST + 1));
    }
    if digits == buf.len() {
        return Ok(None);
    }
    if digits == 0 {
        return Err(ProtoError::Malformed("no length"));
    }
    if buf[digits] != b':' {
        return Err(ProtoError::Malformed("no ':' after the length"));
    }
    if digits > 1 && buf[0] == b'0' {
        return Err(ProtoError::Malformed("a length with a leading zero"));
    }
    let len: usize = buf[..digits]
        .iter()
        .fold(0, |n, d| n * 10 + usize::from(d - b'0'));
    if len > MAX_REQUEST {
        return Err(ProtoError::TooLong(len));
    }
    let start = digits + 1;
    let end = start + len;
    match buf.get(end) {
        None => Ok(None),
        Some(b',') => Ok(Some((&buf[start..end], end + 1))),
        Some(_) => Err(ProtoError::Malformed("no ',' after the data")),
    }
}

/// `NAME KEY` split at the first space; `None` when there is no space.
pub fn split_request(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = payload.iter().position(|&b| b == b' ')?;
    Some((&payload[..at], &payload[at + 1..]))
}

/// The client address a lookup key names: a bare address as Postfix sends
/// `check_client_access` keys, Sendmail's `IPv6:` form of `${client_addr}`, or one in
/// brackets. Host names and Postfix's partial-address keys (`192.0.2`) name none.
pub fn key_address(key: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(key).ok()?;
    let text = text
        .strip_prefix("IPv6:")
        .or_else(|| text.strip_prefix("ipv6:"))
        .unwrap_or(text);
    parse_ip(text).ok()
}

/// The answer to one lookup, written as a netstring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    Ok(&'a str),
    NotFound,
    Perm(String),
}

/// Append `reply` to `out` as a netstring.
pub fn write_reply(out: &mut Vec<u8>, reply: &Reply<'_>) {
    let (word, data): (&str, &str) = match reply {
        Reply::Ok(value) => ("OK ", value),
        Reply::NotFound => ("NOTFOUND ", ""),
        Reply::Perm(reason) => ("PERM ", reason),
    };
    let data = one_line(data);
    out.extend_from_slice((word.len() + data.len()).to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(word.as_bytes());
    out.extend_from_slice(data.as_bytes());
    out.push(b',');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(r: Reply<'_>) -> String {
        let mut out = Vec::new();
        write_reply(&mut out, &r);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn netstrings_whole_partial_and_pipelined() {
        let two = b"20:relaylease 192.0.2.7,3:a b,";
        let (first, used) = parse_netstring(two).unwrap().unwrap();
        assert_eq!(first, b"relaylease 192.0.2.7");
        let (second, used2) = parse_netstring(&two[used..]).unwrap().unwrap();
        assert_eq!((second, used + used2), (&b"a b"[..], two.len()));
        // Every prefix of a request is "not yet", never an error.
        for end in 0..two.len().min(24) {
            assert_eq!(parse_netstring(&two[..end]), Ok(None), "{end}");
        }
        assert_eq!(parse_netstring(b"0:,"), Ok(Some((&b""[..], 3))));
    }

    #[test]
    fn what_is_not_a_netstring_is_refused() {
        for (bad, why) in [
            (&b":abc,"[..], "no length"),
            (b"GET / HTTP/1.0\r\n", "no length"),
            (b"3;abc,", "no ':' after the length"),
            (b"3:abcd,", "no ',' after the data"),
            (b"03:abc,", "a length with a leading zero"),
            (b"-1:a,", "no length"),
        ] {
            assert_eq!(
                parse_netstring(bad),
                Err(ProtoError::Malformed(why)),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_netstring(b"1001:"), Err(ProtoError::TooLong(1001)));
        assert!(matches!(
            parse_netstring(b"99999999999999999999999"),
            Err(ProtoError::TooLong(_))
        ));
        assert_eq!(parse_netstring(b"1000:"), Ok(None));
    }

    #[test]
    fn requests_and_keys() {
        assert_eq!(
            split_request(b"relaylease 192.0.2.7"),
            Some((&b"relaylease"[..], &b"192.0.2.7"[..]))
        );
        assert_eq!(split_request(b"relaylease"), None);
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(key_address(b"192.0.2.7"), ip("192.0.2.7"));
        assert_eq!(key_address(b"IPv6:2001:db8::1"), ip("2001:db8::1"));
        assert_eq!(key_address(b"[192.0.2.7]"), ip("192.0.2.7"));
        assert_eq!(key_address(b"::ffff:192.0.2.7"), ip("192.0.2.7"));
        for none in [
            &b"mail.example.org"[..],
            b"192.0.2",
            b"",
            b"192.0.2.7 x",
            b"\xff",
        ] {
            assert_eq!(key_address(none), None, "{}", String::from_utf8_lossy(none));
        }
    }

    #[test]
    fn replies_are_netstrings_with_one_line_reasons() {
        assert_eq!(reply(Reply::Ok("OK")), "5:OK OK,");
        assert_eq!(reply(Reply::NotFound), "9:NOTFOUND ,");
        assert_eq!(
            reply(Reply::Perm("unknown map x\ny".into())),
            "21:PERM unknown map x\\ny,"
        );
    }
}
