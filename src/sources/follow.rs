//! Following log files in real time: inotify on the parent directory plus a slow stat pass,
//! safe across every kind of rotation, resuming after a restart where it stopped.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::logparse::{Event, LineParser, SessionKey, Stamp, resolve_stamp};
use super::watch_trust;
use crate::lease::{Login, Millis, now_ms};

/// Longest line read; a longer one is skipped with a warning.
pub const MAX_LINE: usize = 64 * 1024;
/// How many leading bytes identify a file across restarts and truncations.
const FINGERPRINT_LEN: u64 = 256;
/// The safety-net stat pass, for file systems without inotify and for lost events.
pub const STAT_PASS: Duration = Duration::from_secs(1);
/// After a rename rotation, the old file is still read until it has been quiet this long
/// (syslog daemons write to it until logrotate's postrotate signal reaches them).
const DRAIN_QUIET: Duration = Duration::from_secs(3);
const READ_CHUNK: usize = 64 * 1024;

/// Where reading a file stopped: enough to find the same file and place after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
    /// FNV-1a of the first `fp_len` bytes of the file.
    pub fingerprint: u64,
    pub fp_len: u64,
}

/// What the follower hands its logins and positions to. `P` is where a source stopped: a
/// file's [`Position`], or the journal's cursor.
pub trait Sink<P = Position> {
    /// A login, with the server's name for its session where the end is logged too, and the
    /// position just after its line (`None` for a file whose position is not kept): storing
    /// both together makes a restart neither replay nor miss it.
    fn login(&mut self, login: Login, session: Option<SessionKey>, checkpoint: Option<(&str, &P)>);
    /// A session ended at `at` (its line follows a checkpoint like any other).
    fn logout(&mut self, _session: SessionKey, _at: Millis) {}
    /// Called at least once a second: time-driven work (keeping open sessions' leases).
    fn tick(&mut self) {}
    /// Reading advanced without a login.
    fn checkpoint(&mut self, key: &str, pos: &P);
    /// A login line that names no address (Mailutils' default logging): nothing to grant.
    fn login_without_address(&mut self, _source: &str, _user: Option<&str>) {}
    /// The position saved by an earlier run, if any.
    fn saved(&mut self, key: &str) -> Option<P>;
    /// The end of a chunk read: logins handed over since the last flush may be written
    /// together (with the position of the last one).
    fn flush(&mut self) {}
    /// Too many logins wait to be written: read nothing more for now (what is not read
    /// stays behind the saved position, and is read once this says false again).
    fn blocked(&self) -> bool {
        false
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn fingerprint(file: &mut File, len: u64) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::FileExt;
    let n = len.min(FINGERPRINT_LEN) as usize;
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match file.read_at(&mut buf[got..], got as u64)? {
            0 => break,
            k => got += k,
        }
    }
    Ok((fnv1a(&buf[..got]), got as u64))
}

/// Read until `buf` is full or the stream ends; how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// One open file being read.
struct Tail {
    file: File,
    dev: u64,
    ino: u64,
    /// Bytes consumed so far: the start of `partial`.
    offset: u64,
    partial: Vec<u8>,
    /// Inside an over-long line: drop bytes until its newline.
    skipping: bool,
    fp: (u64, u64),
    /// The file at `NAME.1` (device, inode) just before we opened this one: a copy made
    /// there later may hold lines we never saw.
    copy_before: Option<(u64, u64)>,
    /// Its mode or owner let every user write it while it was open: what it held then was
    /// skipped (said once), and only what is written after a fix is read.
    refused: bool,
}

impl Tail {
    fn open(path: &Path) -> std::io::Result<Tail> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        let fp = fingerprint(&mut file, meta.len())?;
        Ok(Tail {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            offset: 0,
            partial: Vec::new(),
            skipping: false,
            fp,
            copy_before: None,
            refused: false,
        })
    }

    fn position(&self, offset: u64) -> Position {
        Position {
            dev: self.dev,
            ino: self.ino,
            offset,
            fingerprint: self.fp.0,
            fp_len: self.fp.1,
        }
    }

    fn seek(&mut self, offset: u64) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.offset = offset;
        self.partial.clear();
        self.skipping = false;
        Ok(())
    }

    /// Are the file's first bytes no longer the ones we started reading (or is it now
    /// shorter than what we consumed)? Then it was truncated and written again.
    fn rewritten(&mut self) -> bool {
        let len = self.file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
        len < self.offset
            || (self.fp.1 > 0
                && fingerprint(&mut self.file, self.fp.1).is_ok_and(|fp| fp != self.fp))
    }

    /// A file first seen short is identified by more bytes as it grows, once we know its
    /// first bytes are still the ones we saw.
    fn widen_fingerprint(&mut self) {
        if self.fp.1 >= FINGERPRINT_LEN {
            return;
        }
        let len = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        if len > self.fp.1 && !self.rewritten() {
            self.fp = fingerprint(&mut self.file, len).unwrap_or(self.fp);
        }
    }

    /// Does the saved position describe this file?
    fn matches(&mut self, p: &Position) -> bool {
        if p.dev != self.dev || p.ino != self.ino {
            return false;
        }
        let len = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        len >= p.offset
            && fingerprint(&mut self.file, p.fp_len).is_ok_and(|fp| fp == (p.fingerprint, p.fp_len))
    }
}

/// One watched log file.
pub struct Follower {
    path: PathBuf,
    /// Position key in the store, and the lease source name.
    key: String,
    source: String,
    parser: LineParser,
    cur: Option<Tail>,
    /// Previous files after rename rotations, oldest first, each read until quiet.
    old: Vec<(Tail, Instant)>,
    /// True until the first open: a file that exists when we start is read from its end
    /// (old logins are not replayed) unless a saved position says otherwise.
    first: bool,
    buf: Vec<u8>,
    pub lines: u64,
    /// `--watch-insecure`: follow the file even when ordinary users can write it.
    trust_any: bool,
    /// The user the daemon started as: it may own the file (see [`watch_trust::risk`]).
    own_uid: u32,
    /// The file (device, inode) last refused as untrusted, so that it is said once.
    refused: Option<(u64, u64)>,
}

impl Follower {
    pub fn new(path: PathBuf, parser: LineParser) -> Self {
        let source = path.display().to_string();
        Follower {
            key: format!("pos:{source}"),
            source,
            path,
            parser,
            cur: None,
            old: Vec::new(),
            first: true,
            buf: Vec::new(),
            lines: 0,
            trust_any: false,
            own_uid: nix::unistd::geteuid().as_raw(),
            refused: None,
        }
    }

    /// `--watch-insecure`: follow the file even when ordinary users could write it.
    pub fn trust_any(mut self, yes: bool) -> Self {
        self.trust_any = yes;
        self
    }

    /// Why the file at the path, as it is now, cannot be trusted (see [`watch_trust`]):
    /// the start-up check. None when it can, or when `--watch-insecure` says so.
    pub fn untrusted(&self) -> Option<String> {
        if self.trust_any {
            return None;
        }
        watch_trust::check(&self.path, None, self.own_uid)
            .map(|why| watch_trust::refusal(&self.path, &why))
    }

    /// Whether an opened file may be read: what ordinary users can write is refused
    /// (logged once per file) and read later only if its permissions are fixed.
    fn trusted(&mut self, t: &Tail) -> bool {
        if self.trust_any {
            return true;
        }
        let Some(why) = t
            .file
            .metadata()
            .ok()
            .map_or(Some("cannot be examined".to_string()), |m| {
                watch_trust::check(&self.path, Some(&m), self.own_uid)
            })
        else {
            self.refused = None;
            return true;
        };
        if self.refused != Some((t.dev, t.ino)) {
            self.refused = Some((t.dev, t.ino));
            tracing::error!(path = %self.path.display(), "{}: nothing read from it", watch_trust::refusal(&self.path, &why));
        }
        false
    }

    /// The open file's own mode and owner, looked at again (one fstat) before its bytes are
    /// used: a file opened while trusted can be made writable by every user later.
    fn still_trusted(&mut self, t: &mut Tail) -> bool {
        if self.trust_any {
            return true;
        }
        let why = match t.file.metadata() {
            Ok(m) => watch_trust::file_risk(watch_trust::Owner::from(&m), self.own_uid),
            Err(e) => Some(format!("cannot be examined: {e}")),
        };
        match why {
            None => {
                if t.refused {
                    t.refused = false;
                    tracing::warn!(path = %self.path.display(), "the log file's permissions were fixed: following it again from here; what was written before is not read");
                }
                true
            }
            Some(why) => {
                if !t.refused {
                    t.refused = true;
                    // Said once for this file, here and when it is opened again.
                    self.refused = Some((t.dev, t.ino));
                    tracing::error!(path = %self.path.display(), "{}: what it holds now is skipped", watch_trust::refusal(&self.path, &why));
                }
                false
            }
        }
    }

    /// Skip everything in the file up to its end, and remember that place: nothing written
    /// while the file was untrusted is read, not even after a restart.
    fn skip_to_end(&self, t: &mut Tail, sink: &mut dyn Sink) {
        match t.file.seek(SeekFrom::End(0)) {
            Ok(end) => {
                t.offset = end;
                t.partial.clear();
                t.skipping = false;
                sink.checkpoint(&self.key, &t.position(end));
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot seek in log file")
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Forget open files (SIGHUP); the next poll opens them again where they were.
    pub fn reopen(&mut self, sink: &mut dyn Sink) {
        if let Some(t) = self.cur.take() {
            let same =
                std::fs::metadata(&self.path).is_ok_and(|m| m.dev() == t.dev && m.ino() == t.ino);
            if same {
                sink.checkpoint(&self.key, &t.position(t.offset));
            } else {
                // Renamed before a poll noticed (logrotate's postrotate sends SIGHUP right
                // after the rename): drain it as a poll would, or its rest is lost.
                tracing::info!(path = %self.path.display(), "log file rotated: reading the new file");
                self.retire(t, sink);
            }
        }
        self.first = false;
    }

    /// Read everything new, noticing rotation and truncation first so that no byte of a
    /// new file is read at an old file's offset.
    pub fn poll(&mut self, sink: &mut dyn Sink) {
        match std::fs::metadata(&self.path) {
            Ok(meta) => {
                let replaced = self
                    .cur
                    .as_ref()
                    .is_some_and(|t| t.dev != meta.dev() || t.ino != meta.ino());
                if replaced && let Some(t) = self.cur.take() {
                    tracing::info!(path = %self.path.display(), "log file rotated: reading the new file");
                    // The old file first: its lines were written before the new file's.
                    self.retire(t, sink);
                }
                match self.cur.take() {
                    None => self.open(sink),
                    Some(mut t) => {
                        if t.offset == 0 && t.fp.1 == 0 && t.partial.is_empty() {
                            self.catch_up_unseen_copy(&mut t, sink);
                        }
                        let mut truncated = meta.len() < t.offset || t.rewritten();
                        let mut rewinds = 0;
                        loop {
                            if truncated {
                                if rewinds == 3 {
                                    // Truncated again and again while we read: leave it to
                                    // the next poll rather than spin here.
                                    tracing::warn!(path = %self.path.display(), "log file keeps being truncated");
                                    break;
                                }
                                rewinds += 1;
                                tracing::info!(path = %self.path.display(), "log file truncated: reading from the start");
                                // copytruncate copied the file to NAME.1 first: what we had
                                // not read yet is there.
                                self.catch_up_from_copy(&t, sink);
                                if let Err(e) = t.seek(0) {
                                    tracing::warn!(path = %self.path.display(), error = %e, "cannot rewind");
                                    break;
                                }
                                t.fp = (fnv1a(&[]), 0);
                                // The copy there now has been read: only a later one counts.
                                t.copy_before = self.copy_id();
                            }
                            truncated = self.read(&mut t, sink);
                            if !truncated {
                                break;
                            }
                        }
                        self.cur = Some(t);
                    }
                }
            }
            Err(e) => {
                if let Some(mut t) = self.cur.take() {
                    if e.kind() == ErrorKind::NotFound {
                        tracing::info!(path = %self.path.display(), "log file moved away or removed: waiting for a new one");
                        self.retire(t, sink);
                    } else {
                        self.read(&mut t, sink);
                        tracing::warn!(path = %self.path.display(), error = %e, "cannot stat log file");
                        self.cur = Some(t);
                    }
                }
                self.first = false;
            }
        }
        let old = std::mem::take(&mut self.old);
        for (mut t, quiet_since) in old {
            let before = t.offset + t.partial.len() as u64;
            self.read(&mut t, sink);
            let grew = t.offset + t.partial.len() as u64 > before;
            let since = if grew { Instant::now() } else { quiet_since };
            // Not read to its end while the sink waited for the store: kept until it is.
            if since.elapsed() < DRAIN_QUIET || sink.blocked() {
                self.old.push((t, since));
            }
        }
    }

    /// The current file was renamed away: read it to its end and keep draining it. A reader
    /// that fell more than one rotation behind (the log rotated again while it was still
    /// reading this file) never opened the generations in between: they are found as
    /// `NAME.1`, `NAME.2`... newer than this file, and read from their start. Every file is
    /// opened, the new one at the path too, before the long reads, so that renames meanwhile
    /// cannot hide one; they are read oldest first.
    fn retire(&mut self, t: Tail, sink: &mut dyn Sink) {
        let skipped = self.skipped_generations(&t);
        let next = self.open_positioned(sink);
        let first_new = self.old.len();
        self.old.push((t, Instant::now()));
        for (name, s) in skipped {
            tracing::warn!(path = %self.path.display(), skipped = %name.display(),
                "fell more than one rotation behind: reading the generation in between too");
            self.old.push((s, Instant::now()));
        }
        let mut old = std::mem::take(&mut self.old);
        for (t, since) in old.iter_mut().skip(first_new) {
            self.read(t, sink);
            *since = Instant::now();
        }
        old.append(&mut self.old);
        self.old = old;
        self.cur = next;
    }

    /// Rotated generations newer than `t` that were never opened, oldest first. Only when
    /// `t` itself is found among them: otherwise their order is unknown.
    fn skipped_generations(&self, t: &Tail) -> Vec<(PathBuf, Tail)> {
        const GENERATIONS: u32 = 100;
        let id = |m: &std::fs::Metadata| (m.dev(), m.ino());
        let current = std::fs::metadata(&self.path).ok().map(|m| id(&m));
        let known =
            |d: (u64, u64)| Some(d) == current || self.old.iter().any(|(o, _)| (o.dev, o.ino) == d);
        let mut newer = Vec::new();
        for n in 1..=GENERATIONS {
            let mut name = self.path.as_os_str().to_os_string();
            name.push(format!(".{n}"));
            let name = PathBuf::from(name);
            let Ok(meta) = std::fs::metadata(&name) else {
                return Vec::new();
            };
            if id(&meta) == (t.dev, t.ino) {
                newer.reverse();
                return newer;
            }
            if known(id(&meta)) {
                continue;
            }
            match Tail::open(&name) {
                Ok(s) => newer.push((name, s)),
                Err(_) => return Vec::new(),
            }
        }
        Vec::new()
    }

    fn open(&mut self, sink: &mut dyn Sink) {
        if let Some(mut t) = self.open_positioned(sink) {
            self.read(&mut t, sink);
            self.cur = Some(t);
        }
    }

    /// Open the file at the path, placed where reading it starts, without reading it.
    fn open_positioned(&mut self, sink: &mut dyn Sink) -> Option<Tail> {
        let copy_before = self.copy_id();
        let mut t = match Tail::open(&self.path) {
            Ok(t) => t,
            Err(e) => {
                if e.kind() != ErrorKind::NotFound {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot open log file");
                }
                return None;
            }
        };
        t.copy_before = copy_before;
        let refused_before = self.refused == Some((t.dev, t.ino));
        if !self.trusted(&t) {
            return None;
        }
        let first = std::mem::replace(&mut self.first, false);
        let saved = sink.saved(&self.key);
        let start = match saved {
            // Refused earlier, its permissions fixed since: what anyone could write into it
            // meanwhile is not read.
            _ if refused_before => {
                tracing::warn!(path = %self.path.display(), "the log file's permissions were fixed: following it from its end; what was written before is not read");
                t.file.metadata().map(|m| m.len()).unwrap_or(0)
            }
            Some(p) if t.matches(&p) => p.offset,
            Some(p) if first => {
                // Rotated while we were stopped: finish the old file if it sits beside.
                self.resume_rotated(&p, sink);
                0
            }
            // A new file after a rotation seen live: the old one is being drained.
            Some(_) => 0,
            None if first => t.file.metadata().map(|m| m.len()).unwrap_or(0),
            None => 0,
        };
        if let Err(e) = t.seek(start) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot seek in log file");
            return None;
        }
        tracing::debug!(path = %self.path.display(), offset = start, "following log file");
        sink.checkpoint(&self.key, &t.position(start));
        Some(t)
    }

    /// logrotate's first generation is `NAME.1`, or `NAME.1.gz` with `compress` and without
    /// `delaycompress`; read what it holds past our saved place.
    fn resume_rotated(&mut self, p: &Position, sink: &mut dyn Sink) {
        let name = self.copy_path();
        if let Ok(mut t) = Tail::open(&name)
            && t.matches(p)
            && t.seek(p.offset).is_ok()
        {
            tracing::info!(path = %Path::new(&name).display(), "reading the rest of the file rotated while stopped");
            // Positions in the rotated file must not overwrite the current file's.
            let mut detached = Detached { inner: sink };
            self.read(&mut t, &mut detached);
            return;
        }
        let mut gz = name.into_os_string();
        gz.push(".gz");
        self.resume_compressed(Path::new(&gz), p, sink);
    }

    /// The file we were reading, rotated and compressed while we were stopped: a new inode,
    /// so it is known by the fingerprint of its first (uncompressed) bytes alone, and read
    /// from the saved offset on.
    fn resume_compressed(&mut self, name: &Path, p: &Position, sink: &mut dyn Sink) {
        let Ok(file) = File::open(name) else {
            return;
        };
        if !self.trust_any {
            let why = match file.metadata() {
                Ok(m) => watch_trust::file_risk(watch_trust::Owner::from(&m), self.own_uid),
                Err(e) => Some(format!("cannot be examined: {e}")),
            };
            if let Some(why) = why {
                tracing::error!(path = %name.display(), "{}: not read", watch_trust::refusal(name, &why));
                return;
            }
        }
        let mut z = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
        let mut head = vec![0u8; p.fp_len.min(FINGERPRINT_LEN) as usize];
        let ours = read_full(&mut z, &mut head).is_ok_and(|n| n == head.len())
            && (fnv1a(&head), head.len() as u64) == (p.fingerprint, p.fp_len);
        if !ours {
            return;
        }
        // To the saved offset: within the bytes read already, or past them.
        let held = head.len() as u64;
        let rest: Box<dyn Read> = if p.offset <= held {
            head.drain(..p.offset as usize);
            Box::new(std::io::Cursor::new(head).chain(z))
        } else {
            let skip = p.offset - held;
            match std::io::copy(&mut (&mut z).take(skip), &mut std::io::sink()) {
                Ok(n) if n == skip => Box::new(z),
                // Shorter than where we stopped: not the file we were reading.
                _ => return,
            }
        };
        tracing::info!(path = %name.display(), "reading the rest of the file rotated and compressed while stopped");
        let mut detached = Detached { inner: sink };
        self.read_stream(name, rest, &mut detached);
    }

    /// Every line of a finished file read as a stream (a decompressed generation): no
    /// position is kept in it, as it is read once, at start.
    fn read_stream(&mut self, name: &Path, mut r: Box<dyn Read>, sink: &mut dyn Sink) {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut partial: Vec<u8> = Vec::new();
        let mut skipping = false;
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(path = %name.display(), error = %e, "cannot read the compressed log file: the rest of it is skipped");
                    break;
                }
            };
            let mut chunk = &buf[..n];
            while let Some(i) = memchr::memchr(b'\n', chunk) {
                if skipping {
                    skipping = false;
                } else if partial.is_empty() {
                    self.stream_line(&chunk[..i], sink);
                } else {
                    partial.extend_from_slice(&chunk[..i]);
                    let line = std::mem::take(&mut partial);
                    if line.len() > MAX_LINE {
                        self.too_long();
                    } else {
                        self.stream_line(&line, sink);
                    }
                }
                chunk = &chunk[i + 1..];
            }
            if !skipping {
                partial.extend_from_slice(chunk);
                if partial.len() > MAX_LINE {
                    self.too_long();
                    partial.clear();
                    skipping = true;
                }
            }
            sink.flush();
        }
        // A finished file: its last line is whole even without a newline.
        if !skipping && !partial.is_empty() {
            self.stream_line(&partial, sink);
            sink.flush();
        }
    }

    fn stream_line(&mut self, line: &[u8], sink: &mut dyn Sink) {
        match self.line(line) {
            Some(Found::Login(login, session)) => sink.login(login, session, None),
            Some(Found::Logout(session, at)) => sink.logout(session, at),
            Some(Found::NoAddress(user)) => {
                sink.login_without_address(&self.source, user.as_deref())
            }
            None => {}
        }
    }

    /// After a truncation, read the rest of our old content from its copy `NAME.1`, when
    /// its first bytes are the ones we were reading.
    fn catch_up_from_copy(&mut self, t: &Tail, sink: &mut dyn Sink) {
        let Ok(mut copy) = Tail::open(&self.copy_path()) else {
            return;
        };
        let same = fingerprint(&mut copy.file, t.fp.1).is_ok_and(|fp| fp == t.fp);
        let len = copy.file.metadata().map(|m| m.len()).unwrap_or(0);
        if same && len > t.offset && copy.seek(t.offset).is_ok() {
            // A partial line we held is complete in the copy: read it again from its start.
            let mut detached = Detached { inner: sink };
            self.read(&mut copy, &mut detached);
        }
    }

    /// logrotate's first generation `NAME.1`, where copytruncate leaves its copy.
    fn copy_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_os_string();
        name.push(".1");
        PathBuf::from(name)
    }

    /// The file at [`Self::copy_path`] now, as (device, inode).
    fn copy_id(&self) -> Option<(u64, u64)> {
        std::fs::metadata(self.copy_path())
            .ok()
            .map(|m| (m.dev(), m.ino()))
    }

    /// A file that was empty when we opened it has no fingerprint, so a copytruncate that
    /// copies and empties it before we read a byte (a daemon starved of CPU) looks like
    /// nothing happened. The copy tells: a new file at `NAME.1` since we opened this one (a
    /// rename rotation puts the old file there before the new one is created, so that one
    /// was there already), when this file no longer starts with it, holds lines we never
    /// read.
    fn catch_up_unseen_copy(&mut self, t: &mut Tail, sink: &mut dyn Sink) {
        // A stat first: an empty log is polled at every event in its directory, and the
        // copy there is almost always one already known.
        let name = self.copy_path();
        let Ok(meta) = std::fs::metadata(&name) else {
            return;
        };
        let id = (meta.dev(), meta.ino());
        let known = Some(id) == t.copy_before
            || id == (t.dev, t.ino)
            || self.old.iter().any(|(o, _)| (o.dev, o.ino) == id);
        if known || meta.len() == 0 {
            return;
        }
        let Ok(mut copy) = Tail::open(&name) else {
            return;
        };
        let n = meta.len().min(FINGERPRINT_LEN);
        let Ok(theirs) = fingerprint(&mut copy.file, n) else {
            return;
        };
        let len = t.file.metadata().map(|m| m.len()).unwrap_or(0);
        if len >= n && fingerprint(&mut t.file, n).is_ok_and(|fp| fp == theirs) {
            // Copied but not truncated yet: the lines are read from the file itself.
            return;
        }
        t.copy_before = Some(id);
        tracing::info!(path = %self.path.display(), copy = %name.display(),
            "log file truncated before it was read: reading its copy");
        let mut detached = Detached { inner: sink };
        self.read(&mut copy, &mut detached);
    }

    /// Read to the end of the file. Returns true when it stopped because the file was
    /// truncated under it (the chunk read then is not used: it may be the new content).
    fn read(&mut self, t: &mut Tail, sink: &mut dyn Sink) -> bool {
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(READ_CHUNK, 0);
        let mut truncated = false;
        loop {
            if sink.blocked() {
                break;
            }
            let n = match t.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot read log file");
                    break;
                }
            };
            // copytruncate: did the file start over under us? Checked after the read, so
            // the bytes just read are known to be the old file's.
            if t.rewritten() {
                truncated = true;
                break;
            }
            // Opened while trusted, made writable by everyone since: the bytes just read
            // may be anyone's. Checked after the read, like the truncation.
            if !self.still_trusted(t) {
                self.skip_to_end(t, sink);
                break;
            }
            t.widen_fingerprint();
            let chunk = &buf[..n];
            let mut start = 0;
            let mut advanced_without_login = false;
            while let Some(i) = memchr::memchr(b'\n', &chunk[start..]) {
                let end = start + i;
                let line_end_offset = t.offset + t.partial.len() as u64 + (end - start) as u64 + 1;
                if t.skipping {
                    t.skipping = false;
                    t.partial.clear();
                    t.offset = line_end_offset;
                    advanced_without_login = true;
                } else {
                    let piece = &chunk[start..end];
                    let found = if t.partial.is_empty() {
                        self.line(piece)
                    } else {
                        t.partial.extend_from_slice(piece);
                        let line = std::mem::take(&mut t.partial);
                        let r = if line.len() > MAX_LINE {
                            self.too_long();
                            None
                        } else {
                            self.line(&line)
                        };
                        t.partial = line;
                        t.partial.clear();
                        r
                    };
                    t.offset = line_end_offset;
                    let pos = t.position(t.offset);
                    match found {
                        Some(Found::Login(login, session)) => {
                            sink.login(login, session, Some((&self.key, &pos)));
                            advanced_without_login = false;
                        }
                        Some(Found::Logout(session, at)) => {
                            sink.logout(session, at);
                            advanced_without_login = true;
                        }
                        Some(Found::NoAddress(user)) => {
                            sink.login_without_address(&self.source, user.as_deref());
                            advanced_without_login = true;
                        }
                        None => advanced_without_login = true,
                    }
                }
                start = end + 1;
            }
            let rest = &chunk[start..];
            if t.skipping {
                t.offset += rest.len() as u64;
            } else {
                t.partial.extend_from_slice(rest);
                if t.partial.len() > MAX_LINE {
                    self.too_long();
                    t.offset += t.partial.len() as u64;
                    t.partial.clear();
                    t.skipping = true;
                }
            }
            sink.flush();
            if advanced_without_login {
                sink.checkpoint(&self.key, &t.position(t.offset));
            }
        }
        self.buf = buf;
        truncated
    }

    fn too_long(&self) {
        tracing::warn!(path = %self.path.display(), limit = MAX_LINE, "skipping a log line longer than the limit");
    }

    fn line(&mut self, line: &[u8]) -> Option<Found> {
        self.lines += 1;
        match self.parser.parse(line) {
            Event::Login(ev) => {
                let Some(ip) = ev.ip else {
                    return Some(Found::NoAddress(ev.user));
                };
                Some(Found::Login(
                    Login {
                        ip,
                        user: ev.user,
                        at: line_time(ev.stamp.as_ref()),
                        source: self.source.clone(),
                    },
                    ev.session,
                ))
            }
            Event::Logout { session, stamp } => {
                Some(Found::Logout(session, line_time(stamp.as_ref())))
            }
            _ => None,
        }
    }
}

/// When a line was written: its own stamp where it has one, else now.
fn line_time(stamp: Option<&Stamp>) -> Millis {
    let now = now_ms();
    stamp.and_then(|s| resolve_stamp(s, now)).unwrap_or(now)
}

enum Found {
    Login(Login, Option<SessionKey>),
    Logout(SessionKey, Millis),
    NoAddress(Option<String>),
}

/// Passes logins on but keeps positions to itself (for a rotated file read at start).
struct Detached<'a> {
    inner: &'a mut dyn Sink,
}

impl Sink for Detached<'_> {
    fn login(
        &mut self,
        login: Login,
        session: Option<SessionKey>,
        _checkpoint: Option<(&str, &Position)>,
    ) {
        self.inner.login(login, session, None);
    }
    fn logout(&mut self, session: SessionKey, at: Millis) {
        self.inner.logout(session, at);
    }
    fn checkpoint(&mut self, _key: &str, _pos: &Position) {}
    fn login_without_address(&mut self, source: &str, user: Option<&str>) {
        self.inner.login_without_address(source, user);
    }
    fn saved(&mut self, _key: &str) -> Option<Position> {
        None
    }
    fn flush(&mut self) {
        self.inner.flush();
    }
}

/// Messages to the follower thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg {
    /// Something changed in a watched directory.
    Changed,
    /// SIGHUP: reopen the files.
    Reopen,
    Stop,
}

/// Follow `followers` until `Msg::Stop`. Runs on its own thread: file reads block.
pub fn run(
    mut followers: Vec<Follower>,
    sink: &mut dyn Sink,
    tx: mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
) {
    let dirs: BTreeSet<PathBuf> = followers
        .iter()
        .map(|f| {
            f.path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf()
        })
        .collect();
    let watcher = {
        let tx = tx.clone();
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            // Our own reads raise access events; reacting to them would spin.
            if let Ok(ev) = &res
                && matches!(ev.kind, notify::EventKind::Access(_))
            {
                return;
            }
            let _ = tx.send(Msg::Changed);
        })
    };
    if let Err(e) = &watcher {
        tracing::warn!(error = %e, "no inotify: falling back to the stat pass every {STAT_PASS:?}");
    }
    let mut watcher = watcher.ok();
    let mut watch_dirs = || {
        use notify::Watcher;
        let Some(w) = watcher.as_mut() else { return };
        for d in &dirs {
            // A directory removed and recreated needs a new watch: re-add on every pass
            // (adding an existing inotify watch only refreshes it). A missing directory
            // fails here and is tried again next pass.
            let _ = w.watch(d, notify::RecursiveMode::NonRecursive);
        }
    };
    watch_dirs();
    // Catch up with whatever was written before the watches were in place.
    for f in followers.iter_mut() {
        f.poll(sink);
    }
    sink.tick();
    let mut last_pass = Instant::now();
    loop {
        let wait = STAT_PASS.saturating_sub(last_pass.elapsed());
        let msg = match rx.recv_timeout(wait) {
            Ok(m) => Some(m),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut reopen = msg == Some(Msg::Reopen);
        // Coalesce a burst of events into one pass.
        while let Ok(m) = rx.try_recv() {
            match m {
                Msg::Stop => return,
                Msg::Reopen => reopen = true,
                Msg::Changed => {}
            }
        }
        if msg == Some(Msg::Stop) {
            return;
        }
        if reopen {
            for f in followers.iter_mut() {
                f.reopen(sink);
            }
        }
        if msg.is_none() || last_pass.elapsed() >= STAT_PASS {
            last_pass = Instant::now();
            watch_dirs();
        }
        for f in followers.iter_mut() {
            f.poll(sink);
        }
        sink.tick();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Write;

    #[derive(Default)]
    struct VecSink {
        logins: Vec<String>,
        positions: HashMap<String, Position>,
    }

    impl Sink for VecSink {
        fn login(
            &mut self,
            login: Login,
            _session: Option<SessionKey>,
            checkpoint: Option<(&str, &Position)>,
        ) {
            self.logins.push(login.ip.to_string());
            if let Some((k, p)) = checkpoint {
                self.positions.insert(k.to_string(), *p);
            }
        }
        fn checkpoint(&mut self, key: &str, pos: &Position) {
            self.positions.insert(key.to_string(), *pos);
        }
        fn saved(&mut self, key: &str) -> Option<Position> {
            self.positions.get(key).copied()
        }
    }

    fn line(i: usize) -> String {
        format!(
            "2026-11-22T03:09:57.790849+00:00 vm dovecot: pop3-login: Login: user=<alice>, method=PLAIN, rip=10.0.0.{i}, lip=127.0.0.1, session=<x>\n"
        )
    }

    fn write(path: &Path, range: std::ops::Range<usize>) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        for i in range {
            f.write_all(line(i).as_bytes()).unwrap();
        }
    }

    fn ips(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("10.0.0.{i}")).collect()
    }

    fn follower(path: &Path) -> Follower {
        Follower::new(path.to_path_buf(), LineParser::new(None, vec![]))
    }

    /// An empty `mail.log` in a temporary directory, and a follower that has opened it.
    fn started() -> (tempfile::TempDir, PathBuf, VecSink, Follower) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("mail.log");
        write(&log, 0..0);
        let mut sink = VecSink::default();
        let mut f = follower(&log);
        f.poll(&mut sink);
        (dir, log, sink, f)
    }

    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn what_is_written_while_an_open_file_is_writable_by_everyone_is_never_read() {
        let (_dir, log, mut sink, mut f) = started();
        write(&log, 1..3);
        f.poll(&mut sink);
        assert_eq!(sink.logins, ips(1..3));
        // Made writable by every user while open: its next lines may be anyone's.
        chmod(&log, 0o666);
        write(&log, 3..5);
        f.poll(&mut sink);
        write(&log, 5..6);
        f.poll(&mut sink);
        assert_eq!(sink.logins, ips(1..3));
        // Fixed: what comes after the fix is read, what came before is not, even by a
        // follower started afresh from the saved position.
        chmod(&log, 0o640);
        let mut again = follower(&log);
        write(&log, 6..8);
        f.poll(&mut sink);
        assert_eq!(sink.logins, [ips(1..3), ips(6..8)].concat());
        let mut restarted = VecSink {
            positions: sink.positions.clone(),
            ..VecSink::default()
        };
        again.poll(&mut restarted);
        assert_eq!(restarted.logins, Vec::<String>::new());
    }

    #[test]
    fn a_file_refused_at_open_and_fixed_in_place_is_read_from_its_fixed_end() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("mail.log");
        write(&log, 0..0);
        let mut sink = VecSink::default();
        let mut f = follower(&log);
        f.poll(&mut sink);
        // Replaced by a file every user can write: nothing in it is read ...
        std::fs::rename(&log, dir.path().join("mail.log.1")).unwrap();
        write(&log, 0..0);
        chmod(&log, 0o666);
        f.poll(&mut sink);
        write(&log, 1..3);
        f.poll(&mut sink);
        assert!(sink.logins.is_empty(), "{:?}", sink.logins);
        // ... not even once its mode is fixed: only what is written afterwards.
        chmod(&log, 0o644);
        f.poll(&mut sink);
        write(&log, 3..4);
        f.poll(&mut sink);
        assert_eq!(sink.logins, ips(3..4));
    }

    #[test]
    fn copytruncate_reads_the_unread_rest_from_the_copy() {
        let (dir, log, mut sink, mut f) = started();
        write(&log, 0..10);
        f.poll(&mut sink);
        write(&log, 10..15);
        std::fs::copy(&log, dir.path().join("mail.log.1")).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(0)
            .unwrap();
        write(&log, 15..18);
        f.poll(&mut sink);
        assert_eq!(sink.logins, ips(0..18));
    }

    /// copytruncate seen while the file is still empty after it: the copy is read once, at
    /// the truncation, and not again when the emptied file gets its first line.
    #[test]
    fn a_copy_read_at_a_truncation_is_not_read_again() {
        let (dir, log, mut sink, mut f) = started();
        write(&log, 0..10);
        f.poll(&mut sink);
        write(&log, 10..12);
        std::fs::copy(&log, dir.path().join("mail.log.1")).unwrap();
        truncate(&log);
        f.poll(&mut sink);
        assert_eq!(sink.logins, ips(0..12));
        f.poll(&mut sink);
        write(&log, 12..14);
        f.poll(&mut sink);
        assert_eq!(sink.logins, ips(0..14));
    }

    fn truncate(path: &Path) {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(0)
            .unwrap();
    }

    /// A file empty when we opened it, then written, copied and truncated before we read a
    /// byte (a daemon starved of CPU): nothing marks the truncation but the new copy.
    #[test]
    fn copytruncate_before_the_first_read_takes_the_lines_from_the_copy() {
        let (dir, log, mut sink, mut f) = started();
        let copy = dir.path().join("mail.log.1");
        write(&log, 0..10);
        std::fs::copy(&log, &copy).unwrap();
        truncate(&log);
        write(&log, 10..13);
        f.poll(&mut sink);
        assert_eq!(sink.logins, ips(0..13));
        // The copy is read once, however long the file stays as it is.
        f.poll(&mut sink);
        write(&log, 13..14);
        f.poll(&mut sink);
        assert_eq!(sink.logins, ips(0..14));
    }

    /// After a rename rotation the old file, now `NAME.1`, is still written to after we
    /// opened the new one, which stays empty: once the old file's drain is over it is not
    /// taken for a copy of lines we missed.
    #[test]
    fn a_renamed_old_file_is_never_read_again_as_a_copy() {
        let (dir, log, mut sink, mut f) = started();
        let rotated = dir.path().join("mail.log.1");
        write(&log, 0..3);
        f.poll(&mut sink);
        std::fs::rename(&log, &rotated).unwrap();
        write(&log, 0..0);
        f.poll(&mut sink);
        write(&rotated, 3..5);
        f.poll(&mut sink);
        assert_eq!(sink.logins, ips(0..5));
        // The drain ends (DRAIN_QUIET without a write); the new file is still empty.
        f.old.clear();
        f.poll(&mut sink);
        f.poll(&mut sink);
        write(&log, 5..6);
        f.poll(&mut sink);
        assert_eq!(sink.logins, ips(0..6));
    }

    /// The copy made but the file not truncated yet: its lines are read from the file itself,
    /// once; and a copy that was there when we opened the file is yesterday's rotation.
    #[test]
    fn a_copy_is_only_read_when_it_is_new_and_the_file_no_longer_starts_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("mail.log");
        let copy = dir.path().join("mail.log.1");
        write(&copy, 90..95);
        write(&log, 0..0);
        let mut sink = VecSink::default();
        let mut f = follower(&log);
        f.poll(&mut sink);
        write(&log, 0..3);
        f.poll(&mut sink);
        assert_eq!(sink.logins, ips(0..3), "yesterday's copy is not read");

        let (dir, log, mut sink, mut f) = started();
        let copy = dir.path().join("mail.log.1");
        write(&log, 0..4);
        std::fs::copy(&log, &copy).unwrap();
        f.poll(&mut sink);
        assert_eq!(sink.logins, ips(0..4));
        truncate(&log);
        write(&log, 4..6);
        f.poll(&mut sink);
        assert_eq!(sink.logins, ips(0..6));
    }

    #[test]
    fn truncation_refilled_past_our_offset_is_caught_by_the_fingerprint() {
        let (_dir, log, mut sink, mut f) = started();
        write(&log, 0..5);
        f.poll(&mut sink);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(0)
            .unwrap();
        write(&log, 50..60);
        f.poll(&mut sink);
        assert_eq!(sink.logins[..5], ips(0..5)[..]);
        assert_eq!(sink.logins[5..], ips(50..60)[..]);
    }

    /// Found by the soak (benches/soak.rs): logrotate renames the log and its postrotate
    /// sends SIGHUP at once. When the SIGHUP came before a poll noticed the rename, the
    /// renamed file was dropped with its unread lines, and those written to it until syslog
    /// reopened were never read either.
    #[test]
    fn sighup_right_after_a_rename_rotation_reads_the_old_file_to_its_end() {
        let (dir, log, mut sink, mut f) = started();
        let old = dir.path().join("mail.log.1");
        write(&log, 0..5);
        f.poll(&mut sink);
        write(&log, 5..8);
        std::fs::rename(&log, &old).unwrap();
        write(&log, 8..10);
        f.reopen(&mut sink);
        // syslog appends to the renamed file until it is told to reopen.
        write(&old, 10..12);
        f.poll(&mut sink);
        f.poll(&mut sink);
        let mut got = sink.logins.clone();
        got.sort_by_key(|ip| ip.rsplit('.').next().unwrap().parse::<u32>().unwrap());
        assert_eq!(got, ips(0..12));
    }

    /// Found by the soak: with the reader busy far behind the writer, the log was renamed
    /// twice before it reached the end of the file it was reading, and the generation in
    /// between (`mail.log.1` by then) was never read.
    #[test]
    fn a_reader_more_than_one_rotation_behind_reads_the_generation_in_between() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("mail.log");
        let gen1 = dir.path().join("mail.log.1");
        let gen2 = dir.path().join("mail.log.2");
        write(&log, 0..0);
        let mut sink = VecSink::default();
        let mut f = follower(&log);
        f.poll(&mut sink);
        write(&log, 0..5);
        f.poll(&mut sink);
        write(&log, 5..8);
        std::fs::rename(&log, &gen1).unwrap();
        write(&log, 8..11);
        std::fs::rename(&gen1, &gen2).unwrap();
        std::fs::rename(&log, &gen1).unwrap();
        write(&log, 11..13);
        f.poll(&mut sink);
        // The skipped generation may still be written to until syslog reopens.
        write(&gen1, 13..14);
        f.poll(&mut sink);
        let mut got = sink.logins.clone();
        got.sort_by_key(|ip| ip.rsplit('.').next().unwrap().parse::<u32>().unwrap());
        assert_eq!(got, ips(0..14), "each line once: {:?}", sink.logins);
    }

    /// logrotate with `compress` and without `delaycompress`, while we were stopped: the
    /// file we were reading is now `NAME.1.gz`; its unread lines are read from it, once.
    #[test]
    fn a_file_rotated_and_compressed_while_stopped_is_finished_from_the_gz() {
        let (dir, log, mut sink, mut f) = started();
        write(&log, 0..5);
        f.poll(&mut sink);
        drop(f);
        write(&log, 5..8);
        let rotated = dir.path().join("mail.log.1");
        std::fs::rename(&log, &rotated).unwrap();
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(dir.path().join("mail.log.1.gz")).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(&std::fs::read(&rotated).unwrap()).unwrap();
        gz.finish().unwrap();
        std::fs::remove_file(&rotated).unwrap();
        write(&log, 8..10);
        let mut f = follower(&log);
        f.poll(&mut sink);
        assert_eq!(sink.logins, ips(0..10));
        // A compressed file that is not ours (another start of the log) is not read.
        let (dir, log, mut sink, mut f) = started();
        write(&log, 20..23);
        f.poll(&mut sink);
        drop(f);
        std::fs::rename(&log, dir.path().join("mail.log.0")).unwrap();
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(dir.path().join("mail.log.1.gz")).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(line(30).as_bytes()).unwrap();
        gz.write_all(line(31).as_bytes()).unwrap();
        gz.finish().unwrap();
        write(&log, 40..41);
        let mut f = follower(&log);
        f.poll(&mut sink);
        assert_eq!(sink.logins, [ips(20..23), ips(40..41)].concat());
    }

    #[test]
    fn positions_resume_without_replay() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("mail.log");
        write(&log, 0..3);
        let mut sink = VecSink::default();
        let mut f = follower(&log);
        f.poll(&mut sink);
        assert!(
            sink.logins.is_empty(),
            "history is not replayed on first start"
        );
        write(&log, 3..6);
        f.poll(&mut sink);
        drop(f);
        write(&log, 6..9);
        let mut f = follower(&log);
        f.poll(&mut sink);
        assert_eq!(sink.logins, ips(3..9));
    }
}
