//! Dovecot's authentication policy requests (HTTP POST, JSON body) judged as plain data:
//! what to answer and whether a request reports a successful login.
//!
//! Dovecot asks `?command=allow` before (and after) authenticating and waits for the reply;
//! with `auth_policy_report_after_auth = yes` it also sends `?command=report` with
//! `"success"` and `"policy_reject"` added. The reply to `allow` is `{"status":N,"msg":"..."}`:
//! a negative status refuses the login, a positive one delays it, 0 lets it go on. relaylease
//! only listens: every `allow` gets status 0, whatever its body, so a login is never slowed or
//! refused here. Only a `report` of a success with a valid `remote` address grants anything.

use std::net::IpAddr;

use crate::lease::parse_ip;

/// The largest body read. Dovecot 2.3 sends about 170 bytes with its default attributes.
pub const MAX_BODY: usize = 64 * 1024;

/// The neutral reply: go on with the login as if we were not here.
pub const NEUTRAL: &str = r#"{"status":0,"msg":""}"#;

/// The header Dovecot sends when `auth_policy_server_api_header` has no `:`.
pub const DEFAULT_API_HEADER: &str = "X-API-Key";

/// The `auth_policy_server_api_header` a request must carry: `Name: value`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiHeader {
    pub name: String,
    pub value: String,
}

impl std::fmt::Debug for ApiHeader {
    /// Never the value: it is a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiHeader({}: <secret>)", self.name)
    }
}

impl ApiHeader {
    /// Read the setting as Dovecot does: `Name: value`, or a bare value sent as `X-API-Key`.
    /// None when there is no value.
    pub fn parse(text: &str) -> Option<ApiHeader> {
        let text = text.trim();
        let (name, value) = match text.split_once(':') {
            Some((n, v)) => (n.trim(), v.trim()),
            None => (DEFAULT_API_HEADER, text),
        };
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        let visible = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b) || b == b'\t');
        (token(name) && !value.is_empty() && visible(value)).then(|| ApiHeader {
            name: name.to_string(),
            value: value.to_string(),
        })
    }

    /// Whether one received value is ours, comparing every byte whatever differs first.
    fn matches(&self, got: &[u8]) -> bool {
        let got = got.trim_ascii();
        let want = self.value.as_bytes();
        let mut diff = (got.len() != want.len()) as u8;
        for (i, w) in want.iter().enumerate() {
            diff |= w ^ got.get(i).copied().unwrap_or(0);
        }
        diff == 0
    }
}

/// What Dovecot asked, once the request line and headers passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `allow` (before or after authentication): answered neutrally, body unread.
    Allow,
    /// `report`: the body says how a login went.
    Report,
    /// A command this version does not know: answered neutrally, nothing granted.
    Other,
}

/// A refusal of the request itself, as an HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    TooLarge,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::BadRequest => 400,
            Refusal::Unauthorized => 401,
            Refusal::Forbidden => 403,
            Refusal::NotFound => 404,
            Refusal::MethodNotAllowed => 405,
            Refusal::TooLarge => 413,
        }
    }

    /// Why, for the log and the reply body.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::BadRequest => "not a Dovecot policy request",
            Refusal::Unauthorized => "no API header (auth_policy_server_api_header)",
            Refusal::Forbidden => "wrong API header value",
            Refusal::NotFound => "not found: Dovecot's policy requests go to /",
            Refusal::MethodNotAllowed => "only POST",
            Refusal::TooLarge => "body too large",
        }
    }
}

/// The login a report tells of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyLogin {
    pub ip: IpAddr,
    /// `login` (the name the client gave), when not empty.
    pub user: Option<String>,
    /// `protocol` (pop3, imap, ...), when given.
    pub service: Option<String>,
}

/// The answer to one request, and the login it reports, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub status: u16,
    pub body: String,
    pub login: Option<PolicyLogin>,
    /// Why a report granted nothing (for debug logs), or why a request was refused.
    pub note: Option<&'static str>,
}

impl Decision {
    fn neutral(note: Option<&'static str>) -> Decision {
        Decision {
            status: 200,
            body: NEUTRAL.to_string(),
            login: None,
            note,
        }
    }

    pub fn refused(r: Refusal) -> Decision {
        Decision {
            status: r.status(),
            body: format!(r#"{{"error":"{}"}}"#, r.reason()),
            login: None,
            note: Some(r.reason()),
        }
    }
}

/// The `command` of the query string: the first `command=` parameter, after any of an
/// administrator's own (a server URL ending in `&`).
fn command(path_and_query: &str) -> Option<&str> {
    let (_, query) = path_and_query.split_once('?')?;
    query.split('&').find_map(|kv| kv.strip_prefix("command="))
}

/// Judge the request line and headers, before any of the body is read: a refusal, or the
/// command to carry out. `content_length` is the declared length, if any; `headers` are
/// (name, value) pairs, names in any case.
pub fn check_head<'h>(
    method: &str,
    path_and_query: &str,
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    content_length: Option<u64>,
    secret: Option<&ApiHeader>,
) -> Result<Command, Refusal> {
    let path = path_and_query.split('?').next().unwrap_or_default();
    if path != "/" {
        return Err(Refusal::NotFound);
    }
    if method != "POST" {
        return Err(Refusal::MethodNotAllowed);
    }
    if let Some(want) = secret {
        let mut seen = false;
        let mut good = false;
        for (name, value) in headers {
            if name.eq_ignore_ascii_case(&want.name) {
                seen = true;
                good |= want.matches(value);
            }
        }
        match (seen, good) {
            (false, _) => return Err(Refusal::Unauthorized),
            (true, false) => return Err(Refusal::Forbidden),
            (true, true) => {}
        }
    }
    if content_length.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(Refusal::TooLarge);
    }
    match command(path_and_query) {
        Some("allow") => Ok(Command::Allow),
        Some("report") => Ok(Command::Report),
        Some(_) => Ok(Command::Other),
        None => Err(Refusal::BadRequest),
    }
}

/// Judge the body of a request whose head passed [`check_head`].
pub fn decide_body(cmd: Command, body: &[u8]) -> Decision {
    if body.len() > MAX_BODY {
        return Decision::refused(Refusal::TooLarge);
    }
    match cmd {
        Command::Allow => Decision::neutral(None),
        Command::Other => Decision::neutral(Some("unknown command")),
        Command::Report => {
            let Ok(serde_json::Value::Object(fields)) =
                serde_json::from_slice::<serde_json::Value>(body)
            else {
                return Decision::refused(Refusal::BadRequest);
            };
            let text = |k: &str| fields.get(k).and_then(|v| v.as_str());
            let flag = |k: &str| fields.get(k).and_then(|v| v.as_bool());
            if flag("success") != Some(true) {
                return Decision::neutral(Some("not a successful login"));
            }
            if flag("policy_reject") == Some(true) {
                return Decision::neutral(Some("refused by policy"));
            }
            let Some(ip) = text("remote").and_then(|r| parse_ip(r).ok()) else {
                return Decision::neutral(Some("no valid remote address"));
            };
            let nonempty = |k: &str| text(k).filter(|s| !s.is_empty()).map(str::to_string);
            Decision {
                login: Some(PolicyLogin {
                    ip,
                    user: nonempty("login"),
                    service: nonempty("protocol"),
                }),
                ..Decision::neutral(None)
            }
        }
    }
}

/// The whole request at once: [`check_head`], then [`decide_body`].
pub fn decide<'h>(
    method: &str,
    path_and_query: &str,
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    body: &[u8],
    secret: Option<&ApiHeader>,
) -> Decision {
    match check_head(
        method,
        path_and_query,
        headers,
        Some(body.len() as u64),
        secret,
    ) {
        Ok(cmd) => decide_body(cmd, body),
        Err(r) => Decision::refused(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report as Dovecot 2.3.19 sends it with its default attributes (hash shortened).
    const SUCCESS: &str = r#"{"device_id":"","login":"alice","protocol":"pop3","pwhash":"0520","remote":"127.0.0.61","session_id":"8v7zU5hhbZd/AAA9","success":true,"policy_reject":false,"tls":false}"#;

    fn secret() -> ApiHeader {
        ApiHeader::parse("X-Relaylease-Secret: s3cr3t").unwrap()
    }

    fn ask(query: &str, body: &str) -> Decision {
        let s = secret();
        let headers = [("x-relaylease-secret", &b"s3cr3t"[..])];
        decide("POST", query, headers, body.as_bytes(), Some(&s))
    }

    fn login(ip: &str, user: Option<&str>, service: Option<&str>) -> Option<PolicyLogin> {
        Some(PolicyLogin {
            ip: ip.parse().unwrap(),
            user: user.map(str::to_string),
            service: service.map(str::to_string),
        })
    }

    #[test]
    fn a_successful_report_is_a_login_and_gets_the_neutral_reply() {
        let d = ask("/?command=report", SUCCESS);
        assert_eq!((d.status, d.body.as_str()), (200, NEUTRAL));
        assert_eq!(d.login, login("127.0.0.61", Some("alice"), Some("pop3")));
        // After an administrator's own parameters (a URL ending in `&`), IPv6, no login name.
        let d = ask(
            "/?site=a&command=report",
            r#"{"remote":"::ffff:192.0.2.9","login":"","success":true}"#,
        );
        assert_eq!(d.login, login("192.0.2.9", None, None));
        let d = ask(
            "/?command=report",
            r#"{"remote":"2001:db8::5","success":true}"#,
        );
        assert_eq!(d.login, login("2001:db8::5", None, None));
    }

    #[test]
    fn allow_is_always_neutral_and_grants_nothing() {
        for body in [SUCCESS, "", "not json", r#"{"status":-1}"#] {
            let d = ask("/?command=allow", body);
            assert_eq!((d.status, d.body.as_str(), &d.login), (200, NEUTRAL, &None));
        }
    }

    #[test]
    fn failures_refusals_and_reports_without_an_address_grant_nothing() {
        for body in [
            SUCCESS.replace(r#""success":true"#, r#""success":false"#),
            SUCCESS.replace(r#""success":true"#, r#""success":"true""#),
            SUCCESS.replace(r#""success":true,"#, ""),
            SUCCESS.replace(r#""policy_reject":false"#, r#""policy_reject":true"#),
            SUCCESS.replace("127.0.0.61", ""),
            SUCCESS.replace("127.0.0.61", "mail.example.org"),
            SUCCESS.replace("127.0.0.61", "127.0.0.300"),
            SUCCESS.replace(r#""remote":"127.0.0.61","#, ""),
            SUCCESS.replace(r#""127.0.0.61""#, "2130706493"),
        ] {
            let d = ask("/?command=report", &body);
            assert_eq!(
                (d.status, d.body.as_str(), &d.login),
                (200, NEUTRAL, &None),
                "{body}"
            );
        }
        let d = ask("/?command=forget", SUCCESS);
        assert_eq!((d.status, &d.login), (200, &None), "an unknown command");
    }

    #[test]
    fn malformed_requests_get_http_errors_and_grant_nothing() {
        let s = secret();
        let good = [("X-Relaylease-Secret", &b" s3cr3t "[..])];
        type Headers<'a> = &'a [(&'a str, &'a [u8])];
        let cases: [(&str, &str, Headers, &str, u16); 9] = [
            ("POST", "/?command=report", &good, "{not json", 400),
            ("POST", "/?command=report", &good, r#"["remote"]"#, 400),
            ("POST", "/?command=report", &good, "\u{0}\u{ff}", 400),
            ("POST", "/", &good, SUCCESS, 400),
            ("POST", "/?command=report", &[], SUCCESS, 401),
            (
                "POST",
                "/?command=report",
                &[("x-relaylease-secret", b"s3cr3")],
                SUCCESS,
                403,
            ),
            (
                "POST",
                "/?command=report",
                &[("X-API-Key", b"s3cr3t")],
                SUCCESS,
                401,
            ),
            ("GET", "/?command=report", &good, SUCCESS, 405),
            ("POST", "/policy?command=report", &good, SUCCESS, 404),
        ];
        for (method, query, headers, body, status) in cases {
            let d = decide(
                method,
                query,
                headers.iter().copied(),
                body.as_bytes(),
                Some(&s),
            );
            assert_eq!(
                (d.status, &d.login),
                (status, &None),
                "{method} {query} {body}"
            );
            assert!(d.body.contains(r#""error""#), "{}", d.body);
        }
        // Any one of several copies of the header may be the right one; none secret, none asked.
        let twice = [
            ("x-relaylease-secret", &b"no"[..]),
            ("x-relaylease-secret", b"s3cr3t"),
        ];
        let d = decide(
            "POST",
            "/?command=report",
            twice,
            SUCCESS.as_bytes(),
            Some(&s),
        );
        assert!(d.login.is_some());
        let d = decide("POST", "/?command=report", [], SUCCESS.as_bytes(), None);
        assert!(d.login.is_some());
    }

    #[test]
    fn a_body_over_the_limit_is_refused_from_its_declared_length() {
        let s = secret();
        let headers = [("x-relaylease-secret", &b"s3cr3t"[..])];
        let too_long = Some(MAX_BODY as u64 + 1);
        let head = check_head("POST", "/?command=report", headers, too_long, Some(&s));
        assert_eq!(head, Err(Refusal::TooLarge));
        // The secret is checked first: a stranger learns nothing about the limit.
        let head = check_head("POST", "/?command=report", [], too_long, Some(&s));
        assert_eq!(head, Err(Refusal::Unauthorized));
        let big = format!(
            r#"{{"remote":"192.0.2.1","success":true,"x":"{}"}}"#,
            "a".repeat(MAX_BODY)
        );
        assert_eq!(ask("/?command=report", &big).status, 413);
    }

    #[test]
    fn the_api_header_setting_is_read_as_dovecot_reads_it() {
        assert_eq!(
            ApiHeader::parse("  Authorization: Basic YWxpY2U6c2VjcmV0\n"),
            Some(ApiHeader {
                name: "Authorization".into(),
                value: "Basic YWxpY2U6c2VjcmV0".into()
            })
        );
        assert_eq!(
            ApiHeader::parse("just-a-key\n").map(|h| h.name),
            Some(DEFAULT_API_HEADER.to_string())
        );
        for bad in ["", "\n", "X-Key:", "Bad Name: v", "X-Key: a\u{1}b"] {
            assert_eq!(ApiHeader::parse(bad), None, "{bad:?}");
        }
        assert!(!format!("{:?}", secret()).contains("s3cr3t"));
    }
}
