//! Marking relayed mail (pure): the `--mark-header` value, the opaque token that stands for
//! the user when `--mark-token-secret` is set, and qmail's `TCPREMOTEINFO`.

use ring::hmac;

use super::table::Subject;
use crate::lease::Millis;

/// What a relayed message's header says it was: the one method relaylease grants by.
pub const METHOD: &str = "pop-before-smtp";

/// Hex digits in a token: 80 bits of HMAC-SHA256, too many to guess, short in a header.
const TOKEN_HEX: usize = 20;

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET: usize = 16;

/// `--mark-token-secret`: the key of the tokens. Never printed.
#[derive(Clone)]
pub struct Secret(hmac::Key);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    /// The file's text without its final newline; `None` when shorter than [`MIN_SECRET`].
    pub fn from_file_text(text: &[u8]) -> Option<Secret> {
        let t = text.strip_suffix(b"\n").unwrap_or(text);
        let t = t.strip_suffix(b"\r").unwrap_or(t);
        (t.len() >= MIN_SECRET).then(|| Secret(hmac::Key::new(hmac::HMAC_SHA256, t)))
    }

    /// The token standing for `subject`: the same for every message of one user, and
    /// meaningless without the secret. `usage --token` finds its user by computing every
    /// user's token, so a forgotten user's token leads nowhere.
    pub fn token(&self, subject: &Subject) -> String {
        let tag = hmac::sign(&self.0, &subject.key());
        let mut out = String::with_capacity(TOKEN_HEX);
        for b in &tag.as_ref()[..TOKEN_HEX / 2] {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

/// Is `name` a header field name Postfix can prepend (RFC 5322: printable ASCII, no colon)?
pub fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 76
        && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// A user name as a header or `TCPREMOTEINFO` may carry it: characters outside a safe ASCII
/// set (spaces, `;`, quotes, control characters, non-ASCII) become `?`.
pub fn safe_text(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._@+-=!#$%&*/^`{|}~".contains(c) {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Who the mark names: the token with a secret, else the user; nobody for a lease of a
/// login without a user name and no secret.
pub fn who(
    secret: Option<&Secret>,
    user: Option<&str>,
    addr_key: &str,
) -> Option<(&'static str, String)> {
    match (secret, user) {
        (Some(s), Some(u)) => Some(("token", s.token(&Subject::User(u.to_string())))),
        (Some(s), None) => Some(("token", s.token(&Subject::Addr(addr_key.to_string())))),
        (None, Some(u)) => Some(("user", safe_text(u))),
        (None, None) => None,
    }
}

/// The header's value: `pop-before-smtp; user=alice; login=2026-01-02T03:04:05Z`.
pub fn header_value(who: Option<(&str, String)>, login_at: Millis) -> String {
    let mut v = String::from(METHOD);
    if let Some((what, name)) = who {
        v.push_str("; ");
        v.push_str(what);
        v.push('=');
        v.push_str(&name);
    }
    v.push_str("; login=");
    v.push_str(&super::table::utc(Some(login_at)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_per_subject_and_depend_on_the_secret() {
        assert!(Secret::from_file_text(b"short\n").is_none());
        let s = Secret::from_file_text(b"0123456789abcdef0123\n").unwrap();
        let same = Secret::from_file_text(b"0123456789abcdef0123").unwrap();
        let other = Secret::from_file_text(b"another secret of enough bytes").unwrap();
        let alice = Subject::User("alice".into());
        let t = s.token(&alice);
        assert_eq!(t.len(), TOKEN_HEX);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            t,
            same.token(&alice),
            "the trailing newline is not part of the secret"
        );
        assert_ne!(t, other.token(&alice));
        assert_ne!(t, s.token(&Subject::User("bob".into())));
        assert_ne!(t, s.token(&Subject::Addr("alice".into())));
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }

    #[test]
    fn header_values_name_the_user_or_the_token_and_stay_one_safe_line() {
        let at = 1_790_000_000_000;
        assert_eq!(
            header_value(who(None, Some("alice@example.net"), "192.0.2.7"), at),
            "pop-before-smtp; user=alice@example.net; login=2026-09-21T14:13:20Z"
        );
        assert_eq!(
            header_value(who(None, None, "192.0.2.7"), at),
            "pop-before-smtp; login=2026-09-21T14:13:20Z"
        );
        let s = Secret::from_file_text(b"0123456789abcdef0123").unwrap();
        let v = header_value(who(Some(&s), Some("alice"), "192.0.2.7"), at);
        assert_eq!(
            v,
            format!(
                "pop-before-smtp; token={}; login=2026-09-21T14:13:20Z",
                s.token(&Subject::User("alice".into()))
            )
        );
        assert!(!v.contains("alice"));
        assert_eq!(safe_text("a b;\"c\"\r\nü"), "a?b??c????");
        assert_eq!(safe_text("j.doe+x@example.net"), "j.doe+x@example.net");
    }

    #[test]
    fn header_names() {
        for good in ["X-Relayed-By", "X-PopBeforeSMTP", "x"] {
            assert!(valid_header_name(good), "{good}");
        }
        for bad in ["", "X Relayed", "X:Y", "X-Ü", "X\n", &"x".repeat(77)] {
            assert!(!valid_header_name(bad), "{bad:?}");
        }
    }
}
