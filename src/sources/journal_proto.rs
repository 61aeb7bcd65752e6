//! The systemd journal as `journalctl --output=json` prints it: an entry's line in, the
//! fields relaylease reads out, and whether the kernel vouches for the entry's writer (pure).
//!
//! # Trusted fields
//! journald fills the fields whose names start with `_` itself, from the sending socket's
//! credentials (`_PID`, `_UID`) and from `/proc` for that pid (`_COMM`, `_EXE`, and
//! `_SYSTEMD_UNIT` from its cgroup), and drops any such field a client sends. `MESSAGE` and
//! `SYSLOG_IDENTIFIER` are whatever the writer chose: `logger -t dovecot` writes a perfect
//! Dovecot line. So an entry counts only when its trusted fields name the mail server
//! ([`Trust::judge`]); its text is read after that.

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::lease::Millis;

/// The fields journalctl is told to print (`--output-fields`); it adds the cursor and the
/// timestamps itself.
pub const FIELDS: &str = "MESSAGE,SYSLOG_IDENTIFIER,SYSLOG_PID,_PID,_UID,_COMM,_EXE,_SYSTEMD_UNIT";

/// The programs trusted by default, as `_EXE` names them: the servers whose log formats
/// relaylease reads and that log from processes of their own. A path ending in `/` stands
/// for every program in that directory.
pub const DEFAULT_EXES: [&str; 9] = [
    // Dovecot: the master, and the `log` process every other one logs through.
    "/usr/sbin/dovecot",
    "/usr/lib/dovecot/",
    "/usr/libexec/dovecot/",
    // Courier: courierlogger writes its daemons' messages to syslog.
    "/usr/sbin/courierlogger",
    "/usr/lib/courier/",
    "/usr/libexec/courier/",
    // Cyrus: the master and its services (Debian; Fedora).
    "/usr/sbin/cyrmaster",
    "/usr/lib/cyrus/bin/",
    "/usr/libexec/cyrus-imapd/",
];

/// The system users trusted by default besides root, where they exist: the servers' own.
pub const DEFAULT_USERS: [&str; 3] = ["dovecot", "courier", "cyrus"];

/// The fields of one entry that relaylease reads. A field journalctl printed with several
/// values is taken as absent: it is not what a mail server writes, and a trusted field never
/// has more than one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// `__CURSOR`: where this entry is, to continue after it.
    pub cursor: String,
    /// `__REALTIME_TIMESTAMP`: when journald received it, in µs since the epoch.
    pub realtime_us: Option<u64>,
    pub message: Option<Vec<u8>>,
    pub identifier: Option<Vec<u8>>,
    pub syslog_pid: Option<u32>,
    pub pid: Option<u32>,
    pub uid: Option<u32>,
    pub comm: Option<String>,
    pub exe: Option<String>,
    pub unit: Option<String>,
}

impl Entry {
    /// The program tag for the log parsers: the syslog identifier, else the process name.
    pub fn tag(&self) -> &[u8] {
        match (&self.identifier, &self.comm) {
            (Some(i), _) => i,
            (None, Some(c)) => c.as_bytes(),
            (None, None) => b"",
        }
    }

    /// The pid for the log parsers (joining lines, naming Cyrus sessions): the one the
    /// program logged, else the sender's.
    pub fn log_pid(&self) -> Option<u32> {
        self.syslog_pid.or(self.pid)
    }

    /// The message's first line: a log line never holds more, and the parsers read lines.
    pub fn first_line(&self) -> &[u8] {
        let m = self.message.as_deref().unwrap_or_default();
        m.split(|b| *b == b'\n').next().unwrap_or_default()
    }

    /// When the entry was received, in ms since the epoch (never after `now`), else `now`.
    pub fn at(&self, now: Millis) -> Millis {
        self.realtime_us.map_or(now, |us| (us / 1000).min(now))
    }
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "__CURSOR")]
    cursor: Option<Value>,
    #[serde(rename = "__REALTIME_TIMESTAMP")]
    realtime: Option<Value>,
    #[serde(rename = "MESSAGE")]
    message: Option<Value>,
    #[serde(rename = "SYSLOG_IDENTIFIER")]
    identifier: Option<Value>,
    #[serde(rename = "SYSLOG_PID")]
    syslog_pid: Option<Value>,
    #[serde(rename = "_PID")]
    pid: Option<Value>,
    #[serde(rename = "_UID")]
    uid: Option<Value>,
    #[serde(rename = "_COMM")]
    comm: Option<Value>,
    #[serde(rename = "_EXE")]
    exe: Option<Value>,
    #[serde(rename = "_SYSTEMD_UNIT")]
    unit: Option<Value>,
}

/// One value's bytes: a string, or (for a value that is not printable UTF-8) an array of
/// byte numbers. `None` for several values, or a value journalctl left out (`null`).
fn bytes(v: Option<&Value>) -> Option<Vec<u8>> {
    match v? {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Array(a) => a
            .iter()
            .map(|n| n.as_u64().and_then(|n| u8::try_from(n).ok()))
            .collect(),
        _ => None,
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    String::from_utf8(bytes(v)?).ok()
}

fn number<T: std::str::FromStr>(v: Option<&Value>) -> Option<T> {
    let s = text(v)?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// One line of `journalctl --output=json`. An entry without a cursor is an error: without it
/// reading could not continue after the entry.
pub fn parse_entry(line: &[u8]) -> Result<Entry> {
    let raw: Raw = serde_json::from_slice(line)
        .map_err(|e| Error::invalid(format!("journalctl printed an unreadable entry: {e}")))?;
    let cursor = text(raw.cursor.as_ref())
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::invalid("journalctl printed an entry without __CURSOR"))?;
    Ok(Entry {
        cursor,
        realtime_us: number(raw.realtime.as_ref()),
        message: bytes(raw.message.as_ref()),
        identifier: bytes(raw.identifier.as_ref()),
        syslog_pid: number(raw.syslog_pid.as_ref()),
        pid: number(raw.pid.as_ref()),
        uid: number(raw.uid.as_ref()),
        comm: text(raw.comm.as_ref()),
        exe: text(raw.exe.as_ref()),
        unit: text(raw.unit.as_ref()),
    })
}

/// Which writers the journal source believes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    /// `--journal-unit`: an entry from one of these systemd units' processes comes from the
    /// mail server.
    pub units: Vec<String>,
    /// [`DEFAULT_EXES`] and `--journal-trust-exe`: so does one written by these programs.
    pub exes: Vec<String>,
    /// [`DEFAULT_USERS`] and `--journal-trust-user` (root is always trusted): the writer must
    /// also run as one of these.
    pub uids: Vec<u32>,
    /// `--journal-any-origin`: believe every selected entry, as a log file's lines are.
    pub any_origin: bool,
}

/// Why an entry's writer is not believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `_UID` is neither root nor a trusted user (or absent).
    User(Option<u32>),
    /// Neither `_SYSTEMD_UNIT` nor `_EXE` names the mail server.
    Program {
        comm: Option<String>,
        exe: Option<String>,
        unit: Option<String>,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or_unknown = |s: &Option<String>| s.clone().unwrap_or_else(|| "unknown".into());
        match self {
            Refusal::User(Some(uid)) => {
                write!(
                    f,
                    "written as uid {uid}, neither root nor the server's user"
                )
            }
            Refusal::User(None) => {
                f.write_str("written by a process whose uid journald did not record")
            }
            Refusal::Program { comm, exe, unit } => write!(
                f,
                "written by {} ({}, unit {}), not by the mail server",
                or_unknown(comm),
                or_unknown(exe),
                or_unknown(unit)
            ),
        }
    }
}

impl Trust {
    /// Does the kernel vouch that the mail server wrote `e`? Its writer must run as root or
    /// the server's user, and be in one of the server's units or run one of its programs.
    /// A field journald could not fill (a writer that exited before journald looked at
    /// `/proc`) counts against the entry.
    pub fn judge(&self, e: &Entry) -> std::result::Result<(), Refusal> {
        if self.any_origin {
            return Ok(());
        }
        match e.uid {
            Some(uid) if uid == 0 || self.uids.contains(&uid) => {}
            other => return Err(Refusal::User(other)),
        }
        let unit = e.unit.as_ref().is_some_and(|u| self.units.contains(u));
        let exe = e.exe.as_deref().is_some_and(|x| self.trusts_exe(x));
        if unit || exe {
            Ok(())
        } else {
            Err(Refusal::Program {
                comm: e.comm.clone(),
                exe: e.exe.clone(),
                unit: e.unit.clone(),
            })
        }
    }

    fn trusts_exe(&self, exe: &str) -> bool {
        // A program replaced by a package upgrade while running: still the one started.
        let exe = exe.strip_suffix(" (deleted)").unwrap_or(exe);
        self.exes.iter().any(|t| match t.strip_suffix('/') {
            Some(dir) => exe
                .strip_prefix(dir)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|name| !name.is_empty() && !name.contains('/')),
            None => exe == t,
        })
    }
}

/// `dovecot` as a unit name means `dovecot.service`, as for systemctl.
pub fn unit_name(name: &str) -> String {
    if name.contains('.') {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

/// journalctl's matches for the selected entries: any of the units' processes, or any of the
/// identifiers (`+` separates the alternatives).
pub fn matches(units: &[String], identifiers: &[String]) -> Vec<String> {
    let mut m: Vec<String> = units.iter().map(|u| format!("_SYSTEMD_UNIT={u}")).collect();
    if !m.is_empty() && !identifiers.is_empty() {
        m.push("+".into());
    }
    m.extend(identifiers.iter().map(|i| format!("SYSLOG_IDENTIFIER={i}")));
    m
}

/// Where following starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// After the last entry processed.
    AfterCursor(String),
    /// At the first entry received at or after this time (ms since the epoch).
    Since(Millis),
}

/// journalctl's time for `--since`: seconds since the epoch, with milliseconds.
pub fn since_arg(ms: Millis) -> String {
    format!("--since=@{}.{:03}", ms / 1000, ms % 1000)
}

/// The arguments of the `journalctl` that follows the journal from `start`.
pub fn follow_args(start: &Start, matches: &[String]) -> Vec<String> {
    let mut a: Vec<String> = [
        "--follow",
        "--lines=all",
        "--output=json",
        "--all",
        "--no-pager",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push(format!("--output-fields={FIELDS}"));
    a.push(match start {
        Start::AfterCursor(c) => format!("--after-cursor={c}"),
        Start::Since(ms) => since_arg(*ms),
    });
    a.extend(matches.iter().cloned());
    a
}

/// Counts refused logins and says when to warn: at most once per `every`.
#[derive(Debug, Default)]
pub struct Forgeries {
    since_warning: u64,
    last_warning: Option<Millis>,
}

impl Forgeries {
    /// One more refused login at `now`. Returns the number refused since the last warning
    /// (this one included) when it is time to warn again.
    pub fn note(&mut self, now: Millis, every: Millis) -> Option<u64> {
        self.since_warning += 1;
        if self
            .last_warning
            .is_some_and(|t| now.saturating_sub(t) < every)
        {
            return None;
        }
        self.last_warning = Some(now);
        Some(std::mem::take(&mut self.since_warning))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped as journald 252 recorded Dovecot 2.3's `log` process through /dev/log.
    const DOVECOT: &str = r#"{"_BOOT_ID":"3b094294593a487591c7d7def66843e8","MESSAGE":"pop3-login: Login: user=<alice>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, mpid=25690, secured, session=<1j6JJtJhFtN/AAAB>","__REALTIME_TIMESTAMP":"1796405077829390","_COMM":"log","SYSLOG_IDENTIFIER":"dovecot","_UID":"0","_EXE":"/usr/lib/dovecot/log","_PID":"25082","__MONOTONIC_TIMESTAMP":"6398038531","__CURSOR":"s=073898e503cf484eacfa1900aea0dd3e;i=b;b=3b094294593a487591c7d7def66843e8;m=17d5a5203;t=661d22689670e;x=686e04a520be6b0d","_TRANSPORT":"syslog"}"#;
    /// `logger -t dovecot '...'` run by root: the same text, journald's own fields say logger.
    const LOGGER: &str = r#"{"SYSLOG_IDENTIFIER":"dovecot","_COMM":"logger","MESSAGE":"pop3-login: Login: user=<alice>, method=PLAIN, rip=10.6.6.6, lip=127.0.0.1, mpid=1, session=<x>","__REALTIME_TIMESTAMP":"1796405050978671","__CURSOR":"s=073898e503cf484eacfa1900aea0dd3e;i=3;b=3b0;m=17bc09c64;t=661d224efb16f;x=c6f324ded7885ecc","_UID":"0","_TRANSPORT":"syslog","_PID":"23662","_EXE":"/usr/bin/logger"}"#;

    fn trust() -> Trust {
        Trust {
            units: vec!["dovecot.service".into()],
            exes: DEFAULT_EXES.iter().map(|s| s.to_string()).collect(),
            uids: vec![101],
            any_origin: false,
        }
    }

    #[test]
    fn a_dovecot_entry_is_read_and_trusted() {
        let e = parse_entry(DOVECOT.as_bytes()).unwrap();
        assert_eq!(e.tag(), b"dovecot");
        assert_eq!(e.log_pid(), Some(25082));
        assert_eq!(
            (e.uid, e.exe.as_deref()),
            (Some(0), Some("/usr/lib/dovecot/log"))
        );
        assert!(
            e.first_line()
                .starts_with(b"pop3-login: Login: user=<alice>")
        );
        assert_eq!(e.at(u64::MAX), 1_796_405_077_829);
        assert_eq!(e.at(5), 5, "never later than now");
        assert!(e.cursor.starts_with("s=0738"));
        assert_eq!(trust().judge(&e), Ok(()));
    }

    #[test]
    fn logger_and_systemd_cat_are_refused_whoever_runs_them() {
        let e = parse_entry(LOGGER.as_bytes()).unwrap();
        let why = trust().judge(&e).unwrap_err();
        assert!(why.to_string().contains("logger (/usr/bin/logger"), "{why}");
        // As nobody: refused for the user first.
        let mut nobody = e.clone();
        nobody.uid = Some(65534);
        assert_eq!(trust().judge(&nobody), Err(Refusal::User(Some(65534))));
        // systemd-cat's stream entry, its writer gone before journald read /proc: no _EXE.
        let mut cat = e.clone();
        cat.exe = None;
        cat.comm = None;
        assert!(matches!(trust().judge(&cat), Err(Refusal::Program { .. })));
        // No uid recorded: refused.
        let mut no_uid = e;
        no_uid.uid = None;
        assert_eq!(trust().judge(&no_uid), Err(Refusal::User(None)));
    }

    #[test]
    fn a_unit_or_a_program_vouches_but_only_with_a_trusted_user() {
        let base = Entry {
            cursor: "c".into(),
            uid: Some(0),
            exe: Some("/usr/bin/perl".into()),
            ..Default::default()
        };
        let t = trust();
        let in_unit = Entry {
            unit: Some("dovecot.service".into()),
            ..base.clone()
        };
        assert_eq!(t.judge(&in_unit), Ok(()));
        // A user's own unit of the same name is `user@UID.service` to journald.
        let user_unit = Entry {
            unit: Some("user@1000.service".into()),
            uid: Some(1000),
            ..base.clone()
        };
        assert!(t.judge(&user_unit).is_err());
        let server_user = Entry {
            uid: Some(101),
            exe: Some("/usr/lib/dovecot/auth".into()),
            ..base.clone()
        };
        assert_eq!(t.judge(&server_user), Ok(()));
        let stranger = Entry {
            uid: Some(1000),
            ..in_unit.clone()
        };
        assert_eq!(t.judge(&stranger), Err(Refusal::User(Some(1000))));
        let any = Trust {
            any_origin: true,
            ..trust()
        };
        assert_eq!(any.judge(&stranger), Ok(()));
    }

    #[test]
    fn trusted_programs_match_whole_names_and_directories_one_level_deep() {
        let t = trust();
        for ok in [
            "/usr/sbin/dovecot",
            "/usr/lib/dovecot/log",
            "/usr/lib/dovecot/log (deleted)",
            "/usr/lib/cyrus/bin/pop3d",
        ] {
            assert!(t.trusts_exe(ok), "{ok}");
        }
        for bad in [
            "/usr/sbin/dovecotx",
            "/usr/sbin/dovecot-evil",
            "/usr/lib/dovecot",
            "/usr/lib/dovecot/",
            "/usr/lib/dovecotx/log",
            "/usr/lib/dovecot/sub/log",
            "/usr/bin/logger",
            "",
        ] {
            assert!(!t.trusts_exe(bad), "{bad}");
        }
    }

    #[test]
    fn odd_values_are_absent_never_guessed() {
        // A binary message is an array of bytes; several values are an array of values.
        let e = parse_entry(
            br#"{"__CURSOR":"c","MESSAGE":[112,111,112,255],"_UID":["0","0"],"_EXE":null,"SYSLOG_PID":"12x","__REALTIME_TIMESTAMP":"-1"}"#,
        )
        .unwrap();
        assert_eq!(e.message.as_deref(), Some(&b"pop\xff"[..]));
        assert_eq!((e.uid, e.exe.as_deref(), e.syslog_pid), (None, None, None));
        assert_eq!(e.realtime_us, None);
        let two = parse_entry(br#"{"__CURSOR":"c","MESSAGE":["a","b"],"_UID":"0"}"#).unwrap();
        assert_eq!(two.message, None);
        assert!(two.first_line().is_empty());
        for bad in [
            &br#"{"MESSAGE":"x"}"#[..],
            br#"{"__CURSOR":""}"#,
            br#"{"__CURSOR":"c","_UID":"0","_UID":"0"}"#,
            b"not json",
            b"",
            br#"["__CURSOR"]"#,
        ] {
            let e = parse_entry(bad).unwrap_err().to_string();
            assert!(e.starts_with("journalctl printed"), "{e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn multi_line_messages_are_read_to_their_first_newline() {
        let e = Entry {
            message: Some(b"Disconnected\npop3-login: Login: user=<a>".to_vec()),
            ..Default::default()
        };
        assert_eq!(e.first_line(), b"Disconnected");
        let no_ident = Entry {
            comm: Some("pop3d".into()),
            pid: Some(7),
            syslog_pid: None,
            ..Default::default()
        };
        assert_eq!(
            (no_ident.tag(), no_ident.log_pid()),
            (&b"pop3d"[..], Some(7))
        );
    }

    #[test]
    fn journalctl_arguments() {
        let units = vec![unit_name("dovecot"), unit_name("courier-imap.service")];
        assert_eq!(units, ["dovecot.service", "courier-imap.service"]);
        let ids = vec!["dovecot".to_string(), "imapd".to_string()];
        assert_eq!(
            matches(&units, &ids),
            [
                "_SYSTEMD_UNIT=dovecot.service",
                "_SYSTEMD_UNIT=courier-imap.service",
                "+",
                "SYSLOG_IDENTIFIER=dovecot",
                "SYSLOG_IDENTIFIER=imapd"
            ]
        );
        assert_eq!(matches(&units[..1], &[]), ["_SYSTEMD_UNIT=dovecot.service"]);
        assert_eq!(matches(&[], &ids[..1]), ["SYSLOG_IDENTIFIER=dovecot"]);
        assert_eq!(since_arg(1_796_405_077_009), "--since=@1796405077.009");
        let a = follow_args(
            &Start::AfterCursor("s=1;i=2".into()),
            &matches(&units[..1], &[]),
        );
        assert!(a.contains(&"--follow".to_string()));
        assert!(a.contains(&"--after-cursor=s=1;i=2".to_string()));
        assert!(a.contains(&format!("--output-fields={FIELDS}")));
        assert_eq!(a.last().unwrap(), "_SYSTEMD_UNIT=dovecot.service");
        let a = follow_args(&Start::Since(1500), &[]);
        assert!(a.contains(&"--since=@1.500".to_string()));
    }

    #[test]
    fn forgeries_are_warned_about_once_a_minute_with_the_count_since() {
        let mut f = Forgeries::default();
        assert_eq!(f.note(1_000, 60_000), Some(1));
        assert_eq!(f.note(2_000, 60_000), None);
        assert_eq!(f.note(60_999, 60_000), None);
        assert_eq!(f.note(61_000, 60_000), Some(3));
        assert_eq!(f.note(61_001, 60_000), None);
    }
}
