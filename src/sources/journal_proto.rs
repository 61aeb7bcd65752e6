//! The systemd journal's entries as relaylease reads them: the fields of one entry, and
//! whether the kernel vouches for its writer (pure).
//!
//! # Trusted fields
//! journald fills the fields whose names start with `_` itself, from the sending socket's
//! credentials (`_PID`, `_UID`) and from `/proc` for that pid (`_COMM`, `_EXE`, and
//! `_SYSTEMD_UNIT` from its cgroup), and drops any such field a client sends. `MESSAGE` and
//! `SYSLOG_IDENTIFIER` are whatever the writer chose: `logger -t dovecot` writes a perfect
//! Dovecot line. So an entry counts only when its trusted fields name the mail server
//! ([`Trust::judge`]); its text is read after that.

use std::ffi::CStr;

use crate::lease::Millis;

/// A longer field is taken as absent: no mail server logs that much in one line.
pub const MAX_FIELD: usize = 64 * 1024;

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

/// The fields of one entry that relaylease reads. A field the entry lacks, or whose value
/// is not what journald writes there, is absent: never guessed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// Where this entry is, to continue after it.
    pub cursor: String,
    /// When journald received it, in µs since the epoch.
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

fn text(v: Option<Vec<u8>>) -> Option<String> {
    String::from_utf8(v?).ok()
}

fn number<T: std::str::FromStr>(v: Option<Vec<u8>>) -> Option<T> {
    let v = v?;
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(&v).ok()?.parse().ok()
}

impl Entry {
    /// An entry from its cursor, time and fields: `value(NAME)` is the value of field NAME,
    /// if the entry has it.
    pub fn from_fields(
        cursor: String,
        realtime_us: Option<u64>,
        mut value: impl FnMut(&CStr) -> Option<Vec<u8>>,
    ) -> Entry {
        let mut get = |name: &CStr| value(name).filter(|v| v.len() <= MAX_FIELD);
        Entry {
            cursor,
            realtime_us,
            message: get(c"MESSAGE"),
            identifier: get(c"SYSLOG_IDENTIFIER"),
            syslog_pid: number(get(c"SYSLOG_PID")),
            pid: number(get(c"_PID")),
            uid: number(get(c"_UID")),
            comm: text(get(c"_COMM")),
            exe: text(get(c"_EXE")),
            unit: text(get(c"_SYSTEMD_UNIT")),
        }
    }
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

/// The matches selecting the entries read: any of the units' processes, or any of the
/// identifiers. Written as for journalctl (`+` between the alternatives), so that
/// `journalctl MATCHES...` shows the same entries.
pub fn matches(units: &[String], identifiers: &[String]) -> Vec<String> {
    let mut m: Vec<String> = units.iter().map(|u| format!("_SYSTEMD_UNIT={u}")).collect();
    if !m.is_empty() && !identifiers.is_empty() {
        m.push("+".into());
    }
    m.extend(identifiers.iter().map(|i| format!("SYSLOG_IDENTIFIER={i}")));
    m
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
pub(crate) mod tests {
    use super::*;

    /// An entry with these fields, as sd-journal would give them.
    pub(crate) fn entry(cursor: &str, fields: &[(&str, &str)]) -> Entry {
        Entry::from_fields(cursor.into(), Some(1_796_405_077_829_390), |name| {
            fields
                .iter()
                .find(|(k, _)| k.as_bytes() == name.to_bytes())
                .map(|(_, v)| v.as_bytes().to_vec())
        })
    }

    /// As journald 252 recorded Dovecot 2.3's `log` process writing through /dev/log.
    pub(crate) fn dovecot(msg: &str) -> Vec<(&str, &str)> {
        vec![
            ("MESSAGE", msg),
            ("SYSLOG_IDENTIFIER", "dovecot"),
            ("_PID", "25082"),
            ("_UID", "0"),
            ("_COMM", "log"),
            ("_EXE", "/usr/lib/dovecot/log"),
        ]
    }

    /// `logger -t dovecot '...'` run by root: the same text; journald's own fields say logger.
    pub(crate) fn logger(msg: &str) -> Vec<(&str, &str)> {
        vec![
            ("MESSAGE", msg),
            ("SYSLOG_IDENTIFIER", "dovecot"),
            ("_PID", "23662"),
            ("_UID", "0"),
            ("_COMM", "logger"),
            ("_EXE", "/usr/bin/logger"),
        ]
    }

    const LOGIN: &str = "pop3-login: Login: user=<alice>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, mpid=25690, secured, session=<1j6JJtJhFtN/AAAB>";

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
        let e = entry("s=0738;i=b", &dovecot(LOGIN));
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
        assert_eq!(e.cursor, "s=0738;i=b");
        assert_eq!(trust().judge(&e), Ok(()));
    }

    #[test]
    fn logger_and_systemd_cat_are_refused_whoever_runs_them() {
        let e = entry("c", &logger(LOGIN));
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
        let long = "x".repeat(MAX_FIELD + 1);
        let e = entry(
            "c",
            &[
                ("MESSAGE", &long),
                ("_UID", "0 "),
                ("_PID", "-1"),
                ("SYSLOG_PID", "12x"),
                ("_EXE", ""),
            ],
        );
        assert_eq!(
            (&e.message, e.uid, e.pid, e.syslog_pid),
            (&None, None, None, None)
        );
        assert_eq!(e.exe.as_deref(), Some(""));
        assert!(trust().judge(&e).is_err());
        let bad_utf8 = Entry::from_fields("c".into(), None, |name| {
            (name == c"_EXE").then(|| b"/usr/lib/dovecot/\xff".to_vec())
        });
        assert_eq!((&bad_utf8.exe, bad_utf8.realtime_us), (&None, None));
        assert_eq!(bad_utf8.at(7), 7);
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
    fn matches_for_units_and_identifiers() {
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
