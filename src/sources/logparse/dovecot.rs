//! Dovecot 2.2-2.4 login processes (`pop3-login`, `imap-login`), via syslog or Dovecot's own file.
//!
//! `Login: user=<U>, method=M, rip=R, lip=L, mpid=N, secured, session=<S>` (2.4 says
//! `Logged in:`). Dovecot does not escape the user name, so `U` can contain `>, rip=`;
//! everything after it is Dovecot's own. The real address is therefore the last `, rip=`
//! in the line, provided it is preceded by `>, method=M` and followed only by fields
//! Dovecot writes there.

use super::text::{self, ip, is_digits, is_word};
use super::{Addr, Conn, Parsed, Service};

/// After the `dovecot:` syslog tag, or after the timestamp in Dovecot's `log_path` file
/// (`pop3-login: Info: Login: ...`).
pub(crate) fn parse(msg: &[u8]) -> Parsed<'_> {
    let (service, rest) = if let Some(r) = msg.strip_prefix(b"pop3-login: ") {
        (Service::Pop3, r)
    } else if let Some(r) = msg.strip_prefix(b"imap-login: ") {
        (Service::Imap, r)
    } else {
        return logout(msg);
    };
    // The log level is written in Dovecot's own file, not through syslog.
    let rest = rest.strip_prefix(b"Info: ").unwrap_or(rest);
    if let Some(fields) = rest
        .strip_prefix(b"Login: ")
        .or_else(|| rest.strip_prefix(b"Logged in: "))
    {
        return login_fields(fields, service);
    }
    if rest.starts_with(b"Disconnected")
        || rest.starts_with(b"Login aborted")
        || rest.starts_with(b"Aborted login")
    {
        // The reason comes before the fields, so a user name cannot fake it.
        let reason = &rest[..text::find(rest, b"user=<").unwrap_or(rest.len())];
        if text::find(reason, b"(auth failed").is_some() {
            return Parsed::Failure;
        }
    }
    Parsed::Nothing
}

fn login_fields(f: &[u8], service: Service) -> Parsed<'_> {
    if !f.starts_with(b"user=<") {
        return Parsed::Suspect;
    }
    let Some(r) = text::rfind(f, b", rip=") else {
        return Parsed::Suspect;
    };
    // Before the address: `user=<U>, method=M`.
    let head = &f[..r];
    let Some(m) = text::rfind(head, b", method=") else {
        return Parsed::Suspect;
    };
    let user_field = &head[..m];
    if !is_word(&head[m + 9..]) || user_field.len() < 7 || !user_field.ends_with(b">") {
        return Parsed::Suspect;
    }
    let user = &user_field[6..user_field.len() - 1];
    // From the address on: `R, lip=L` and then only Dovecot's own trailing fields.
    let Some((rip, rest)) = text::split_once(&f[r + 6..], b',') else {
        return Parsed::Suspect;
    };
    let Some(addr) = ip(rip) else {
        return Parsed::Suspect;
    };
    let Some(rest) = rest.strip_prefix(b" lip=") else {
        return Parsed::Suspect;
    };
    let (lip, mut tail) = match memchr::memchr(b',', rest) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, &rest[rest.len()..]),
    };
    if ip(lip).is_none() {
        return Parsed::Suspect;
    }
    let (mut mpid, mut session) = (None, None);
    while !tail.is_empty() {
        let Some(t) = tail.strip_prefix(b", ") else {
            return Parsed::Suspect;
        };
        let end = text::find(t, b", ").unwrap_or(t.len());
        let field = &t[..end];
        if !known_trailer(field) {
            return Parsed::Suspect;
        }
        if let Some(n) = field.strip_prefix(b"mpid=") {
            mpid = Some(n);
        } else if let Some(s) = field.strip_prefix(b"session=<") {
            session = Some(&s[..s.len() - 1]);
        }
        tail = &t[end..];
    }
    let conn = match (mpid, session) {
        (Some(pid), Some(id)) if !id.is_empty() => Conn::Pair(pid, id),
        _ => Conn::None,
    };
    Parsed::Login {
        addr: Addr::Here(addr),
        user: Some(user),
        service,
        conn,
    }
}

/// The mail process's last line, `imap(U)<PID><SESSION>: Info: Disconnected: Logged out ...`
/// (`Disconnected for inactivity`, `... Connection closed`). `U` is raw, so the prefix is
/// read from its right end: what follows `>: ` is Dovecot's own text.
fn logout(msg: &[u8]) -> Parsed<'_> {
    let Some(open) = memchr::memchr(b'(', msg) else {
        return Parsed::Nothing;
    };
    if !is_word(&msg[..open]) {
        return Parsed::Nothing;
    }
    let Some(colon) = text::rfind(msg, b">: ") else {
        return Parsed::Nothing;
    };
    let rest = &msg[colon + 3..];
    let rest = rest.strip_prefix(b"Info: ").unwrap_or(rest);
    if !rest.starts_with(b"Disconnected") {
        return Parsed::Nothing;
    }
    // `...)<PID><SESSION`
    let head = &msg[..colon];
    let Some(lt) = memchr::memrchr(b'<', head) else {
        return Parsed::Nothing;
    };
    let id = &head[lt + 1..];
    let Some(pid_part) = head[..lt].strip_suffix(b">") else {
        return Parsed::Nothing;
    };
    let Some(lt) = memchr::memrchr(b'<', pid_part) else {
        return Parsed::Nothing;
    };
    let pid = &pid_part[lt + 1..];
    if !is_digits(pid) || !pid_part[..lt].ends_with(b")") || id.is_empty() || !session_chars(id) {
        return Parsed::Nothing;
    }
    Parsed::Logout(Conn::Pair(pid, id))
}

/// The characters of Dovecot's session ids (base64).
fn session_chars(id: &[u8]) -> bool {
    id.iter()
        .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'-' | b'_'))
}

/// The fields Dovecot's default `login_log_format_elements` put after `lip=`. None of them
/// carries text a client chose; an unknown one makes the line a [`Parsed::Suspect`], because
/// a field we cannot vouch for could carry a fake `, rip=`.
fn known_trailer(t: &[u8]) -> bool {
    if let Some(n) = t.strip_prefix(b"mpid=") {
        return is_digits(n);
    }
    if let Some(s) = t
        .strip_prefix(b"session=<")
        .and_then(|s| s.strip_suffix(b">"))
    {
        return session_chars(s);
    }
    if t.starts_with(b"TLSv") || t.starts_with(b"SSLv") {
        // `TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)`
        return t
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || b" ._-/()".contains(&c));
    }
    matches!(t, b"secured" | b"TLS" | b"TLS handshaking")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Addr<'static> {
        Addr::Here(s.parse().unwrap())
    }

    #[test]
    fn syslog_login() {
        let p = parse(b"pop3-login: Login: user=<alice>, method=PLAIN, rip=127.0.0.21, lip=127.0.0.1, mpid=8176, session=<CHtby9Rgd6N/AAAV>");
        assert_eq!(
            p,
            Parsed::Login {
                addr: addr("127.0.0.21"),
                user: Some(b"alice"),
                service: Service::Pop3,
                conn: Conn::Pair(b"8176", b"CHtby9Rgd6N/AAAV")
            }
        );
    }

    #[test]
    fn mail_process_disconnects_end_sessions() {
        assert_eq!(
            parse(b"imap(alice)<8213><jJE6zdRgxeZ/AAAq>: Info: Disconnected: Logged out in=26 out=770"),
            Parsed::Logout(Conn::Pair(b"8213", b"jJE6zdRgxeZ/AAAq"))
        );
        assert_eq!(
            parse(b"imap(a)<9><S>: Disconnected for inactivity in=0 out=405"),
            Parsed::Logout(Conn::Pair(b"9", b"S"))
        );
        // The user name is raw: the prefix is read from its right end.
        assert_eq!(
            parse(b"imap(x)<1><A>: Disconnected: y)<8><B>: Info: Disconnected: Logged out in=1"),
            Parsed::Logout(Conn::Pair(b"8", b"B"))
        );
        assert_eq!(
            parse(b"imap(x)<1><A>: Disconnected)<8><B>: Info: Logged in"),
            Parsed::Nothing,
            "only a line that is itself a disconnect ends a session"
        );
        for other in [
            &b"imap(alice)<8213><jJE6zdRgxeZ/AAAq>: Info: Connection closed"[..],
            b"imap(alice)<x><S>: Disconnected: Logged out",
            b"imap(alice)<1><>: Disconnected: Logged out",
            b"auth: Info: Disconnected",
            b"imap alice)<1><S>: Disconnected",
        ] {
            assert_eq!(
                parse(other),
                Parsed::Nothing,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        // A login without its mail pid or session names no session.
        assert!(matches!(
            parse(b"pop3-login: Login: user=<a>, method=PLAIN, rip=192.0.2.1, lip=192.0.2.2, session=<x>"),
            Parsed::Login { conn: Conn::None, .. }
        ));
    }

    #[test]
    fn native_login_and_dovecot_24() {
        let p = parse(b"imap-login: Info: Login: user=<a>, method=PLAIN, rip=::1, lip=::1, mpid=8192, secured, session=<xKxpzNRgP84AAAAAAAAAAAAAAAAAAAAB>");
        assert!(matches!(
            p,
            Parsed::Login {
                service: Service::Imap,
                ..
            }
        ));
        let p = parse(b"imap-login: Logged in: user=<a>, method=PLAIN, rip=192.0.2.4, lip=192.0.2.1, mpid=1, TLS, session=<abc>");
        assert!(matches!(
            p,
            Parsed::Login {
                addr: Addr::Here(_),
                ..
            }
        ));
        let p = parse(b"imap-login: Login: user=<a>, method=PLAIN, rip=192.0.2.4, lip=192.0.2.1, mpid=7990, TLS, TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits)");
        assert!(matches!(p, Parsed::Login { .. }));
        // Dovecot 2.2 without session ids.
        let p = parse(b"imap-login: Login: user=<a>, method=PLAIN, rip=192.0.2.4, lip=192.0.2.1, mpid=9, secured");
        assert!(matches!(p, Parsed::Login { .. }));
    }

    #[test]
    fn aborts_and_failures_are_not_logins() {
        assert_eq!(
            parse(b"imap-login: Login aborted: Connection closed (auth failed, 1 attempts in 2 secs) (auth_failed): user=<a>, method=PLAIN, rip=192.0.2.4, lip=192.0.2.1, session=<x>"),
            Parsed::Failure
        );
        assert_eq!(
            parse(b"pop3-login: Disconnected: Connection closed (no auth attempts in 0 secs): user=<>, rip=127.0.0.1, lip=127.0.0.1, secured, session=<x>"),
            Parsed::Nothing
        );
        // A user name cannot turn an abort into a failure count either.
        assert_eq!(
            parse(b"pop3-login: Disconnected: Connection closed (no auth attempts): user=<(auth failed>, rip=127.0.0.1, lip=127.0.0.1"),
            Parsed::Nothing
        );
        assert_eq!(
            parse(b"auth: passwd-file(alice,127.0.0.25,<Vg8D>): Password mismatch"),
            Parsed::Nothing
        );
        assert_eq!(
            parse(b"submission-login: Login: user=<a>, method=PLAIN, rip=192.0.2.4, lip=192.0.2.1"),
            Parsed::Nothing
        );
    }

    #[test]
    fn hostile_user_names_keep_the_real_address() {
        for user in [
            "eve, rip=10.0.0.1",
            "x> rip=10.0.0.1 <y",
            "[10.0.0.1]",
            "a>, method=PLAIN, rip=10.0.0.1, lip=10.0.0.2, mpid=1, session=<s",
            "rip=10.0.0.1, lip=10.0.0.1",
        ] {
            let line = format!(
                "pop3-login: Login: user=<{user}>, method=PLAIN, rip=192.0.2.7, lip=192.0.2.1, mpid=5, session=<abc>"
            );
            match parse(line.as_bytes()) {
                Parsed::Login { addr, user: u, .. } => {
                    assert_eq!(addr, super::tests::addr("192.0.2.7"), "{line}");
                    assert_eq!(u, Some(user.as_bytes()));
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_login_without_its_own_rip_grants_nothing() {
        // Connections over a UNIX socket have no rip/lip; Dovecot drops empty fields, so
        // the only `rip=` would be the one inside the user name.
        let line = b"pop3-login: Login: user=<a>, method=PLAIN, rip=10.0.0.1, lip=10.0.0.2, mpid=1, session=<s>, method=PLAIN, mpid=77, session=<real>";
        assert_eq!(parse(line), Parsed::Suspect);
        let line =
            b"pop3-login: Login: user=<x, rip=10.0.0.1, lip=10.0.0.2>, method=PLAIN, mpid=77";
        assert_eq!(parse(line), Parsed::Suspect);
    }

    #[test]
    fn unexpected_shapes_are_suspect() {
        for l in [
            &b"pop3-login: Login: alice from 10.0.0.1"[..],
            b"pop3-login: Login: user=<a>, method=PLAIN, rip=10.0.0.1",
            b"pop3-login: Login: user=<a>, method=PLAIN, rip=10.0.0.1, lip=x",
            b"pop3-login: Login: user=<a>, method=PLAIN, rip=10.0.0.1 , lip=10.0.0.2",
            b"pop3-login: Login: user=<a>, rip=10.0.0.1, lip=10.0.0.2",
            b"pop3-login: Login: user=<a>, method=PLAIN, rip=10.0.0.1, lip=10.0.0.2, mpid=1, orig_user=<x>",
            b"pop3-login: Login: user=<a>, method=PLAIN, rip=10.0.0.1, lip=10.0.0.2,",
        ] {
            assert_eq!(parse(l), Parsed::Suspect, "{}", String::from_utf8_lossy(l));
        }
    }
}
