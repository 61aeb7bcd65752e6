//! Logins from the systemd journal, each entry judged by the fields journald takes from the
//! kernel before its text is read.
//!
//! The journal files are read through libsystemd's sd-journal, loaded at run time
//! ([`super::sd_journal`]), and polled every few milliseconds: journald tells readers about
//! new entries (inotify) only up to 250 ms after it wrote them, which is what
//! `journalctl --follow` waits for, while the entries are in the file at once. sd-journal
//! takes rotation, vacuuming and journald restarts in its stride; should reading fail all
//! the same, the journal is opened again after the last entry handled.

use std::ffi::CStr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::follow::Sink;
use super::journal_proto::{
    DEFAULT_EXES, DEFAULT_USERS, Entry, Forgeries, MAX_FIELD, Refusal, Trust, matches, unit_name,
};
use super::logparse::{Event, LineParser};
use super::sd_journal::Journal;
use super::{Mark, StoreSink};
use crate::cli::JournalArgs;
use crate::counters::Counters;
use crate::error::{Error, Result};
use crate::lease::{Login, Millis, now_ms};
use crate::shutdown::Shutdown;
use crate::store::{Leases, Stats};

/// The lease source name of journal logins.
pub const SOURCE: &str = "journal";
/// The cursor's key among the meta records stored with the leases.
const KEY: &str = "journal:cursor";
/// Entries handled before their logins and cursor are written, when more keep coming.
const BATCH: usize = 512;
/// How long to wait for new entries before looking again: the latency of a login when
/// journald's own notice is late.
const POLL: Duration = Duration::from_millis(10);
/// How often time-driven work runs (keeping open sessions' leases).
const TICK: Duration = Duration::from_secs(1);
/// How long after a failure to read the journal it is opened again.
const REOPEN_DELAY: Duration = Duration::from_secs(1);
/// Refused logins are warned about at most this often.
const FORGERY_WARNING_EVERY: Millis = 60 * 1000;

/// Where the journal's cursor is stored: the text journalctl prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(pub String);

impl Mark for Cursor {
    fn store(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(self.0.as_bytes());
    }
    fn load(bytes: &[u8]) -> Option<Self> {
        String::from_utf8(bytes.to_vec())
            .ok()
            .filter(|c| !c.is_empty())
            .map(Cursor)
    }
}

/// `--journal` and its options, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalSpec {
    pub units: Vec<String>,
    pub identifiers: Vec<String>,
    pub trust: Trust,
}

impl JournalSpec {
    pub fn from_args(a: &JournalArgs) -> Result<JournalSpec> {
        let word = |flag: &str, v: &str| {
            if v.is_empty() || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
                Err(Error::invalid(format!(
                    "{flag} '{v}': one word without spaces"
                )))
            } else {
                Ok(v.to_string())
            }
        };
        let units = a
            .journal_unit
            .iter()
            .map(|u| word("--journal-unit", u).map(|u| unit_name(&u)))
            .collect::<Result<Vec<_>>>()?;
        let identifiers = a
            .journal_identifier
            .iter()
            .map(|i| word("--journal-identifier", i))
            .collect::<Result<Vec<_>>>()?;
        let mut exes: Vec<String> = DEFAULT_EXES.iter().map(|s| s.to_string()).collect();
        for x in &a.journal_trust_exe {
            if !x.starts_with('/') {
                return Err(Error::invalid(format!(
                    "--journal-trust-exe '{x}': an absolute path, as journald records it in _EXE"
                )));
            }
            exes.push(x.clone());
        }
        // The default users where they exist; the ones named must exist.
        let mut uids: Vec<u32> = DEFAULT_USERS
            .iter()
            .filter_map(|u| uid_of(u).ok())
            .collect();
        for u in &a.journal_trust_user {
            uids.push(
                uid_of(u)
                    .map_err(|why| Error::invalid(format!("--journal-trust-user '{u}': {why}")))?,
            );
        }
        Ok(JournalSpec {
            units: units.clone(),
            identifiers,
            trust: Trust {
                units,
                exes,
                uids,
                any_origin: a.journal_any_origin,
            },
        })
    }

    fn matches(&self) -> Vec<String> {
        matches(&self.units, &self.identifiers)
    }
}

fn uid_of(name: &str) -> std::result::Result<u32, String> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(n);
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        Ok(None) => Err("no such user".into()),
        Err(e) => Err(format!("cannot look the user up: {e}")),
    }
}

/// What reading one entry came to.
#[derive(Debug, PartialEq, Eq)]
enum Handled {
    /// Its cursor went to the sink with a login.
    WithLogin,
    /// Read; its cursor is still to be saved.
    Without(String),
}

/// Turns journal entries into logins: the trusted ones through the log parsers, the others
/// counted when they carry a login.
struct Reader {
    trust: Trust,
    parser: LineParser,
    /// Reads refused entries to tell a forged login from noise. Separate, so that refused
    /// entries leave nothing in the state the real parser keeps (popa3d's `connect from`).
    suspects: LineParser,
    forgeries: Forgeries,
}

impl Reader {
    fn new(trust: Trust, patterns: &[regex::Regex]) -> Reader {
        Reader {
            trust,
            parser: LineParser::new(None, patterns.to_vec()),
            suspects: LineParser::new(None, Vec::new()),
            forgeries: Forgeries::default(),
        }
    }

    fn entry(
        &mut self,
        e: Entry,
        now: Millis,
        counters: &Counters,
        sink: &mut dyn Sink<Cursor>,
    ) -> Handled {
        if let Err(why) = self.trust.judge(&e) {
            if let Event::Login(ev) =
                self.suspects
                    .parse_message(e.tag(), e.log_pid(), e.first_line())
            {
                Counters::bump(&counters.forged);
                if let Some(n) = self.forgeries.note(now, FORGERY_WARNING_EVERY) {
                    tracing::warn!(
                        addr = ev.ip.map_or_else(|| "-".to_string(), |ip| ip.to_string()),
                        user = ev.user.as_deref().unwrap_or("-"),
                        why = %why,
                        refused = n,
                        "journal: a login line the mail server did not write: nothing granted (a forgery? said at most once a minute)"
                    );
                }
            }
            return Handled::Without(e.cursor);
        }
        let at = e.at(now);
        match self
            .parser
            .parse_message(e.tag(), e.log_pid(), e.first_line())
        {
            Event::Login(ev) => match ev.ip {
                Some(ip) => {
                    let login = Login {
                        ip,
                        user: ev.user,
                        at,
                        source: SOURCE.to_string(),
                    };
                    let cursor = Cursor(e.cursor);
                    sink.login(login, ev.session, Some((KEY, &cursor)));
                    return Handled::WithLogin;
                }
                None => sink.login_without_address(SOURCE, ev.user.as_deref()),
            },
            Event::Logout { session, .. } => sink.logout(session, at),
            Event::Failure(_) | Event::LooksLikeLogin | Event::Nothing => {}
        }
        Handled::Without(e.cursor)
    }
}

/// The running journal source: it stops when the daemon's shutdown comes.
pub struct JournalSource {
    thread: std::thread::JoinHandle<()>,
}

impl JournalSource {
    /// Wait for the source to stop (after the shutdown): the entries handled by then are
    /// written with their cursor when this returns.
    pub async fn stopped(self) {
        let _ = tokio::task::spawn_blocking(move || self.thread.join()).await;
    }
}

/// Start following the journal on a thread of its own, until `shutdown`. The journal is
/// opened and placed before this returns, so a host without libsystemd stops the daemon's
/// start.
pub fn start(
    spec: JournalSpec,
    patterns: &[regex::Regex],
    leases: Arc<Leases>,
    counters: Arc<Counters>,
    max_session_hold: Duration,
    started: Millis,
    shutdown: Shutdown,
) -> Result<JournalSource> {
    if let Some(file) = unreadable_system_journal() {
        tracing::warn!(file = %file.display(),
            "journal: this user cannot read the system journal, so no login will be seen: add it to group systemd-journal (or adm)");
    }
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut f = Follower {
        reader: Reader::new(spec.trust.clone(), patterns),
        spec,
        leases,
        counters,
        started,
        last: None,
        shutdown,
    };
    let thread = std::thread::Builder::new()
        .name("journal".into())
        .spawn(move || {
            // sd-journal is used by the thread that opened it.
            let mut sink = StoreSink::new(f.leases.clone(), f.counters.clone(), max_session_hold);
            match f.open(&mut sink) {
                Ok(j) => {
                    let _ = ready_tx.send(Ok(()));
                    f.run(j, &mut sink);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })
        .map_err(|e| Error::net("start the journal thread", e))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(JournalSource { thread }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => Err(Error::invalid("the journal thread ended before it started")),
    }
}

/// Follows the journal on its thread.
struct Follower {
    spec: JournalSpec,
    reader: Reader,
    leases: Arc<Leases>,
    counters: Arc<Counters>,
    /// When the daemon started: with no saved cursor, entries from then on are read.
    started: Millis,
    /// The cursor of the last entry handled, to open the journal again after it.
    last: Option<String>,
    shutdown: Shutdown,
}

impl Follower {
    /// Open the journal with the selection, placed after the last entry handled (or saved):
    /// while the journal still holds that one, reading continues after it; else from the
    /// oldest entry that can still grant a lease; with none saved, from the daemon's start.
    fn open(&mut self, sink: &mut StoreSink) -> Result<Journal> {
        let mut j = open_selected(&self.spec)?;
        let saved = match &self.last {
            Some(c) => Some(c.clone()),
            None => Sink::<Cursor>::saved(sink, KEY).map(|c| c.0),
        };
        let Some(c) = saved else {
            j.seek_realtime_us(self.started.saturating_mul(1000))?;
            tracing::info!(
                units = self.spec.units.join(","),
                identifiers = self.spec.identifiers.join(","),
                any_origin = self.spec.trust.any_origin,
                "following the journal from now"
            );
            return Ok(j);
        };
        let held = j.seek_cursor(&c).is_ok() && j.step()? && j.test_cursor(&c)?;
        if held {
            tracing::info!(
                units = self.spec.units.join(","),
                identifiers = self.spec.identifiers.join(","),
                any_origin = self.spec.trust.any_origin,
                "following the journal after the entry read last"
            );
            return Ok(j);
        }
        let window = self.leases.rules().window.as_millis() as Millis;
        tracing::warn!(cursor = %c,
            "journal: the entry read last is no longer in the journal (rotated or vacuumed away): reading from the oldest entry within the expiry window");
        j.seek_realtime_us(now_ms().saturating_sub(window).saturating_mul(1000))?;
        Ok(j)
    }

    fn run(&mut self, mut j: Journal, sink: &mut StoreSink) {
        let mut last_tick = Instant::now();
        while !self.shutdown.is_shutdown() {
            let (read, more) = match self.read_batch(&mut j, sink) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "journal: reading failed: opening the journal again");
                    match self.reopen(sink) {
                        Some(again) => j = again,
                        None => break,
                    }
                    continue;
                }
            };
            if Sink::<Cursor>::blocked(sink) {
                std::thread::sleep(TICK / 10);
            }
            let idle = read == 0 || !more;
            if idle && let Err(e) = j.wait(POLL) {
                tracing::error!(error = %e, "journal: waiting failed: opening the journal again");
                match self.reopen(sink) {
                    Some(again) => j = again,
                    None => break,
                }
            }
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                Sink::<Cursor>::tick(sink);
            }
        }
        Sink::<Cursor>::flush(sink);
    }

    /// Handle the entries there are, up to a batch, and write their logins and cursor.
    /// Returns how many were read, and whether the batch was full (more may be waiting).
    fn read_batch(&mut self, j: &mut Journal, sink: &mut StoreSink) -> Result<(usize, bool)> {
        let mut unsaved = None;
        let mut n = 0;
        let mut failed = None;
        // Too many logins wait for the store: the journal keeps the rest until they are written.
        while n < BATCH && !Sink::<Cursor>::blocked(sink) {
            match j.step() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
            n += 1;
            let e = match read_entry(j) {
                Ok(e) => e,
                Err(e) => {
                    // One entry that cannot be read does not stop the others.
                    Stats::bump(&self.leases.stats.errors);
                    tracing::warn!(error = %e, "journal: skipping an entry");
                    continue;
                }
            };
            self.last = Some(e.cursor.clone());
            match self.reader.entry(e, now_ms(), &self.counters, sink) {
                Handled::WithLogin => unsaved = None,
                Handled::Without(c) => unsaved = Some(c),
            }
        }
        if n > 0 {
            match unsaved {
                Some(c) => Sink::<Cursor>::checkpoint(sink, KEY, &Cursor(c)),
                None => Sink::<Cursor>::flush(sink),
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok((n, n == BATCH)),
        }
    }

    /// Open the journal again after a failure, once a second until it works. `None` when
    /// told to stop meanwhile.
    fn reopen(&mut self, sink: &mut StoreSink) -> Option<Journal> {
        loop {
            let until = Instant::now() + REOPEN_DELAY;
            while Instant::now() < until {
                if self.shutdown.is_shutdown() {
                    return None;
                }
                std::thread::sleep(POLL);
            }
            match self.open(sink) {
                Ok(j) => return Some(j),
                Err(e) => tracing::error!(error = %e, "journal: cannot open it: trying again"),
            }
        }
    }
}

/// A system journal file this process may not read, when it can read none: sd-journal then
/// shows only the user's own entries, without a word.
fn unreadable_system_journal() -> Option<std::path::PathBuf> {
    use nix::unistd::{AccessFlags, access};
    let mut found = None;
    for root in ["/var/log/journal", "/run/log/journal"] {
        let Ok(dirs) = std::fs::read_dir(root) else {
            continue;
        };
        for d in dirs.flatten() {
            let file = d.path().join("system.journal");
            if file.exists() {
                if access(&file, AccessFlags::R_OK).is_ok() {
                    return None;
                }
                found = Some(file);
            }
        }
    }
    found
}

/// The local journal, with the selection of `spec`.
fn open_selected(spec: &JournalSpec) -> Result<Journal> {
    let mut j = Journal::open_local()?;
    for m in spec.matches() {
        if m == "+" {
            j.add_disjunction()?;
        } else {
            j.add_match(&m)?;
        }
    }
    Ok(j)
}

/// The fields relaylease reads of the current entry.
fn read_entry(j: &mut Journal) -> Result<Entry> {
    let cursor = j.cursor()?;
    let realtime = j.realtime_us().ok();
    let mut failed = None;
    let e = Entry::from_fields(cursor, realtime, |name: &CStr| match j.data(name) {
        Ok(v) => v.filter(|v| v.len() <= MAX_FIELD).map(<[u8]>::to_vec),
        Err(e) => {
            failed = Some(e);
            None
        }
    });
    match failed {
        Some(err) => Err(err),
        None => Ok(e),
    }
}

/// One journal entry as a dry run sees it.
pub struct Seen<'a> {
    pub entry: &'a Entry,
    pub event: Event,
    /// Why the entry's writer is not believed, if it is not.
    pub refused: Option<Refusal>,
}

/// `parse-log --since`: how long ago (`90m`, `2days`), or a UTC time (`2026-11-22 03:00:00`,
/// `2026-11-22T03:00:00Z`), as ms since the epoch.
pub fn parse_since(s: &str, now: Millis) -> Result<Millis> {
    let s = s.trim();
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now.saturating_sub(d.as_millis() as Millis));
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|_| {
        Error::invalid(format!(
            "--since '{s}': how long ago (90m, 2days) or a UTC time (2026-11-22 03:00:00)"
        ))
    })?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis))
}

/// `parse-log --journal`: read the selected entries received since `since` (ms since the
/// epoch; else all), judging and parsing each as the daemon does, and hand them to `each`.
pub fn read_once(
    spec: &JournalSpec,
    since: Option<Millis>,
    patterns: &[regex::Regex],
    mut each: impl FnMut(Seen<'_>),
) -> Result<()> {
    let mut j = open_selected(spec)?;
    if let Some(ms) = since {
        j.seek_realtime_us(ms.saturating_mul(1000))?;
    }
    let mut trusted = LineParser::new(None, patterns.to_vec());
    let mut suspects = LineParser::new(None, Vec::new());
    while j.step()? {
        let entry = read_entry(&mut j)?;
        let refused = spec.trust.judge(&entry).err();
        let parser = if refused.is_none() {
            &mut trusted
        } else {
            &mut suspects
        };
        let event = parser.parse_message(entry.tag(), entry.log_pid(), entry.first_line());
        each(Seen {
            entry: &entry,
            event,
            refused,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::journal_proto::tests::{dovecot, entry, logger};
    use crate::sources::logparse::SessionKey;

    #[derive(Default)]
    struct VecSink {
        logins: Vec<(String, Option<String>, Millis, String)>,
        logouts: Vec<(String, Millis)>,
        no_address: u32,
    }

    impl Sink<Cursor> for VecSink {
        fn login(
            &mut self,
            login: Login,
            session: Option<SessionKey>,
            checkpoint: Option<(&str, &Cursor)>,
        ) {
            let (key, c) = checkpoint.expect("a journal login carries its cursor");
            assert_eq!(key, KEY);
            assert_eq!(login.source, SOURCE);
            self.logins.push((
                login.ip.to_string(),
                session.map(|s| s.to_string()),
                login.at,
                c.0.clone(),
            ));
        }
        fn logout(&mut self, session: SessionKey, at: Millis) {
            self.logouts.push((session.to_string(), at));
        }
        fn login_without_address(&mut self, source: &str, _user: Option<&str>) {
            assert_eq!(source, SOURCE);
            self.no_address += 1;
        }
        fn checkpoint(&mut self, _key: &str, _pos: &Cursor) {}
        fn saved(&mut self, _key: &str) -> Option<Cursor> {
            None
        }
    }

    fn trust() -> Trust {
        Trust {
            units: vec!["dovecot.service".into()],
            exes: DEFAULT_EXES.iter().map(|s| s.to_string()).collect(),
            uids: vec![],
            any_origin: false,
        }
    }

    const NOW: Millis = 2_000_000_000_000;
    const LOGIN: &str = "imap-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.7, lip=127.0.0.1, mpid=8176, secured, session=<CHtby9Rgd6N/AAAV>";
    const LOGOUT: &str =
        "imap(alice)<8176><CHtby9Rgd6N/AAAV>: Disconnected: Logged out in=50 out=1000";

    fn forged(counters: &Counters) -> u64 {
        counters.forged.load(std::sync::atomic::Ordering::Relaxed)
    }

    #[test]
    fn trusted_logins_and_session_ends_reach_the_sink_with_their_cursor_and_time() {
        let mut r = Reader::new(trust(), &[]);
        let (mut sink, stats) = (VecSink::default(), Counters::default());
        let got = r.entry(entry("c1", &dovecot(LOGIN)), NOW, &stats, &mut sink);
        assert_eq!(got, Handled::WithLogin);
        let got = r.entry(entry("c2", &dovecot(LOGOUT)), NOW, &stats, &mut sink);
        assert_eq!(got, Handled::Without("c2".into()));
        let session = "dovecot:dovecot/8176/CHtby9Rgd6N/AAAV".to_string();
        assert_eq!(
            sink.logins,
            [(
                "192.0.2.7".to_string(),
                Some(session.clone()),
                1_796_405_077_829,
                "c1".to_string()
            )]
        );
        assert_eq!(sink.logouts, [(session, 1_796_405_077_829)]);
        assert_eq!(forged(&stats), 0);
    }

    #[test]
    fn forged_logins_and_ends_are_counted_or_ignored_and_grant_nothing() {
        let mut r = Reader::new(trust(), &[]);
        let (mut sink, stats) = (VecSink::default(), Counters::default());
        let as_nobody = |mut f: Vec<(&'static str, &'static str)>| {
            f.retain(|(k, _)| *k != "_UID");
            f.push(("_UID", "65534"));
            f
        };
        for fields in [
            logger(LOGIN),
            as_nobody(logger(LOGIN)),
            as_nobody(dovecot(LOGIN)),
        ] {
            let got = r.entry(entry("f", &fields), NOW, &stats, &mut sink);
            assert_eq!(got, Handled::Without("f".into()));
        }
        for fields in [logger(LOGOUT), as_nobody(dovecot(LOGOUT))] {
            r.entry(entry("g", &fields), NOW, &stats, &mut sink);
        }
        assert!(sink.logins.is_empty() && sink.logouts.is_empty());
        assert_eq!(forged(&stats), 3);
        // Noise from an untrusted writer is not a forgery.
        r.entry(entry("h", &logger("hello")), NOW, &stats, &mut sink);
        assert_eq!(forged(&stats), 3);
    }

    /// popa3d logs the address on an earlier line of the same pid: a refused entry must not
    /// plant one for the server's next login.
    #[test]
    fn refused_entries_leave_nothing_in_the_parsers_state() {
        let t = Trust {
            exes: vec!["/usr/sbin/popa3d".into()],
            ..trust()
        };
        let mut r = Reader::new(t, &[]);
        let (mut sink, stats) = (VecSink::default(), Counters::default());
        let popa3d = |exe: &'static str, msg: &'static str| {
            vec![
                ("MESSAGE", msg),
                ("SYSLOG_IDENTIFIER", "popa3d"),
                ("SYSLOG_PID", "77"),
                ("_PID", "77"),
                ("_UID", "0"),
                ("_EXE", exe),
            ]
        };
        for (exe, msg) in [
            ("/usr/bin/logger", "connect from 10.6.6.6"),
            ("/usr/sbin/popa3d", "Authentication passed for alice"),
        ] {
            r.entry(entry("a", &popa3d(exe, msg)), NOW, &stats, &mut sink);
        }
        assert!(sink.logins.is_empty(), "{:?}", sink.logins);
        assert_eq!(sink.no_address, 1);
        for msg in ["connect from 192.0.2.8", "Authentication passed for bob"] {
            r.entry(
                entry("b", &popa3d("/usr/sbin/popa3d", msg)),
                NOW,
                &stats,
                &mut sink,
            );
        }
        assert_eq!(sink.logins.len(), 1);
        assert_eq!(sink.logins[0].0, "192.0.2.8");
    }

    #[test]
    fn spec_from_flags() {
        let args = JournalArgs {
            journal: true,
            journal_unit: vec!["dovecot".into(), "courier-imap.service".into()],
            journal_identifier: vec!["dovecot".into()],
            journal_trust_exe: vec!["/usr/sbin/rsyslogd".into()],
            journal_trust_user: vec!["0".into()],
            journal_any_origin: false,
        };
        let s = JournalSpec::from_args(&args).unwrap();
        assert_eq!(s.units, ["dovecot.service", "courier-imap.service"]);
        assert_eq!(s.trust.units, s.units);
        assert!(s.trust.exes.contains(&"/usr/sbin/rsyslogd".to_string()));
        assert!(s.trust.exes.contains(&"/usr/lib/dovecot/".to_string()));
        let bad = |f: fn(&mut JournalArgs)| {
            let mut a = args.clone();
            f(&mut a);
            JournalSpec::from_args(&a).unwrap_err().to_string()
        };
        for (e, needle) in [
            (
                bad(|a| a.journal_unit = vec!["a b".into()]),
                "--journal-unit 'a b'",
            ),
            (
                bad(|a| a.journal_identifier = vec![String::new()]),
                "--journal-identifier ''",
            ),
            (
                bad(|a| a.journal_trust_exe = vec!["rsyslogd".into()]),
                "absolute path",
            ),
            (
                bad(|a| a.journal_trust_user = vec!["no-such-user-here".into()]),
                "'no-such-user-here': no such user",
            ),
        ] {
            assert!(e.contains(needle), "{e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn since_is_a_time_ago_or_a_utc_time() {
        assert_eq!(parse_since("90m", NOW).unwrap(), NOW - 90 * 60 * 1000);
        assert_eq!(
            parse_since("2026-11-22 03:00:00", NOW).unwrap(),
            1_795_316_400_000
        );
        assert_eq!(
            parse_since("2026-11-22T03:00:00Z", NOW).unwrap(),
            1_795_316_400_000
        );
        let e = parse_since("yesterday", NOW).unwrap_err().to_string();
        assert!(e.starts_with("--since 'yesterday': "), "{e}");
    }

    #[test]
    fn cursors_are_stored_as_their_text() {
        let mut v = b"old".to_vec();
        Cursor("s=1;i=2".into()).store(&mut v);
        assert_eq!(v, b"s=1;i=2");
        assert_eq!(Cursor::load(&v), Some(Cursor("s=1;i=2".into())));
        assert_eq!(Cursor::load(b""), None);
        assert_eq!(Cursor::load(b"\xff"), None);
    }
}
