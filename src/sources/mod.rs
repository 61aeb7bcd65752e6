//! Where logins come from: followed log files and their line parsers, the systemd journal,
//! the login hook, and Dovecot's auth-policy reports.

pub mod dovecot_auth_policy;
pub mod dovecot_auth_policy_proto;
pub mod follow;
pub mod hook;
pub mod journal;
pub mod journal_proto;
pub mod logparse;
pub mod sd_journal;
pub mod sessions;
pub mod watch_trust;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use follow::{Follower, Msg, Position, Sink};
use logparse::{Format, LineParser, SessionKey};
use sessions::Sessions;

use crate::counters::Counters;
use crate::lease::{Login, Millis, now_ms};
use crate::store::{Leases, Outcome, Stats};

/// One `--watch FILE [--format NAME]`.
#[derive(Clone, Debug)]
pub struct WatchSpec {
    pub path: PathBuf,
    pub format: Option<Format>,
}

/// Hands followed logins to the lease table, with each file's position: the logins of one
/// chunk read go in one write, with the position after the last of them.
struct StoreSink {
    leases: Arc<Leases>,
    counters: Arc<Counters>,
    /// Mailutils without `acl log` names no address: say so once per file, not per login.
    warned_no_address: std::collections::HashSet<String>,
    /// Logins read since the last flush.
    pending: Vec<Login>,
    /// The position after the last of them (none for a rotated file read at start), under
    /// its key, in its stored form.
    position: Option<(String, Vec<u8>)>,
    /// Session starts and ends read since the last flush, in log order.
    steps: Vec<Step>,
    sessions: Sessions,
    /// `--max-session-hold`; zero holds no session.
    hold: Duration,
    last_tick: Millis,
    /// When the sessions table was last said to be full.
    warned_full: Millis,
    /// What this sink last added to the open sessions gauge.
    sessions_counted: u64,
    /// Logins that could not be written (the database full or read-only), oldest first,
    /// each batch with the position after it: written again, in order, once the store
    /// writes, and meanwhile nothing newer is written, so no saved position passes them.
    backlog: std::collections::VecDeque<Batch>,
    /// How many logins the backlog holds; at [`BACKLOG_CAP`] the sources stop reading.
    backlog_logins: usize,
    /// When writing the backlog was last tried.
    last_try: Millis,
    /// Batches written since the database last said all was durable (followed logins are
    /// not synced one by one): a write error closes the database and loses what it had not
    /// made durable, so these are written again then.
    unsynced: Vec<Batch>,
    /// When the database was last told to make them durable.
    last_sync: Millis,
}

/// Logins waiting in the backlog before the sources stop reading (and leave the rest in
/// their file or journal, behind the saved position, until the store writes again).
const BACKLOG_CAP: usize = 100_000;
/// Most logins in one backlog batch (one write when the store is back).
const BATCH_MAX: usize = 10_000;
/// How often the backlog is tried again.
const RETRY_EVERY: Millis = 1000;

/// Logins read together and the position after them, not written yet.
#[derive(Default)]
struct Batch {
    logins: Vec<Login>,
    steps: Vec<Step>,
    position: Option<(String, Vec<u8>)>,
    /// Recorded in the table already, its write lost by a database failure: the table's
    /// leases are written again, not the logins judged again (each would count twice).
    rewrite: bool,
}

/// How often a full sessions table is warned about.
const FULL_WARNING_EVERY: Millis = 10 * 60 * 1000;

/// A session event waiting for the logins read with it to be written.
enum Step {
    /// `pending[login]` opened this session (held only if it was granted a lease).
    Open {
        login: usize,
        session: SessionKey,
    },
    Close {
        session: SessionKey,
        at: Millis,
    },
}

impl StoreSink {
    /// Open and close the sessions of the logins just written, in log order, and extend
    /// the leases whose last session ended.
    fn apply_steps(&mut self, steps: Vec<Step>, logins: &[Login], outcomes: &[Outcome]) {
        let window = self.leases.rules().window.as_millis() as Millis;
        let mut ends: Vec<(IpAddr, Millis)> = Vec::new();
        for step in steps {
            match step {
                Step::Open { login, session } => {
                    let (Some(l), Some(Outcome::Granted(_) | Outcome::Renewed(_))) =
                        (logins.get(login), outcomes.get(login))
                    else {
                        continue;
                    };
                    let (held, ended) = self.sessions.open(session, l.ip, l.at, self.hold);
                    if !held && now_ms().saturating_sub(self.warned_full) >= FULL_WARNING_EVERY {
                        self.warned_full = now_ms();
                        tracing::warn!(addr = %l.ip, limit = sessions::CAP,
                            "too many open sessions: new ones get the plain window (said at most every 10 minutes)");
                    }
                    ends.extend(ended.map(|ip| (ip, l.at.saturating_add(window))));
                }
                Step::Close { session, at } => {
                    ends.extend(
                        self.sessions
                            .close(&session)
                            .map(|ip| (ip, at.saturating_add(window))),
                    );
                }
            }
        }
        self.extend(&ends, "session ended");
        self.count_sessions();
    }

    /// The log files and the journal hold sessions each: each adds its own change to the
    /// gauge.
    fn count_sessions(&mut self) {
        let n = self.sessions.len() as u64;
        let before = std::mem::replace(&mut self.sessions_counted, n);
        let gauge = &self.counters.sessions_open;
        if n >= before {
            gauge.fetch_add(n - before, Ordering::Relaxed);
        } else {
            gauge.fetch_sub(before - n, Ordering::Relaxed);
        }
    }

    fn extend(&self, targets: &[(IpAddr, Millis)], why: &str) {
        match self.leases.extend_many(targets, now_ms()) {
            Ok(n) if n > 0 => tracing::debug!(leases = n, why, "leases extended"),
            Ok(_) => {}
            Err(e) => {
                Stats::bump(&self.leases.stats.errors);
                tracing::error!(error = %e, why, "cannot extend leases");
            }
        }
    }
}

impl Drop for StoreSink {
    /// At shutdown, one more try; what still cannot be written is read again at the next
    /// start, from the position saved before it.
    fn drop(&mut self) {
        if self.backlog.is_empty() {
            return;
        }
        self.last_try = 0;
        self.retry();
        if self.backlog_logins > 0 {
            tracing::warn!(
                logins = self.backlog_logins,
                "stopping with followed logins not written: they are read again from the log at the next start"
            );
        }
    }
}

/// Where a source stopped, in the form stored with the leases (meta records are bytes): a
/// file's [`Position`], the journal's cursor.
trait Mark: Sized {
    /// Replace `out` with the stored form.
    fn store(&self, out: &mut Vec<u8>);
    fn load(bytes: &[u8]) -> Option<Self>;
}

impl Mark for Position {
    fn store(&self, out: &mut Vec<u8>) {
        out.clear();
        let _ = serde_json::to_writer(&mut *out, self);
    }
    fn load(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

impl StoreSink {
    fn new(leases: Arc<Leases>, counters: Arc<Counters>, max_session_hold: Duration) -> StoreSink {
        StoreSink {
            leases,
            counters,
            warned_no_address: Default::default(),
            pending: Vec::new(),
            position: None,
            steps: Vec::new(),
            sessions: Sessions::new(sessions::CAP),
            hold: max_session_hold,
            last_tick: 0,
            warned_full: 0,
            sessions_counted: 0,
            backlog: Default::default(),
            backlog_logins: 0,
            last_try: 0,
            unsynced: Vec::new(),
            last_sync: now_ms(),
        }
    }

    /// Writing failed: log it (once, when recording stops) and put every batch not known to
    /// be durable back in front of the backlog, in order, with `failed` after them.
    fn stop_recording(&mut self, e: &crate::Error, failed: Option<Batch>) {
        if self.backlog.is_empty() {
            Stats::bump(&self.leases.stats.errors);
            let logins = self
                .unsynced
                .iter()
                .chain(&failed)
                .map(|b| b.logins.len())
                .sum::<usize>();
            tracing::error!(error = %e, logins,
                "cannot record followed logins: they wait, with the log position before them, and are written once the database writes again (tried every second)");
        }
        self.last_try = now_ms();
        let waiting = std::mem::take(&mut self.backlog);
        self.backlog_logins = 0;
        let unsynced = std::mem::take(&mut self.unsynced);
        for b in unsynced
            .into_iter()
            .map(|b| Batch { rewrite: true, ..b })
            .chain(failed)
            .chain(waiting)
        {
            self.queue(b);
        }
    }

    /// A batch just written, kept until the database says it is durable.
    fn written(&mut self, b: &Batch) {
        self.unsynced.push(Batch {
            logins: b.logins.clone(),
            steps: Vec::new(),
            position: b.position.clone(),
            rewrite: true,
        });
    }

    /// Once a second, make what was written durable; a failure sends it back to the backlog.
    fn sync(&mut self) {
        let now = now_ms();
        if self.unsynced.is_empty() || now.saturating_sub(self.last_sync) < RETRY_EVERY {
            return;
        }
        self.last_sync = now;
        match self.leases.sync_local() {
            Ok(()) => self.unsynced.clear(),
            Err(e) => self.stop_recording(&e, None),
        }
    }

    /// Write one batch: its logins with its position in one write (or the position alone).
    fn write(&self, b: &Batch) -> crate::Result<Vec<Outcome>> {
        let meta = b.position.as_ref().map(|(k, v)| (k.as_str(), v.as_slice()));
        match meta {
            Some((k, v)) if b.logins.is_empty() => {
                self.leases.backend().put_meta(k, v).map(|()| Vec::new())
            }
            _ if b.rewrite => self
                .leases
                .rewrite(&b.logins, now_ms(), meta)
                .map(|()| Vec::new()),
            _ => self.leases.login_many(&b.logins, now_ms(), meta),
        }
    }

    /// Put what was read since the last flush at the end of the backlog.
    fn queue_pending(&mut self) {
        let b = Batch {
            logins: std::mem::take(&mut self.pending),
            steps: std::mem::take(&mut self.steps),
            position: self.position.take(),
            rewrite: false,
        };
        self.queue(b);
    }

    fn queue(&mut self, mut b: Batch) {
        let before = self.backlog_logins;
        self.backlog_logins += b.logins.len();
        if before < BACKLOG_CAP && self.backlog_logins >= BACKLOG_CAP {
            tracing::warn!(
                limit = BACKLOG_CAP,
                "too many followed logins wait for the database: reading stops until they are written (the rest stays in the log)"
            );
        }
        if let Some(last) = self.backlog.back_mut() {
            let same_key = match (&last.position, &b.position) {
                (Some((k1, _)), Some((k2, _))) => k1 == k2,
                _ => true,
            };
            if same_key
                && last.rewrite == b.rewrite
                && last.logins.len() + b.logins.len() <= BATCH_MAX
            {
                let offset = last.logins.len();
                for step in &mut b.steps {
                    if let Step::Open { login, .. } = step {
                        *login += offset;
                    }
                }
                last.logins.append(&mut b.logins);
                last.steps.append(&mut b.steps);
                if b.position.is_some() {
                    last.position = b.position;
                }
                return;
            }
        }
        self.backlog.push_back(b);
    }

    /// Write the backlog, oldest first, at most every [`RETRY_EVERY`]: what the store takes
    /// gets its leases (counted from each line's own time: logins aged out get none).
    fn retry(&mut self) {
        let now = now_ms();
        if self.backlog.is_empty() || now.saturating_sub(self.last_try) < RETRY_EVERY {
            return;
        }
        self.last_try = now;
        let waited = self.backlog_logins;
        while let Some(b) = self.backlog.front() {
            let outcomes = match self.write(b) {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(error = %e, waiting = self.backlog_logins, "followed logins still cannot be written");
                    return;
                }
            };
            let Some(mut b) = self.backlog.pop_front() else {
                break;
            };
            self.backlog_logins -= b.logins.len();
            self.written(&b);
            let steps = std::mem::take(&mut b.steps);
            self.apply_steps(steps, &b.logins, &outcomes);
        }
        tracing::info!(
            logins = waited,
            "recording followed logins again: the logins read meanwhile are written"
        );
    }
}

impl<P: Mark> Sink<P> for StoreSink {
    fn login(&mut self, login: Login, session: Option<SessionKey>, checkpoint: Option<(&str, &P)>) {
        if let Some(session) = session.filter(|_| !self.hold.is_zero()) {
            self.steps.push(Step::Open {
                login: self.pending.len(),
                session,
            });
        }
        self.pending.push(login);
        if let Some((key, pos)) = checkpoint {
            match &mut self.position {
                Some((k, v)) if k == key => pos.store(v),
                other => {
                    let mut v = Vec::new();
                    pos.store(&mut v);
                    *other = Some((key.to_string(), v));
                }
            }
        }
    }

    fn logout(&mut self, session: SessionKey, at: Millis) {
        if !self.hold.is_zero() {
            self.steps.push(Step::Close { session, at });
        }
    }

    fn flush(&mut self) {
        if !self.backlog.is_empty() {
            // Behind logins not written yet: these wait after them.
            if !self.pending.is_empty() || !self.steps.is_empty() || self.position.is_some() {
                self.queue_pending();
            }
            self.retry();
            return;
        }
        if self.pending.is_empty() {
            if !self.steps.is_empty() {
                let steps = std::mem::take(&mut self.steps);
                self.apply_steps(steps, &[], &[]);
            }
            return;
        }
        let b = Batch {
            logins: std::mem::take(&mut self.pending),
            steps: std::mem::take(&mut self.steps),
            position: self.position.take(),
            rewrite: false,
        };
        match self.write(&b) {
            Ok(outcomes) => {
                self.written(&b);
                self.apply_steps(b.steps, &b.logins, &outcomes);
                self.pending = b.logins;
                self.pending.clear();
                // Here too, not only at the tick: a long read (catching up) ticks only at
                // its end, and what waits to be known durable must not grow with it.
                self.sync();
            }
            Err(e) => self.stop_recording(&e, Some(b)),
        }
    }

    fn tick(&mut self) {
        self.retry();
        self.sync();
        let now = now_ms();
        if self.sessions.is_empty() || now.saturating_sub(self.last_tick) < 1000 {
            return;
        }
        self.last_tick = now;
        let due = self.sessions.due(now, self.leases.rules().window);
        self.extend(&due, "session open");
        self.count_sessions();
    }

    fn checkpoint(&mut self, key: &str, pos: &P) {
        Sink::<P>::flush(self);
        let mut v = Vec::new();
        pos.store(&mut v);
        if !self.backlog.is_empty() {
            // Saved only once the logins before it are.
            self.queue(Batch {
                position: Some((key.to_string(), v)),
                ..Batch::default()
            });
            return;
        }
        if let Err(e) = self.leases.backend().put_meta(key, &v) {
            Stats::bump(&self.leases.stats.errors);
            tracing::error!(error = %e, "cannot save log position");
        }
    }

    fn blocked(&self) -> bool {
        self.backlog_logins >= BACKLOG_CAP
    }

    fn login_without_address(&mut self, source: &str, user: Option<&str>) {
        self.leases.stats.count_login(source);
        if self.warned_no_address.insert(source.to_string()) {
            tracing::warn!(
                source,
                user = user.unwrap_or("-"),
                "login line without a client address: nothing granted (for GNU Mailutils enable `acl {{ log from any; }}` or use the hook)"
            );
        }
    }

    fn saved(&mut self, key: &str) -> Option<P> {
        Sink::<P>::flush(self);
        // Read up to there, not written yet.
        let waiting = self.backlog.iter().rev().find_map(|b| match &b.position {
            Some((k, v)) if k == key => Some(v),
            _ => None,
        });
        if let Some(v) = waiting {
            return P::load(v);
        }
        let v = self.leases.backend().get_meta(key).ok().flatten()?;
        P::load(&v)
    }
}

/// The log followers' thread, reopened on SIGHUP and stopped at shutdown.
pub struct FollowerHandle {
    thread: std::thread::JoinHandle<()>,
    tx: mpsc::Sender<Msg>,
}

impl FollowerHandle {
    /// Reopen every followed file (SIGHUP: logrotate's postrotate may have renamed them).
    pub fn reopen(&self) {
        let _ = self.tx.send(Msg::Reopen);
    }

    /// Stop following and wait for the thread: what it read is recorded when this returns.
    pub async fn stop(self) {
        let _ = self.tx.send(Msg::Stop);
        let _ = tokio::task::spawn_blocking(move || self.thread.join()).await;
    }
}

/// Followers run on one thread of their own: file reads block.
pub fn start_followers(
    specs: &[WatchSpec],
    patterns: &[regex::Regex],
    leases: Arc<Leases>,
    counters: Arc<Counters>,
    max_session_hold: Duration,
    trust_any: bool,
) -> crate::Result<FollowerHandle> {
    let mut followers: Vec<Follower> = specs
        .iter()
        .map(|s| {
            Follower::new(s.path.clone(), LineParser::new(s.format, patterns.to_vec()))
                .trust_any(trust_any)
        })
        .collect();
    if let Some(why) = followers.iter().find_map(Follower::untrusted) {
        return Err(crate::Error::invalid(why));
    }
    let mut sink = StoreSink::new(leases, counters, max_session_hold);
    // Open every file before the daemon says it is ready: "from the end" must mean the end
    // at start, not wherever the file has grown to when a thread gets going.
    for f in followers.iter_mut() {
        f.poll(&mut sink);
    }
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    let thread = std::thread::Builder::new()
        .name("follow".into())
        .spawn(move || follow::run(followers, &mut sink, tx2, rx))
        .map_err(|e| crate::Error::net("start the log follower thread", e))?;
    Ok(FollowerHandle { thread, tx })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::{Lease, Rules};
    use crate::store::Backend;
    use ipnet::IpNet;
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

    /// What the backend holds, and what of it a failure keeps.
    #[derive(Clone, Default)]
    struct Disk {
        leases: BTreeMap<IpNet, Lease>,
        meta: BTreeMap<String, Vec<u8>>,
    }

    /// A database that can fail: while `down`, every write and sync fails; `crash` also
    /// forgets what was written since the last sync, as sled does when it closes after an
    /// I/O error.
    #[derive(Default)]
    struct Flaky {
        now: Mutex<Disk>,
        durable: Mutex<Disk>,
        down: Arc<AtomicBool>,
    }

    impl Flaky {
        fn up(&self) -> crate::Result<()> {
            if self.down.load(Ordering::Relaxed) {
                return Err(crate::Error::invalid("no storage space"));
            }
            Ok(())
        }
    }

    impl Backend for Flaky {
        fn load(&self) -> crate::Result<Vec<Lease>> {
            Ok(self.now.lock().unwrap().leases.values().cloned().collect())
        }
        fn put(&self, lease: &Lease) -> crate::Result<()> {
            self.up()?;
            self.now
                .lock()
                .unwrap()
                .leases
                .insert(lease.net, lease.clone());
            Ok(())
        }
        fn remove(&self, net: &IpNet) -> crate::Result<()> {
            self.up()?;
            self.now.lock().unwrap().leases.remove(net);
            Ok(())
        }
        fn clear(&self) -> crate::Result<()> {
            self.up()?;
            self.now.lock().unwrap().leases.clear();
            Ok(())
        }
        fn sync(&self) -> crate::Result<()> {
            self.up()?;
            *self.durable.lock().unwrap() = self.now.lock().unwrap().clone();
            Ok(())
        }
        fn get_meta(&self, key: &str) -> crate::Result<Option<Vec<u8>>> {
            Ok(self.now.lock().unwrap().meta.get(key).cloned())
        }
        fn put_meta(&self, key: &str, value: &[u8]) -> crate::Result<()> {
            self.up()?;
            self.now
                .lock()
                .unwrap()
                .meta
                .insert(key.into(), value.to_vec());
            Ok(())
        }
    }

    const KEY: &str = "pos:/var/log/mail.log";

    fn at(offset: u64) -> Position {
        Position {
            dev: 1,
            ino: 2,
            offset,
            fingerprint: 3,
            fp_len: 256,
        }
    }

    fn login(ip: &str) -> Login {
        Login {
            ip: ip.parse().unwrap(),
            user: Some("alice".into()),
            at: now_ms(),
            source: "/var/log/mail.log".into(),
        }
    }

    fn read(sink: &mut StoreSink, ip: &str, offset: u64) {
        Sink::<Position>::login(sink, login(ip), None, Some((KEY, &at(offset))));
        Sink::<Position>::flush(sink);
    }

    /// The tick after the retry interval.
    fn tick_now(sink: &mut StoreSink) {
        sink.last_try = 0;
        sink.last_sync = 0;
        Sink::<Position>::tick(sink);
    }

    fn logins(leases: &Leases, ip: &str) -> Option<u64> {
        let ip: IpAddr = ip.parse().unwrap();
        leases
            .list(now_ms())
            .into_iter()
            .find(|l| l.net.contains(&ip))
            .map(|l| l.logins)
    }

    fn setup() -> (Arc<Flaky>, Arc<AtomicBool>, Arc<Leases>, StoreSink) {
        let flaky = Arc::new(Flaky::default());
        let down = flaky.down.clone();
        struct Shared(Arc<Flaky>);
        impl Backend for Shared {
            fn load(&self) -> crate::Result<Vec<Lease>> {
                self.0.load()
            }
            fn put(&self, lease: &Lease) -> crate::Result<()> {
                self.0.put(lease)
            }
            fn remove(&self, net: &IpNet) -> crate::Result<()> {
                self.0.remove(net)
            }
            fn clear(&self) -> crate::Result<()> {
                self.0.clear()
            }
            fn sync(&self) -> crate::Result<()> {
                self.0.sync()
            }
            fn get_meta(&self, key: &str) -> crate::Result<Option<Vec<u8>>> {
                self.0.get_meta(key)
            }
            fn put_meta(&self, key: &str, value: &[u8]) -> crate::Result<()> {
                self.0.put_meta(key, value)
            }
        }
        let leases = Arc::new(
            Leases::open(Box::new(Shared(flaky.clone())), Rules::default(), now_ms()).unwrap(),
        );
        let sink = StoreSink::new(leases.clone(), Arc::default(), Duration::ZERO);
        (flaky, down, leases, sink)
    }

    fn saved(flaky: &Flaky) -> Option<Position> {
        flaky
            .now
            .lock()
            .unwrap()
            .meta
            .get(KEY)
            .and_then(|v| Position::load(v))
    }

    #[test]
    fn logins_that_cannot_be_written_wait_with_the_position_before_them() {
        let (flaky, down, leases, mut sink) = setup();
        read(&mut sink, "192.0.2.1", 100);
        assert_eq!(saved(&flaky), Some(at(100)));
        down.store(true, Ordering::Relaxed);
        read(&mut sink, "192.0.2.2", 200);
        read(&mut sink, "192.0.2.3", 300);
        Sink::<Position>::checkpoint(&mut sink, KEY, &at(400));
        tick_now(&mut sink);
        // Nothing past the unwritten logins is saved, and they do not relay.
        assert_eq!(saved(&flaky), Some(at(100)));
        assert_eq!(logins(&leases, "192.0.2.2"), None);
        // A file opened again meanwhile goes on after what was read, not before.
        assert_eq!(Sink::<Position>::saved(&mut sink, KEY), Some(at(400)));

        down.store(false, Ordering::Relaxed);
        tick_now(&mut sink);
        assert_eq!(saved(&flaky), Some(at(400)));
        assert_eq!(logins(&leases, "192.0.2.2"), Some(1));
        assert_eq!(logins(&leases, "192.0.2.3"), Some(1));
        assert!(sink.backlog.is_empty());
    }

    #[test]
    fn logins_a_failure_lost_before_they_were_durable_are_written_again_once() {
        let (flaky, down, leases, mut sink) = setup();
        read(&mut sink, "192.0.2.1", 100);
        tick_now(&mut sink);
        read(&mut sink, "192.0.2.2", 200);
        // The database fails and forgets the write not synced yet.
        down.store(true, Ordering::Relaxed);
        let durable = flaky.durable.lock().unwrap().clone();
        *flaky.now.lock().unwrap() = durable;
        tick_now(&mut sink);
        assert_eq!(saved(&flaky), Some(at(100)));

        down.store(false, Ordering::Relaxed);
        tick_now(&mut sink);
        assert_eq!(saved(&flaky), Some(at(200)));
        let on_disk = flaky.now.lock().unwrap().leases.len();
        assert_eq!(on_disk, 2, "the lost lease is written again");
        assert_eq!(logins(&leases, "192.0.2.2"), Some(1), "and counted once");
    }

    #[test]
    fn a_full_backlog_stops_reading() {
        let (_flaky, down, _leases, mut sink) = setup();
        down.store(true, Ordering::Relaxed);
        for i in 0..BACKLOG_CAP {
            Sink::<Position>::login(
                &mut sink,
                login("192.0.2.9"),
                None,
                Some((KEY, &at(i as u64))),
            );
        }
        assert!(!Sink::<Position>::blocked(&sink));
        Sink::<Position>::flush(&mut sink);
        assert!(Sink::<Position>::blocked(&sink));
        down.store(false, Ordering::Relaxed);
        tick_now(&mut sink);
        assert!(!Sink::<Position>::blocked(&sink));
    }
}
