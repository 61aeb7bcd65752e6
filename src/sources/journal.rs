//! Logins from the systemd journal: `journalctl --follow --output=json` as a child process,
//! each entry judged by the fields journald takes from the kernel before its text is read.
//!
//! journalctl rather than libsystemd's sd-journal: the binary stays free of a link to
//! libsystemd (it starts on hosts without systemd), and journalctl already copes with
//! rotation, vacuuming and journald restarts. Should journalctl itself stop, it is started
//! again after the last entry processed.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use super::follow::Sink;
use super::journal_proto::{
    DEFAULT_EXES, DEFAULT_USERS, Entry, Forgeries, Start, Trust, follow_args, matches, parse_entry,
    unit_name,
};
use super::logparse::{Event, LineParser};
use super::{Mark, StoreSink};
use crate::cli::JournalArgs;
use crate::error::{Error, Result};
use crate::lease::{Login, Millis, now_ms};
use crate::store::{Leases, Stats};

/// The program run; found on `PATH`.
const JOURNALCTL: &str = "journalctl";
/// The lease source name of journal logins, and the key of the cursor among the meta records.
pub const SOURCE: &str = "journal";
const KEY: &str = "journal:cursor";
/// Entries held between the reading thread and the one that writes them.
const QUEUE: usize = 4096;
/// Entries handled before their logins and cursor are written, when more keep coming.
const BATCH: usize = 512;
/// A longer line from journalctl is skipped: no mail server logs that much in one entry.
const MAX_ENTRY: usize = 256 * 1024;
/// How often time-driven work runs (keeping open sessions' leases).
const TICK: Duration = Duration::from_secs(1);
/// How long after journalctl stopped it is started again.
const RESTART_DELAY: Duration = Duration::from_secs(1);
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
    warned_unreadable: bool,
}

impl Reader {
    fn new(trust: Trust, patterns: &[regex::Regex]) -> Reader {
        Reader {
            trust,
            parser: LineParser::new(None, patterns.to_vec()),
            suspects: LineParser::new(None, Vec::new()),
            forgeries: Forgeries::default(),
            warned_unreadable: false,
        }
    }

    fn entry(
        &mut self,
        line: &[u8],
        now: Millis,
        stats: &Stats,
        sink: &mut dyn Sink<Cursor>,
    ) -> Option<Handled> {
        let e = match parse_entry(line) {
            Ok(e) => e,
            Err(err) => {
                Stats::bump(&stats.errors);
                if !std::mem::replace(&mut self.warned_unreadable, true) {
                    tracing::warn!(error = %err, "journal: skipping an entry (said once)");
                }
                return None;
            }
        };
        if let Err(why) = self.trust.judge(&e) {
            if let Event::Login(ev) =
                self.suspects
                    .parse_message(e.tag(), e.log_pid(), e.first_line())
            {
                Stats::bump(&stats.forged);
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
            return Some(Handled::Without(e.cursor));
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
                    return Some(Handled::WithLogin);
                }
                None => sink.login_without_address(SOURCE, ev.user.as_deref()),
            },
            Event::Logout { session, .. } => sink.logout(session, at),
            Event::Failure(_) | Event::LooksLikeLogin | Event::Nothing => {}
        }
        Some(Handled::Without(e.cursor))
    }
}

/// Messages to the journal thread.
enum Input {
    /// One line journalctl printed, from the journalctl of this generation.
    Line(u64, Vec<u8>),
    /// That journalctl's output ended.
    Ended(u64),
    Stop,
}

/// The running journal source.
pub struct Journal {
    thread: std::thread::JoinHandle<()>,
    tx: mpsc::SyncSender<Input>,
}

impl Journal {
    /// Stop: the entries handled so far are written with their cursor, journalctl is stopped.
    pub fn stop(self) {
        let _ = self.tx.send(Input::Stop);
        let _ = self.thread.join();
    }
}

/// Follows the journal on threads of its own.
struct Follower {
    spec: JournalSpec,
    reader: Reader,
    leases: Arc<Leases>,
    /// When the daemon started: with no saved cursor, entries from then on are read.
    started: Millis,
    generation: u64,
    child: Option<Child>,
}

/// Start following the journal. The first journalctl starts before this returns, so a
/// missing journalctl stops the daemon's start.
pub fn start(
    spec: JournalSpec,
    patterns: &[regex::Regex],
    leases: Arc<Leases>,
    max_session_hold: Duration,
    started: Millis,
) -> Result<Journal> {
    let mut sink = StoreSink::new(leases.clone(), max_session_hold);
    let reader = Reader::new(spec.trust.clone(), patterns);
    let mut f = Follower {
        spec,
        reader,
        leases,
        started,
        generation: 0,
        child: None,
    };
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    f.spawn(&mut sink, &tx)?;
    tracing::info!(
        units = f.spec.units.join(","),
        identifiers = f.spec.identifiers.join(","),
        any_origin = f.spec.trust.any_origin,
        "following the journal"
    );
    let tx2 = tx.clone();
    let thread = std::thread::Builder::new()
        .name("journal".into())
        .spawn(move || f.run(&mut sink, tx2, rx))
        .map_err(|e| Error::net("start the journal thread", e))?;
    Ok(Journal { thread, tx })
}

impl Follower {
    /// Where reading (re)starts: after the saved cursor while the journal still holds it;
    /// else from the oldest entry that can still grant a lease; with none saved, from the
    /// daemon's start.
    fn start_point(&mut self, sink: &mut dyn Sink<Cursor>) -> Result<Start> {
        let Some(Cursor(c)) = sink.saved(KEY) else {
            return Ok(Start::Since(self.started));
        };
        if holds(&c)? {
            return Ok(Start::AfterCursor(c));
        }
        let window = self.leases.rules().window.as_millis() as Millis;
        tracing::warn!(cursor = %c,
            "journal: the entry read last is no longer in the journal (rotated or vacuumed away): reading from the oldest entry within the expiry window");
        Ok(Start::Since(now_ms().saturating_sub(window)))
    }

    /// Start journalctl and the threads that read its output.
    fn spawn(&mut self, sink: &mut dyn Sink<Cursor>, tx: &mpsc::SyncSender<Input>) -> Result<()> {
        let start = self.start_point(sink)?;
        let mut cmd = Command::new(JOURNALCTL);
        cmd.args(follow_args(&start, &self.spec.matches()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| Error::io("run", JOURNALCTL, e))?;
        tracing::debug!(start = ?start, pid = child.id(), "journalctl started");
        self.generation += 1;
        let generation = self.generation;
        if let Some(out) = child.stdout.take() {
            let tx = tx.clone();
            let _ = std::thread::Builder::new()
                .name("journal-read".into())
                .spawn(move || read_lines(out, generation, tx));
        }
        if let Some(err) = child.stderr.take() {
            let _ = std::thread::Builder::new()
                .name("journal-err".into())
                .spawn(move || {
                    for line in BufReader::new(err).lines().map_while(|l| l.ok()).take(1000) {
                        tracing::warn!(said = %crate::error::one_line(&line), "journalctl");
                    }
                });
        }
        self.child = Some(child);
        Ok(())
    }

    fn run(mut self, sink: &mut StoreSink, tx: mpsc::SyncSender<Input>, rx: mpsc::Receiver<Input>) {
        loop {
            let mut next = match rx.recv_timeout(TICK) {
                Ok(m) => Some(m),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => Some(Input::Stop),
            };
            // The entries that have arrived, up to a batch, are written together.
            let (mut unsaved, mut read, mut taken) = (None, false, 0);
            let end = loop {
                match next.take() {
                    Some(Input::Line(g, line)) => {
                        if g == self.generation {
                            self.handle(&line, sink, &mut unsaved);
                            read = true;
                        }
                        taken += 1;
                        if taken == BATCH {
                            break None;
                        }
                        next = rx.try_recv().ok();
                    }
                    other => break other,
                }
            };
            if read {
                save(sink, unsaved);
            }
            match end {
                Some(Input::Stop) => return self.stop(sink),
                Some(Input::Ended(g)) if g == self.generation && !self.restart(sink, &tx, &rx) => {
                    return self.stop(sink);
                }
                _ => {}
            }
            Sink::<Cursor>::tick(sink);
        }
    }

    fn handle(&mut self, line: &[u8], sink: &mut StoreSink, unsaved: &mut Option<String>) {
        match self.reader.entry(line, now_ms(), &self.leases.stats, sink) {
            Some(Handled::WithLogin) => *unsaved = None,
            Some(Handled::Without(c)) => *unsaved = Some(c),
            None => {}
        }
    }

    /// journalctl stopped by itself: say why and start it again after the last entry
    /// processed, until it runs. False when told to stop meanwhile.
    fn restart(
        &mut self,
        sink: &mut StoreSink,
        tx: &mpsc::SyncSender<Input>,
        rx: &mpsc::Receiver<Input>,
    ) -> bool {
        let status = self.child.take().map(|mut c| c.wait());
        tracing::warn!(status = ?status.and_then(|s| s.ok()),
            "journalctl stopped: following the journal again in {RESTART_DELAY:?}");
        loop {
            // Every line of the old journalctl came before its end: nothing of it is queued.
            let deadline = std::time::Instant::now() + RESTART_DELAY;
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                match rx.recv_timeout(left) {
                    Ok(Input::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return false,
                    Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                }
            }
            match self.spawn(sink, tx) {
                Ok(()) => return true,
                Err(e) => tracing::error!(error = %e,
                    "cannot follow the journal: trying again in {RESTART_DELAY:?}"),
            }
        }
    }

    fn stop(mut self, sink: &mut StoreSink) {
        Sink::<Cursor>::flush(sink);
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Write the logins handled, then the cursor of the last entry if no login carried it.
fn save(sink: &mut StoreSink, unsaved: Option<String>) {
    match unsaved {
        Some(c) => Sink::<Cursor>::checkpoint(sink, KEY, &Cursor(c)),
        None => Sink::<Cursor>::flush(sink),
    }
}

/// journalctl goes when the daemon does, even by SIGKILL.
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(std::io::Error::from)
        });
    }
}

/// Hand each line journalctl prints to the journal thread; an over-long one is skipped.
fn read_lines(out: impl Read, generation: u64, tx: mpsc::SyncSender<Input>) {
    let mut r = BufReader::with_capacity(64 * 1024, out);
    let mut line = Vec::new();
    let mut skipping = false;
    loop {
        let buf = match r.fill_buf() {
            Ok([]) => break,
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let (piece, complete) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], i + 1),
            None => (buf, 0),
        };
        let used = if complete > 0 { complete } else { buf.len() };
        if !skipping {
            line.extend_from_slice(piece);
            if line.len() > MAX_ENTRY {
                tracing::warn!(limit = MAX_ENTRY, "journal: skipping an over-long entry");
                line.clear();
                skipping = true;
            }
        }
        r.consume(used);
        if complete > 0 {
            if !skipping
                && tx
                    .send(Input::Line(generation, std::mem::take(&mut line)))
                    .is_err()
            {
                return;
            }
            skipping = false;
        }
    }
    let _ = tx.send(Input::Ended(generation));
}

/// Does the journal still hold the entry at `cursor`? journalctl seeks to the nearest entry
/// when it does not, so the cursor of the entry it shows there tells.
fn holds(cursor: &str) -> Result<bool> {
    let out = Command::new(JOURNALCTL)
        .args([
            &format!("--cursor={cursor}"),
            "--lines=1",
            "--output=json",
            "--output-fields=__CURSOR",
            "--no-pager",
            "--quiet",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| Error::io("run", JOURNALCTL, e))?;
    let first = out.stdout.split(|b| *b == b'\n').next().unwrap_or_default();
    Ok(out.status.success() && parse_entry(first).is_ok_and(|e| e.cursor == cursor))
}

/// One journal entry as a dry run sees it.
pub struct Seen<'a> {
    pub entry: &'a Entry,
    pub event: Event,
    /// Why the entry's writer is not believed, if it is not.
    pub refused: Option<super::journal_proto::Refusal>,
}

/// `parse-log --journal`: read the selected entries (since `since`, journalctl's syntax) once,
/// judging and parsing each as the daemon would, and hand them to `each`.
pub fn read_once(
    spec: &JournalSpec,
    since: Option<&str>,
    patterns: &[regex::Regex],
    mut each: impl FnMut(Seen<'_>),
) -> Result<()> {
    let mut args: Vec<String> = [
        "--output=json",
        "--all",
        "--no-pager",
        "--quiet",
        "--lines=all",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--output-fields={}", super::journal_proto::FIELDS));
    if let Some(s) = since {
        args.push(format!("--since={s}"));
    }
    args.extend(spec.matches());
    let mut child = Command::new(JOURNALCTL)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("run", JOURNALCTL, e))?;
    let err = child.stderr.take().map(|e| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(e).take(64 * 1024).read_to_string(&mut s);
            s
        })
    });
    let mut trusted = LineParser::new(None, patterns.to_vec());
    let mut suspects = LineParser::new(None, Vec::new());
    let mut unreadable = 0u64;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).split(b'\n') {
            let line = line.map_err(|e| Error::io("read the output of", JOURNALCTL, e))?;
            let Ok(entry) = parse_entry(&line) else {
                unreadable += 1;
                continue;
            };
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
    }
    let status = child
        .wait()
        .map_err(|e| Error::io("wait for", JOURNALCTL, e))?;
    let said = err.and_then(|t| t.join().ok()).unwrap_or_default();
    if !status.success() {
        let last = said
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(Error::invalid(format!(
            "journalctl failed ({status}): {}",
            crate::error::one_line(last.trim())
        )));
    }
    if unreadable > 0 {
        eprintln!("relaylease: {unreadable} journal entries could not be read");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
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
            self.logins.push((
                login.ip.to_string(),
                session.map(|s| s.to_string()),
                login.at,
                c.0.clone(),
            ));
            assert_eq!(login.source, SOURCE);
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

    fn entry(cursor: &str, uid: u32, exe: &str, ident: &str, msg: &str) -> Vec<u8> {
        serde_json::json!({
            "__CURSOR": cursor, "__REALTIME_TIMESTAMP": "1796405077829390",
            "_UID": uid.to_string(), "_EXE": exe, "_COMM": "log", "_PID": "25082",
            "SYSLOG_IDENTIFIER": ident, "MESSAGE": msg,
        })
        .to_string()
        .into_bytes()
    }

    const LOGIN: &str = "imap-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.7, lip=127.0.0.1, mpid=8176, secured, session=<CHtby9Rgd6N/AAAV>";
    const LOGOUT: &str =
        "imap(alice)<8176><CHtby9Rgd6N/AAAV>: Disconnected: Logged out in=50 out=1000";

    #[test]
    fn trusted_logins_and_session_ends_reach_the_sink_with_their_cursor_and_time() {
        let mut r = Reader::new(trust(), &[]);
        let (mut sink, stats) = (VecSink::default(), Stats::default());
        let dovecot = "/usr/lib/dovecot/log";
        let got = r.entry(
            &entry("c1", 0, dovecot, "dovecot", LOGIN),
            2e12 as u64,
            &stats,
            &mut sink,
        );
        assert_eq!(got, Some(Handled::WithLogin));
        let got = r.entry(
            &entry("c2", 0, dovecot, "dovecot", LOGOUT),
            2e12 as u64,
            &stats,
            &mut sink,
        );
        assert_eq!(got, Some(Handled::Without("c2".into())));
        assert_eq!(
            sink.logins,
            [(
                "192.0.2.7".to_string(),
                Some("dovecot:dovecot/8176/CHtby9Rgd6N/AAAV".to_string()),
                1_796_405_077_829,
                "c1".to_string()
            )]
        );
        assert_eq!(
            sink.logouts,
            [(
                "dovecot:dovecot/8176/CHtby9Rgd6N/AAAV".to_string(),
                1_796_405_077_829
            )]
        );
        assert_eq!(stats.forged.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    #[test]
    fn forged_logins_and_ends_are_counted_or_ignored_and_grant_nothing() {
        let mut r = Reader::new(trust(), &[]);
        let (mut sink, stats) = (VecSink::default(), Stats::default());
        for (uid, exe) in [
            (0, "/usr/bin/logger"),
            (65534, "/usr/bin/logger"),
            (65534, "/usr/lib/dovecot/log"),
        ] {
            let got = r.entry(
                &entry("f", uid, exe, "dovecot", LOGIN),
                2e12 as u64,
                &stats,
                &mut sink,
            );
            assert_eq!(got, Some(Handled::Without("f".into())));
            r.entry(
                &entry("g", uid, exe, "dovecot", LOGOUT),
                2e12 as u64,
                &stats,
                &mut sink,
            );
        }
        assert!(sink.logins.is_empty() && sink.logouts.is_empty());
        assert_eq!(stats.forged.load(std::sync::atomic::Ordering::Relaxed), 3);
        // Noise from an untrusted writer is not a forgery.
        r.entry(
            &entry("h", 0, "/usr/bin/logger", "dovecot", "hello"),
            0,
            &stats,
            &mut sink,
        );
        assert_eq!(stats.forged.load(std::sync::atomic::Ordering::Relaxed), 3);
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
        let (mut sink, stats) = (VecSink::default(), Stats::default());
        let line = |cursor: &str, exe: &str, msg: &str| {
            serde_json::json!({
                "__CURSOR": cursor, "_UID": "0", "_EXE": exe, "_PID": "77",
                "SYSLOG_IDENTIFIER": "popa3d", "SYSLOG_PID": "77", "MESSAGE": msg,
            })
            .to_string()
            .into_bytes()
        };
        r.entry(
            &line("a", "/usr/bin/logger", "connect from 10.6.6.6"),
            1,
            &stats,
            &mut sink,
        );
        r.entry(
            &line("b", "/usr/sbin/popa3d", "Authentication passed for alice"),
            1,
            &stats,
            &mut sink,
        );
        assert!(sink.logins.is_empty(), "{:?}", sink.logins);
        assert_eq!(sink.no_address, 1);
        r.entry(
            &line("c", "/usr/sbin/popa3d", "connect from 192.0.2.8"),
            1,
            &stats,
            &mut sink,
        );
        r.entry(
            &line("d", "/usr/sbin/popa3d", "Authentication passed for bob"),
            1,
            &stats,
            &mut sink,
        );
        assert_eq!(sink.logins.len(), 1);
        assert_eq!(sink.logins[0].0, "192.0.2.8");
    }

    #[test]
    fn unreadable_lines_move_nothing() {
        let mut r = Reader::new(trust(), &[]);
        let (mut sink, stats) = (VecSink::default(), Stats::default());
        assert_eq!(r.entry(b"{", 1, &stats, &mut sink), None);
        assert_eq!(r.entry(b"{\"MESSAGE\":\"x\"}", 1, &stats, &mut sink), None);
        assert_eq!(stats.errors.load(std::sync::atomic::Ordering::Relaxed), 2);
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
        for (args, needle) in [
            (
                JournalArgs {
                    journal_unit: vec!["a b".into()],
                    ..args.clone()
                },
                "--journal-unit 'a b'",
            ),
            (
                JournalArgs {
                    journal_identifier: vec![String::new()],
                    ..args.clone()
                },
                "--journal-identifier ''",
            ),
            (
                JournalArgs {
                    journal_trust_exe: vec!["rsyslogd".into()],
                    ..args.clone()
                },
                "absolute path",
            ),
            (
                JournalArgs {
                    journal_trust_user: vec!["no-such-user-here".into()],
                    ..args.clone()
                },
                "'no-such-user-here': no such user",
            ),
        ] {
            let e = JournalSpec::from_args(&args).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
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
