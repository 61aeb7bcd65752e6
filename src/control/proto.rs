//! The control protocol, version 1 (pure): one JSON object per line each way.
//!
//! Request: `{"v":1,"op":"check","addr":"192.0.2.7"}`. Operations: `login` (addr, user),
//! `add` (addr, for), `del` (addr), `check` (addr), `relay` (addr: a check that counts as a
//! use), `list`, `flush`, `stats`, `window` (optional `set`), `usage` (optional `token`),
//! `forget` (user). `v` may be left out and means 1; any other version is refused.
//!
//! Reply: `{"v":1,"ok":true,"result":"check",...}` or
//! `{"v":1,"ok":false,"result":"error","error":"invalid address 'x'"}`.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::one_line;
use crate::lease::{Lease, Millis};
use crate::store::StatsSnapshot;

pub const VERSION: u32 = 1;

/// Longest request or reply line accepted, newline included.
pub const MAX_LINE: usize = 64 * 1024;

fn version_one() -> u32 {
    VERSION
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Op {
    Login {
        addr: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
    Add {
        addr: String,
        #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
        duration: Option<String>,
    },
    Del {
        addr: String,
    },
    Check {
        addr: String,
    },
    /// smtp-wrap's question: a check that counts as a use of the lease when it says yes,
    /// answered with [`Reply::Check`] (and `remote_info` with `--mark-header`).
    Relay {
        addr: String,
    },
    /// The usage table, or (with `token`) the record a `--mark-header` token stands for.
    Usage {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// Remove a user's (or an address's) usage record.
    Forget {
        user: String,
    },
    List,
    Flush,
    Stats,
    /// Show the expiry window, or set it (for logins from now on) with `set`.
    Window {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        set: Option<String>,
    },
}

impl Op {
    /// Operations that change the table need a trusted peer.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Op::Login { .. } | Op::Add { .. } | Op::Del { .. } | Op::Flush | Op::Forget { .. }
        ) || matches!(self, Op::Window { set: Some(_) })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Op::Login { .. } => "login",
            Op::Add { .. } => "add",
            Op::Del { .. } => "del",
            Op::Check { .. } => "check",
            Op::Relay { .. } => "relay",
            Op::Usage { .. } => "usage",
            Op::Forget { .. } => "forget",
            Op::List => "list",
            Op::Flush => "flush",
            Op::Stats => "stats",
            Op::Window { .. } => "window",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    #[serde(default = "version_one")]
    pub v: u32,
    #[serde(flatten)]
    pub op: Op,
}

impl Request {
    pub fn new(op: Op) -> Self {
        Request { v: VERSION, op }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Reply {
    Error {
        error: String,
    },
    Login {
        /// `granted`, `renewed`, `static` (always allowed by --allow) or `refused`.
        outcome: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lease: Option<Lease>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Set when the shared store (Redis, `--store-replicas` replicas) has not confirmed
        /// the login yet: it waits in this host's queue, and this says why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queued: Option<String>,
    },
    Added {
        lease: Lease,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queued: Option<String>,
    },
    Deleted {
        #[serde(default)]
        lease: Option<Lease>,
    },
    Check {
        addr: String,
        allowed: bool,
        now: Millis,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lease: Option<Lease>,
        #[serde(rename = "static", default, skip_serializing_if = "Option::is_none")]
        static_net: Option<IpNet>,
        /// For smtp-wrap with `--mark-header`: the user or token for `TCPREMOTEINFO`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remote_info: Option<String>,
    },
    Usage {
        now: Millis,
        rows: Vec<crate::usage::table::Row>,
    },
    Forgotten {
        user: String,
        records: usize,
    },
    List {
        now: Millis,
        leases: Vec<Lease>,
    },
    Flushed {
        count: usize,
    },
    Stats {
        stats: StatsSnapshot,
    },
    Window {
        /// The window in milliseconds.
        window_ms: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub v: u32,
    pub ok: bool,
    #[serde(flatten)]
    pub reply: Reply,
}

impl From<Reply> for Response {
    fn from(reply: Reply) -> Self {
        Response {
            v: VERSION,
            ok: !matches!(reply, Reply::Error { .. }),
            reply,
        }
    }
}

impl Response {
    pub fn error(msg: impl Into<String>) -> Self {
        Reply::Error { error: msg.into() }.into()
    }
}

/// Exim's `${readsocket}` sends one plain line and reads the reply until the connection
/// closes: a line `CHECK ADDR` (not JSON) asks whether ADDR may relay and is answered with
/// [`plain_reply`], after which the daemon closes the connection. Returns the address as
/// given; one that does not parse is answered `NO`.
pub fn plain_check(line: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(line).ok()?;
    let rest = text.trim_end_matches(['\r', '\n']).strip_prefix("CHECK ")?;
    Some(rest.trim())
}

/// `OK` or `NO`, without a newline: the closing connection ends the reply, and Exim compares
/// what it read as it is.
pub fn plain_reply(allowed: bool) -> &'static [u8] {
    if allowed { b"OK" } else { b"NO" }
}

/// Parse one request line (without or with its newline). The error is a one-line reason.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(line).map_err(|_| "request is not UTF-8".to_string())?;
    let text = text.trim();
    if text.is_empty() {
        return Err("empty request".into());
    }
    let req: Request =
        // serde's message quotes the offending value, and a JSON string can hold any
        // control character: escaped, the reason stays one line in the reply and the log.
        serde_json::from_str(text).map_err(|e| format!("bad request: {}", one_line(&e.to_string())))?;
    if req.v != VERSION {
        return Err(format!(
            "unsupported protocol version {} (this daemon speaks {VERSION})",
            req.v
        ));
    }
    Ok(req)
}

/// One line of JSON with its newline.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut v = serde_json::to_vec(msg).unwrap_or_else(|e| {
        serde_json::to_vec(&Response::error(format!("cannot encode reply: {e}")))
            .unwrap_or_default()
    });
    v.push(b'\n');
    v
}

pub fn parse_response(line: &[u8]) -> Result<Response, String> {
    serde_json::from_slice(line).map_err(|e| format!("unreadable reply from the daemon: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_check_lines_for_exims_readsocket() {
        assert_eq!(plain_check(b"CHECK 192.0.2.7\n"), Some("192.0.2.7"));
        assert_eq!(plain_check(b"CHECK 2001:db8::1\r\n"), Some("2001:db8::1"));
        assert_eq!(plain_check(b"CHECK \n"), Some(""));
        for other in [
            &b"check 192.0.2.7"[..],
            b"{\"op\":\"check\"}",
            b"CHECK",
            b"\xffCHECK x",
        ] {
            assert_eq!(
                plain_check(other),
                None,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        assert_eq!(plain_reply(true), b"OK");
        assert_eq!(plain_reply(false), b"NO");
    }

    #[test]
    fn requests_parse_with_and_without_version() {
        let r = parse_request(br#"{"v":1,"op":"check","addr":"192.0.2.7"}"#).unwrap();
        assert_eq!(
            r.op,
            Op::Check {
                addr: "192.0.2.7".into()
            }
        );
        let r = parse_request(b"{\"op\":\"add\",\"addr\":\"::1\",\"for\":\"5m\"}\n").unwrap();
        assert_eq!(
            r.op,
            Op::Add {
                addr: "::1".into(),
                duration: Some("5m".into())
            }
        );
        assert!(r.op.writes());
        assert_eq!(parse_request(br#"{"op":"list"}"#).unwrap().op, Op::List);
    }

    #[test]
    fn round_trip() {
        for op in [
            Op::Login {
                addr: "192.0.2.1".into(),
                user: Some("bob".into()),
            },
            Op::Del {
                addr: "2001:db8::/64".into(),
            },
            Op::Flush,
            Op::Stats,
            Op::Relay {
                addr: "192.0.2.7".into(),
            },
            Op::Usage { token: None },
            Op::Usage {
                token: Some("3f9c0d2a41b7e5c86f10".into()),
            },
            Op::Forget {
                user: "alice".into(),
            },
        ] {
            let line = encode(&Request::new(op.clone()));
            assert_eq!(*line.last().unwrap(), b'\n');
            assert_eq!(parse_request(&line).unwrap().op, op);
        }
        let resp: Response = Reply::Flushed { count: 3 }.into();
        assert_eq!(parse_response(&encode(&resp)).unwrap(), resp);
        // Only changes need a trusted peer: forgetting a record is one, reading is not.
        assert!(Op::Forget { user: "a".into() }.writes());
        assert!(!Op::Usage { token: None }.writes());
        assert!(
            !Op::Relay {
                addr: "192.0.2.7".into()
            }
            .writes()
        );
        // A reply from a daemon that knows nothing of TCPREMOTEINFO still reads.
        let old =
            br#"{"v":1,"ok":true,"result":"check","addr":"192.0.2.7","allowed":true,"now":1}"#;
        let Reply::Check { remote_info, .. } = parse_response(old).unwrap().reply else {
            panic!("a check reply");
        };
        assert_eq!(remote_info, None);
        let text = String::from_utf8(encode(&Response::error("nope"))).unwrap();
        assert_eq!(
            text,
            "{\"v\":1,\"ok\":false,\"result\":\"error\",\"error\":\"nope\"}\n"
        );
    }

    #[test]
    fn bad_requests_are_one_line_reasons() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty request"),
            (b"hello", "bad request"),
            (b"\xff\xfe", "not UTF-8"),
            (br#"{"op":"explode"}"#, "unknown variant `explode`"),
            (br#"{"op":"check"}"#, "missing field `addr`"),
            (br#"{"v":2,"op":"list"}"#, "unsupported protocol version 2"),
            (br#"{"op":"check","addr":5}"#, "invalid type"),
            (b"[1,2,3]", "bad request"),
        ];
        for (input, want) in cases {
            let e = parse_request(input).unwrap_err();
            assert!(e.contains(want), "{input:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    /// Found by the control_request fuzz target: serde quotes the offending value, and a JSON
    /// string may hold any control character, so an unescaped reason broke onto a second line
    /// (of the daemon's log, too).
    #[test]
    fn a_quoted_value_never_breaks_the_reason_onto_two_lines() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{"op":"flr\r\ndv"}"#, r"unknown variant `flr\r\ndv`"),
            (
                br#"{"v":"1\n2","op":"list"}"#,
                r#"invalid type: string "1\n2""#,
            ),
            (br#"{"op":"x\u0000y"}"#, r"unknown variant `x\u{0}y`"),
        ];
        for (input, want) in cases {
            let e = parse_request(input).unwrap_err();
            assert!(e.contains(want), "{e}");
            assert!(!e.chars().any(char::is_control), "{e:?}");
        }
    }
}
