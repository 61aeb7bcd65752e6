//! Log-line parsers: one line of a POP3/IMAP server's log in, a login (or not) out.
//!
//! # Forgery
//! poprelayd was exploited (CVE-2001-1075) because it searched whole lines for a login
//! message: an SMTP client put one in its `MAIL FROM`, the MTA logged it, and relay was
//! granted. So every parser here
//! - first splits off the syslog envelope and looks at the program tag: only a POP3/IMAP
//!   server's own tag is considered, so anything Postfix (or any other program) logs is
//!   ignored however it reads;
//! - then requires the server's login message at the *start* of the message;
//! - and reads the address from its fixed place among the server's own fields, which
//!   come after the user name, never from anywhere a client-chosen user name can reach.
//!   Where the address follows the user name, the parser works from the right and checks
//!   that everything after the address is what that server writes there.
//!
//! A line that starts like a login but does not have the expected shape grants nothing
//! and comes out as [`Event::LooksLikeLogin`], so the daemon can warn about it.
//!
//! # Layout
//! `syslog` splits the envelope; one module per server format reads the message;
//! [`LineParser`] picks the modules by program tag and joins lines for the two formats
//! that log the address and the login on different lines (popa3d, Mailutils `acl log`).

mod courier;
mod cyrus;
mod dovecot;
mod mailutils;
mod popa3d;
mod qpopper;
mod solid;
mod state;
mod syslog;
mod text;
mod uw;
mod vchkpw;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod forgery_tests;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use regex::Regex;

use crate::error::Error;
use crate::lease::{Millis, parse_ip};

pub use syslog::resolve_stamp;

/// The RFC 3164 stamp a line starts with (local time, no zone), if it has one; a stamp that
/// carries its zone gives `None`.
pub fn local_stamp(line: &[u8]) -> Option<Stamp> {
    match syslog::split_stamp(line)? {
        (s @ syslog::RawStamp::Bsd(_), _) => s.parse(),
        _ => None,
    }
}

use state::Bounded;
use syslog::{Body, RawStamp};

/// The log formats relaylease understands; `--format NAME` pins one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Dovecot,
    Courier,
    Cyrus,
    Uw,
    Qpopper,
    Mailutils,
    Popa3d,
    SolidPop3d,
    Vchkpw,
    /// Lines matched by a `--login-pattern` regex.
    Custom,
}

impl Format {
    pub const ALL: [Format; 10] = [
        Format::Dovecot,
        Format::Courier,
        Format::Cyrus,
        Format::Uw,
        Format::Qpopper,
        Format::Mailutils,
        Format::Popa3d,
        Format::SolidPop3d,
        Format::Vchkpw,
        Format::Custom,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Dovecot => "dovecot",
            Format::Courier => "courier",
            Format::Cyrus => "cyrus",
            Format::Uw => "uw-imap",
            Format::Qpopper => "qpopper",
            Format::Mailutils => "mailutils",
            Format::Popa3d => "popa3d",
            Format::SolidPop3d => "solid-pop3d",
            Format::Vchkpw => "vchkpw",
            Format::Custom => "custom",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Format::ALL
            .iter()
            .copied()
            .find(|f| f.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let valid: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
                Error::invalid(format!(
                    "unknown log format '{s}' (valid: {})",
                    valid.join(", ")
                ))
            })
    }
}

/// Which protocol the client logged in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Pop3,
    Imap,
    Unknown,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Pop3 => "pop3",
            Service::Imap => "imap",
            Service::Unknown => "unknown",
        }
    }

    /// From a program or service name such as `imapd`, `cyrus/pop3s` or `vchkpw-imap`.
    fn from_program(name: &[u8]) -> Service {
        if text::find(name, b"pop").is_some() {
            Service::Pop3
        } else if text::find(name, b"imap").is_some() {
            Service::Imap
        } else {
            Service::Unknown
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// When a line was written, as far as the line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// RFC 3164 `Nov 22 03:09:57`: local time, no year, no zone; see [`resolve_stamp`].
    Syslog {
        month: u8,
        day: u8,
        hour: u8,
        min: u8,
        sec: u8,
    },
    /// RFC 5424 / ISO 8601 stamps carry their zone and are resolved while parsing.
    Unix(Millis),
}

/// A successful login found in a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginEvent {
    /// The client's address (IPv4-mapped addresses as IPv4). `None` when the server did not
    /// log one (Mailutils without `acl log`, popa3d without its `connect from` line): such a
    /// login is reported but must grant nothing.
    pub ip: Option<IpAddr>,
    pub user: Option<String>,
    pub service: Service,
    pub format: Format,
    pub stamp: Option<Stamp>,
    /// The server's name for this login's session, where its end is logged too.
    pub session: Option<SessionKey>,
}

/// Names one session of a POP3/IMAP server (Dovecot's mail pid and session id, Courier's
/// client address and port, Cyrus' process), so that the line logging its end can be
/// paired with its login.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey(Box<str>);

impl SessionKey {
    /// `dovecot:dovecot/8176/CHtby9Rgd6N/AAAV`, `cyrus:cyrus/imap[9062]`: one allocation,
    /// since every Dovecot, Courier and Cyrus login and logout line makes one.
    fn new(format: Format, tag: &[u8], conn: &Conn<'_>, pid: Option<u32>) -> Option<SessionKey> {
        use std::fmt::Write as _;
        if *conn == Conn::None {
            return None;
        }
        let text = |b| String::from_utf8_lossy(b);
        let mut s = String::with_capacity(format.name().len() + tag.len() + 32);
        s.push_str(format.name());
        s.push(':');
        s.push_str(&text(tag));
        match conn {
            Conn::None => {}
            Conn::Pid => {
                let _ = write!(s, "[{}]", pid?);
            }
            Conn::Pair(a, b) => {
                let _ = write!(s, "/{}/{}", text(a), text(b));
            }
        }
        Some(SessionKey(s.into_boxed_str()))
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What one log line means to relaylease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Login(LoginEvent),
    /// The server logged a failed authentication.
    Failure(Format),
    /// The line starts like a known server's login (or matches another format than the
    /// pinned one) but could not be read safely. Nothing is granted; worth a warning.
    LooksLikeLogin,
    /// A session whose login carried [`LoginEvent::session`] is over.
    Logout {
        session: SessionKey,
        stamp: Option<Stamp>,
    },
    Nothing,
}

/// What a format module found in one message; [`LineParser`] turns it into an [`Event`],
/// joining it with earlier lines where needed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed<'a> {
    Nothing,
    Login {
        addr: Addr<'a>,
        user: Option<&'a [u8]>,
        service: Service,
        conn: Conn<'a>,
    },
    /// The session named by `Conn` ended (a logout, a dropped connection).
    Logout(Conn<'a>),
    Failure,
    /// Starts like a login, but the fields are not where that server puts them.
    Suspect,
    /// The client address of this pid's connection (tcpd `connect from`).
    Connect(IpAddr),
    /// This pid's connection is over; forget its address.
    End,
    /// A Mailutils master process announced the address of a session id.
    Session {
        sid: &'a [u8],
        ip: IpAddr,
        service: Service,
    },
    /// That Mailutils session is over.
    SessionEnd {
        sid: &'a [u8],
        service: Service,
    },
}

/// How the server names a login's session in the line that logs its end.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Conn<'a> {
    /// Not logged, or not by this server.
    None,
    /// Two fields of the line (Dovecot: mail pid and session id; Courier: address and port).
    Pair(&'a [u8], &'a [u8]),
    /// The syslog pid of the line (Cyrus, whose processes serve one client at a time).
    Pid,
}

/// Where a login's address is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Addr<'a> {
    Here(IpAddr),
    /// On an earlier `connect from` line of the same pid.
    Pid,
    /// On an earlier master-process line naming this session id.
    Session(&'a [u8]),
    /// Not in the log at all.
    Absent,
}

/// A Mailutils session id, stored inline so that looking one up does not allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Sid {
    len: u8,
    bytes: [u8; mailutils::MAX_SID],
}

impl Sid {
    fn new(b: &[u8]) -> Option<Sid> {
        if b.len() > mailutils::MAX_SID {
            return None;
        }
        let mut bytes = [0; mailutils::MAX_SID];
        bytes[..b.len()].copy_from_slice(b);
        Some(Sid {
            len: b.len() as u8,
            bytes,
        })
    }
}

/// Reads a log line by line. It keeps a little state, because popa3d and Mailutils with
/// `acl log` write the client's address on an earlier line than the login; that state is
/// capped (4096 entries per map) so a hostile log cannot grow it without bound.
#[derive(Debug)]
pub struct LineParser {
    pinned: Option<Format>,
    custom: Vec<Regex>,
    pids: Bounded<(Format, u32), IpAddr>,
    sessions: Bounded<(Service, Sid), (IpAddr, Option<u32>)>,
}

impl LineParser {
    /// `pinned`: only that format's parser runs (custom patterns always run too).
    /// `custom`: `--login-pattern` regexes from [`compile_login_pattern`].
    pub fn new(pinned: Option<Format>, custom: Vec<Regex>) -> Self {
        LineParser {
            pinned,
            custom,
            pids: Bounded::new(state::CAP),
            sessions: Bounded::new(state::CAP),
        }
    }

    /// One complete line without its newline. Never panics, whatever the bytes.
    pub fn parse(&mut self, line: &[u8]) -> Event {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let builtin = if self.pinned == Some(Format::Custom) {
            Event::Nothing
        } else {
            self.builtin(line)
        };
        match builtin {
            // A server's own verdict on its own line stands; a sloppy custom pattern must
            // not turn a logged failure into a grant.
            Event::Login(_) | Event::Failure(_) => builtin,
            other if self.custom.is_empty() => other,
            other => self.custom(line).unwrap_or(other),
        }
    }

    /// One message whose program tag and pid are known without a syslog envelope (a journal
    /// entry's fields), and whose time is known too. Never panics, whatever the bytes.
    /// `--login-pattern`s see it as `TAG[PID]: MESSAGE`.
    pub fn parse_message(&mut self, tag: &[u8], pid: Option<u32>, msg: &[u8]) -> Event {
        let msg = msg.strip_suffix(b"\r").unwrap_or(msg);
        let builtin = if self.pinned == Some(Format::Custom) {
            Event::Nothing
        } else {
            self.tagged(tag, pid, msg, RawStamp::None)
        };
        match builtin {
            Event::Login(_) | Event::Failure(_) => builtin,
            other if self.custom.is_empty() => other,
            other => {
                let mut line = tag.to_vec();
                if let Some(pid) = pid {
                    line.extend_from_slice(format!("[{pid}]").as_bytes());
                }
                line.extend_from_slice(b": ");
                line.extend_from_slice(msg);
                self.custom(&line).unwrap_or(other)
            }
        }
    }

    fn builtin(&mut self, line: &[u8]) -> Event {
        let Some(env) = syslog::envelope(line) else {
            return Event::Nothing;
        };
        let (tag, pid, msg) = match env.body {
            // Dovecot's own file holds nothing but Dovecot's lines.
            Body::DovecotNative(msg) => (&b"dovecot"[..], None, msg),
            Body::Tagged { tag, pid, msg } => (tag, pid, msg),
        };
        self.tagged(tag, pid, msg, env.stamp)
    }

    fn tagged(&mut self, tag: &[u8], pid: Option<u32>, msg: &[u8], stamp: RawStamp<'_>) -> Event {
        let mut elsewhere = false;
        for &format in candidates(tag) {
            let parsed = run(format, tag, msg);
            if parsed == Parsed::Nothing {
                continue;
            }
            if self.pinned.is_none_or(|p| p == format) {
                return self.apply(format, tag, parsed, stamp, pid);
            }
            // Another server's login in a log pinned to one format: say so, grant nothing.
            elsewhere |= matches!(parsed, Parsed::Login { .. } | Parsed::Suspect);
        }
        if elsewhere {
            Event::LooksLikeLogin
        } else {
            Event::Nothing
        }
    }

    fn apply(
        &mut self,
        format: Format,
        tag: &[u8],
        parsed: Parsed<'_>,
        stamp: RawStamp<'_>,
        pid: Option<u32>,
    ) -> Event {
        match parsed {
            Parsed::Nothing => Event::Nothing,
            Parsed::Failure => Event::Failure(format),
            Parsed::Suspect => Event::LooksLikeLogin,
            Parsed::Connect(ip) => {
                if let Some(pid) = pid {
                    self.pids.insert((format, pid), ip);
                }
                Event::Nothing
            }
            Parsed::End => {
                if let Some(pid) = pid {
                    self.pids.remove(&(format, pid));
                }
                Event::Nothing
            }
            Parsed::Session { sid, ip, service } => {
                if let Some(sid) = Sid::new(sid) {
                    self.sessions.insert((service, sid), (ip, pid));
                }
                Event::Nothing
            }
            Parsed::SessionEnd { sid, service } => {
                if let Some(sid) = Sid::new(sid) {
                    self.sessions.remove(&(service, sid));
                }
                Event::Nothing
            }
            Parsed::Logout(conn) => match SessionKey::new(format, tag, &conn, pid) {
                Some(session) => Event::Logout {
                    session,
                    stamp: stamp.parse(),
                },
                None => Event::Nothing,
            },
            Parsed::Login {
                addr,
                user,
                service,
                conn,
            } => {
                let ip = match addr {
                    Addr::Here(ip) => Some(ip),
                    Addr::Absent => None,
                    Addr::Pid => pid.and_then(|p| self.pids.remove(&(format, p))),
                    Addr::Session(sid) => Sid::new(sid)
                        .and_then(|sid| self.sessions.remove(&(service, sid)))
                        // The address line comes from the master process; the same pid
                        // announcing both would not be the Mailutils we know.
                        .filter(|(_, master)| master.is_none() || *master != pid)
                        .map(|(ip, _)| ip),
                };
                Event::Login(LoginEvent {
                    ip,
                    user: user.and_then(text::user),
                    service,
                    format,
                    stamp: stamp.parse(),
                    session: SessionKey::new(format, tag, &conn, pid),
                })
            }
        }
    }

    fn custom(&self, line: &[u8]) -> Option<Event> {
        let text = String::from_utf8_lossy(line);
        for re in &self.custom {
            let Some(caps) = re.captures(&text) else {
                continue;
            };
            let Some(ip) = caps.name("ip").and_then(|m| parse_ip(m.as_str()).ok()) else {
                return Some(Event::LooksLikeLogin);
            };
            let user = caps
                .name("user")
                .map(|m| m.as_str().to_string())
                .filter(|u| !u.is_empty());
            let stamp = syslog::split_stamp(line).and_then(|(s, _)| s.parse());
            return Some(Event::Login(LoginEvent {
                ip: Some(ip),
                user,
                service: Service::Unknown,
                format: Format::Custom,
                stamp,
                session: None,
            }));
        }
        None
    }
}

/// The formats whose servers log under this program tag. Most tags name one server;
/// `pop3d` and `imapd` are used by several, which then tell apart by message.
fn candidates(tag: &[u8]) -> &'static [Format] {
    use Format::*;
    match tag {
        b"dovecot" => &[Dovecot],
        b"pop3d" => &[Courier, Mailutils, Uw, Cyrus],
        b"imapd" => &[Courier, Uw, Cyrus],
        b"pop3d-ssl" | b"imapd-ssl" | b"pop3login" | b"imaplogin" | b"courierpop3login"
        | b"courierpop3d" | b"courierimaplogin" | b"courierimapd" => &[Courier],
        b"imap4d" | b"gnu-pop3d" | b"gnu-imap4d" => &[Mailutils],
        b"ipop3d" | b"ipop3sd" | b"imapsd" => &[Uw],
        b"pop3" | b"pop3s" | b"imap" | b"imaps" => &[Cyrus],
        b"popa3d" => &[Popa3d],
        b"solid-pop3d" | b"spop3d" => &[SolidPop3d],
        b"vpopmail" | b"vchkpw" => &[Vchkpw],
        b"popper" | b"qpopper" | b"in.qpopper" => &[Qpopper],
        t if t.starts_with(b"cyrus/") => &[Cyrus],
        _ => &[],
    }
}

fn run<'a>(format: Format, tag: &'a [u8], msg: &'a [u8]) -> Parsed<'a> {
    match format {
        Format::Dovecot => dovecot::parse(msg),
        Format::Courier => courier::parse(tag, msg),
        Format::Cyrus => cyrus::parse(tag, msg),
        Format::Uw => uw::parse(tag, msg),
        Format::Qpopper => qpopper::parse(msg),
        Format::Mailutils => mailutils::parse(tag, msg),
        Format::Popa3d => popa3d::parse(msg),
        Format::SolidPop3d => solid::parse(msg),
        Format::Vchkpw => vchkpw::parse(msg),
        Format::Custom => Parsed::Nothing,
    }
}

/// Compile a `--login-pattern`. It must have a named group `ip` and may have one named
/// `user`. The pattern is matched against the whole line, so it is the administrator's
/// job to anchor it (`^... dovecot: ...`) the way the built-in parsers anchor theirs.
pub fn compile_login_pattern(p: &str) -> Result<Regex, Error> {
    let re = Regex::new(p).map_err(|e| {
        // The regex crate explains over several lines; its last one names the problem.
        let text = e.to_string();
        let why = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let why = why.trim().trim_start_matches("error: ");
        Error::invalid(format!("invalid --login-pattern '{p}': {why}"))
    })?;
    if !re.capture_names().any(|n| n == Some("ip")) {
        return Err(Error::invalid(format!(
            "--login-pattern '{p}' has no named group 'ip' (write (?P<ip>...) around the address)"
        )));
    }
    Ok(re)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(p: &mut LineParser, line: &str) -> LoginEvent {
        match p.parse(line.as_bytes()) {
            Event::Login(l) => l,
            other => panic!("expected a login from {line:?}, got {other:?}"),
        }
    }

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>().unwrap(), f);
        }
        assert_eq!("UW-IMAP".parse::<Format>().unwrap(), Format::Uw);
        let e = "exim".parse::<Format>().unwrap_err().to_string();
        assert!(e.contains("'exim'"), "{e}");
        assert!(e.contains("dovecot") && e.contains("solid-pop3d"), "{e}");
        assert_eq!(Service::Imap.name(), "imap");
    }

    #[test]
    fn login_pattern_needs_an_ip_group() {
        let e = compile_login_pattern("^x (?P<user>\\S+)")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'^x (?P<user>\\S+)'") && e.contains("ip"), "{e}");
        let e = compile_login_pattern("(?P<ip>").unwrap_err().to_string();
        assert!(e.contains("'(?P<ip>'"), "{e}");
        assert!(compile_login_pattern(r"^(?P<ip>\S+) ok$").is_ok());
    }

    #[test]
    fn custom_pattern_reports_a_login() {
        let re = compile_login_pattern(
            r"^\S+ \S+ \S+ \S+ teapop\[\d+\]: Successful login for (?P<user>\S+) .* \[(?P<ip>[^]]+)\]$",
        )
        .unwrap();
        let mut p = LineParser::new(None, vec![re]);
        let l = login(
            &mut p,
            "Nov 22 03:09:57 vm teapop[7]: Successful login for bob at x [192.0.2.9]",
        );
        assert_eq!(l.ip, "192.0.2.9".parse().ok());
        assert_eq!(l.user.as_deref(), Some("bob"));
        assert_eq!(l.format, Format::Custom);
        assert_eq!(l.service, Service::Unknown);
        assert!(matches!(l.stamp, Some(Stamp::Syslog { day: 22, .. })));
        // A match whose ip group is not an address grants nothing.
        assert_eq!(
            p.parse(b"Nov 22 03:09:57 vm teapop[7]: Successful login for bob at x [nowhere]"),
            Event::LooksLikeLogin
        );
    }

    #[test]
    fn custom_pattern_cannot_override_a_logged_failure() {
        let re = compile_login_pattern(r"ip=\[(?P<ip>[^]]+)\]").unwrap();
        let mut p = LineParser::new(None, vec![re]);
        assert_eq!(
            p.parse(b"Nov 22 03:11:22 vm pop3d: LOGIN FAILED, user=alice, ip=[::ffff:127.0.0.24], port=[43397]"),
            Event::Failure(Format::Courier)
        );
    }

    #[test]
    fn pinned_format_runs_only_its_parser() {
        let dovecot = "Nov 22 03:09:57 vm dovecot: pop3-login: Login: user=<a>, method=PLAIN, rip=192.0.2.1, lip=192.0.2.2, mpid=1, session=<x>";
        let mut p = LineParser::new(Some(Format::Courier), vec![]);
        assert_eq!(p.parse(dovecot.as_bytes()), Event::LooksLikeLogin);
        let mut p = LineParser::new(Some(Format::Dovecot), vec![]);
        assert_eq!(login(&mut p, dovecot).ip, "192.0.2.1".parse().ok());
        let mut p = LineParser::new(Some(Format::Custom), vec![]);
        assert_eq!(p.parse(dovecot.as_bytes()), Event::Nothing);
    }

    #[test]
    fn pinned_shared_tag_picks_the_pinned_server() {
        // `pop3d` is Courier's and Mailutils' tag; pinning Mailutils must still see its login.
        let mut p = LineParser::new(Some(Format::Mailutils), vec![]);
        let l = login(
            &mut p,
            "Nov 22 03:15:02 vm pop3d[9234]: user `alice' logged in with mailbox `/var/mail/alice' (0 messages)",
        );
        assert_eq!((l.format, l.ip), (Format::Mailutils, None));
    }

    #[test]
    fn carriage_return_and_bad_utf8_are_harmless() {
        let mut p = LineParser::new(None, vec![]);
        let l = login(
            &mut p,
            "Nov 22 03:11:18 vm pop3d: LOGIN, user=alice, ip=[::ffff:127.0.0.21], port=[37769]\r",
        );
        assert_eq!(l.ip, "127.0.0.21".parse().ok());
        let mut bad =
            b"Nov 22 03:11:18 vm pop3d: LOGIN, user=al\xffce, ip=[192.0.2.3], port=[1]".to_vec();
        match p.parse(&bad) {
            Event::Login(l) => assert_eq!(l.user.as_deref(), Some("al\u{fffd}ce")),
            other => panic!("{other:?}"),
        }
        bad.truncate(30);
        assert_eq!(p.parse(&bad), Event::Nothing);
    }

    /// A journal entry's message comes with its tag and pid as fields, without an envelope.
    #[test]
    fn a_message_with_its_tag_and_pid_from_elsewhere() {
        let mut p = LineParser::new(None, vec![]);
        let l = match p.parse_message(
            b"dovecot",
            Some(25082),
            b"pop3-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.7, lip=127.0.0.1, mpid=9, session=<s>",
        ) {
            Event::Login(l) => l,
            other => panic!("{other:?}"),
        };
        assert_eq!((l.ip, l.stamp), ("192.0.2.7".parse().ok(), None));
        assert_eq!(l.session.unwrap().to_string(), "dovecot:dovecot/9/s");
        // Cyrus names its session by the pid given.
        match p.parse_message(
            b"cyrus/imap",
            Some(9062),
            b"login: host [192.0.2.8] alice plaintext User logged in SESSIONID=<x>",
        ) {
            Event::Login(l) => assert_eq!(l.session.unwrap().to_string(), "cyrus:cyrus/imap[9062]"),
            other => panic!("{other:?}"),
        }
        // The tag decides, as in a file: Postfix quoting a login line is nothing.
        assert_eq!(
            p.parse_message(
                b"postfix/smtpd",
                Some(1),
                b"pop3-login: Login: user=<a>, method=PLAIN, rip=10.6.6.6, lip=127.0.0.1"
            ),
            Event::Nothing
        );
        // A site pattern sees `TAG[PID]: MESSAGE`.
        let re = compile_login_pattern(r"^teapop\[\d+\]: ok (?P<ip>\S+)$").unwrap();
        let mut p = LineParser::new(None, vec![re]);
        assert!(matches!(
            p.parse_message(b"teapop", Some(7), b"ok 192.0.2.9\r"),
            Event::Login(_)
        ));
        assert_eq!(
            p.parse_message(b"teapop", None, b"ok 192.0.2.9"),
            Event::Nothing
        );
    }

    #[test]
    fn other_programs_are_ignored() {
        let mut p = LineParser::new(None, vec![]);
        for l in [
            "Nov 22 03:09:57 vm postfix/smtpd[1]: connect from unknown[192.0.2.1]",
            "Nov 22 03:09:57 vm sshd[1]: Accepted password for root from 192.0.2.1 port 22 ssh2",
            "Nov 22 03:09:57 vm kernel: [1.0] something",
            "not syslog at all",
            "",
        ] {
            assert_eq!(p.parse(l.as_bytes()), Event::Nothing, "{l}");
        }
    }
}
