//! The recorder task: drains the queue of uses and logins, writes the audit lines, and adds
//! the counts to the usage table in batches.
//!
//! Crash bound: a use waits at most [`TICK`] in the queue and [`FLUSH`] in the batch before
//! the batch is made durable, so a daemon killed with `kill -9` loses at most the counts of
//! about the last [`CRASH_BOUND_SECS`] seconds (the two, plus the time one write takes), and
//! the audit lines of messages still open then.
//!
//! Durable means, for the local table, appended to its journal
//! ([`crate::store::usage_journal`]): one write and one `fdatasync` a second, however many
//! users the batch holds. The journal's rounds are folded into sled's records every
//! [`FOLD_EVERY`], [`FOLD_STEP`] records a tick, so that no write holds the drain up for
//! long and a user busy for minutes has one record written per round, not one a second. A
//! write to Redis runs beside the drain as a task.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::audit::Audit;
use super::message::{Finished, Messages};
use super::table::{Batch, Delta, Items, Subject, active_since, merged};
use super::{Event, Method, POLICY_LOG_EVENTS, Query, Settings, Use, policy_log};
use crate::cli::LogFormat;
use crate::lease::{Millis, now_ms};
use crate::store::usage_journal::{Journal, Round};
use crate::store::{Leases, Stats, UsageSled, UsageStore};

/// How often the queue is drained while there is work.
pub const TICK: Duration = Duration::from_millis(50);
/// With nothing queued, no message open and every count written for this long, the recorder
/// sleeps until an event comes.
const SLEEP_AFTER: Duration = Duration::from_secs(1);
/// How often the batch of counts is written.
pub const FLUSH: Duration = Duration::from_secs(1);
/// How often a batch is tried while the store keeps failing.
const FLUSH_FAILING: Duration = Duration::from_secs(10);
/// What a `kill -9` may lose, in seconds, as the documentation states it.
pub const CRASH_BOUND_SECS: u64 = 2;
/// Events handled per drain, at most; the rest wait for the next tick.
const DRAIN_MAX: usize = 65_536;
/// The policy service's events taken between two pauses for the answers
/// ([`let_answers_run`]).
const PIECE: usize = 256;
/// A drain pauses for the answers only this long after it began; past it, it takes the rest
/// in one go.
const PAUSES_WITHIN: Duration = Duration::from_millis(10);
/// A store that keeps failing this long has its counts dropped (and counted as lost).
pub const GIVE_UP: Millis = 60_000;
/// Subjects kept waiting while the store fails; beyond that counts are dropped.
const MAX_WAITING: usize = 100_000;
/// How often records idle for longer than the retention are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How often the journal's counts become a round to fold into the local table (when none is
/// being folded), at most: a recorder with nothing to drain for [`SLEEP_AFTER`] does it then.
pub const FOLD_EVERY: Duration = Duration::from_secs(10);
/// Records folded a tick, at most: about 10 ms of sled's work (5,120 records a second).
const FOLD_STEP: usize = 256;
/// How long a stopping daemon goes on folding; the rest waits in the journal for the next
/// start.
const FOLD_AT_STOP: Duration = Duration::from_secs(1);

/// A batch that could not be written: kept for the next flush, unless the store has been
/// failing since `GIVE_UP` ago or too much waits. Returns how many uses were dropped.
pub fn after_failure(
    batch: &mut Batch,
    failed: Vec<(Vec<u8>, Delta)>,
    failing_since: Millis,
    now: Millis,
) -> u64 {
    if now.saturating_sub(failing_since) >= GIVE_UP || batch.len() + failed.len() > MAX_WAITING {
        let mut lost: u64 = failed.iter().map(|(_, d)| d.uses()).sum();
        lost += batch.uses();
        batch.take();
        return lost;
    }
    batch.put_back(failed);
    0
}

pub struct Recorder {
    rx: Receiver<Event>,
    wake: Arc<super::Wake>,
    queries: mpsc::Receiver<Query>,
    store: UsageStore,
    leases: Arc<Leases>,
    retention: Duration,
    messages: Messages,
    batch: Batch,
    audit: Audit,
    /// Whether the log takes info lines, looked up once per drain.
    logging: bool,
    failing_since: Option<Millis>,
    last_complaint: Option<Instant>,
    /// The batch being written to Redis, beside the drain.
    writing: Option<Write>,
    /// The local table's journal and rounds (None for Redis, or a journal that cannot be
    /// opened: then each batch is written to the table directly).
    local: Option<Local>,
    /// The buffer the policy service's events were last taken in ([`Usage::take_policy_log`]),
    /// handed back at the next take.
    ///
    /// [`Usage::take_policy_log`]: super::Usage::take_policy_log
    policy_log: Vec<u8>,
}

/// The local table's journal and what it holds that the table does not yet have.
struct Local {
    table: Arc<UsageSled>,
    journal: Journal,
    /// Counts in the journal's current round.
    pending: Batch,
    /// Closed rounds, oldest first; each one's items are folded from the end, sorted so
    /// that the table is walked in key order.
    rounds: VecDeque<Round>,
    last_round: Instant,
    /// After a failed fold, when to try again.
    retry_at: Option<Instant>,
}

impl Local {
    /// The journal of `table` with the rounds a crash or a stop left, to be folded first.
    fn open(table: Arc<UsageSled>) -> crate::Result<Local> {
        let (journal, rounds) = table.journal()?;
        let mut rounds: VecDeque<Round> = rounds.into();
        for r in &mut rounds {
            sort_for_folding(&mut r.items);
        }
        Ok(Local {
            table,
            journal,
            pending: Batch::default(),
            rounds,
            last_round: Instant::now(),
            retry_at: None,
        })
    }

    /// Close the journal's current round, if it holds anything, and queue it for folding.
    fn close_round(&mut self) {
        self.last_round = Instant::now();
        if self.pending.is_empty() {
            return;
        }
        let round = self.journal.rotate();
        let mut items = self.pending.take_all();
        sort_for_folding(&mut items);
        self.rounds.push_back(Round { round, items });
    }

    /// Fold up to `n` records of the oldest round; a round folded to its end is made durable
    /// and its file removed.
    fn fold(&mut self, n: usize) -> crate::Result<()> {
        let Some(front) = self.rounds.front_mut() else {
            return Ok(());
        };
        let at = front.items.len().saturating_sub(n);
        self.table.fold(&front.items[at..], front.round)?;
        front.items.truncate(at);
        if front.items.is_empty() {
            self.table.finish(front.round)?;
            let round = front.round;
            self.rounds.pop_front();
            if let Err(e) = self.journal.remove(round) {
                // Folded again at the next start, which adds nothing twice.
                tracing::warn!(error = %e, "usage journal: cannot remove a folded round");
            }
        }
        Ok(())
    }

    /// Nothing the table does not have yet.
    fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.rounds.is_empty()
    }

    /// Every count not yet in the table, by subject key.
    fn unfolded(&self) -> impl Iterator<Item = (&Vec<u8>, &Delta)> {
        self.rounds
            .iter()
            .flat_map(|r| r.items.iter().map(|(k, d)| (k, d)))
            .chain(self.pending.iter())
    }
}

/// Descending key order: folding takes from the end, so the table is walked upwards.
fn sort_for_folding(items: &mut Items) {
    items.sort_unstable_by(|a, b| b.0.cmp(&a.0));
}

/// A batch on its way into Redis, as a task of the recorder's runtime: a Redis that does not
/// answer holds up a write for up to the store's 2 s timeout, longer than the queue holds uses
/// for, and the queue is drained meanwhile.
struct Write {
    task: tokio::task::JoinHandle<(Items, crate::Result<()>)>,
    /// The uses it carries, counted as lost if the write itself ends abnormally.
    uses: u64,
}

/// The running recorder: [`RecorderTask::stop`] writes what is left and waits for it.
pub struct RecorderTask {
    stop: oneshot::Sender<()>,
    done: oneshot::Receiver<()>,
}

impl RecorderTask {
    /// Finish every open message, write the last batch, and return (within `limit`).
    pub async fn stop(self, limit: Duration) {
        let _ = self.stop.send(());
        if tokio::time::timeout(limit, self.done).await.is_err() {
            tracing::warn!("usage recorder: the last counts were not written in time");
        }
    }
}

/// Put a [`super::Usage`] into `leases` and start its recorder, on a thread of its own (with
/// a runtime of its own, for the store), so that its batches never hold up a worker thread
/// that answers; audit lines in `log`'s format.
pub fn start(
    leases: &Arc<Leases>,
    store: UsageStore,
    settings: Settings,
    log: LogFormat,
) -> crate::Result<RecorderTask> {
    let retention = settings.retention;
    let (usage, rx, queries, wake) = super::channel(settings);
    leases.set_usage(usage);
    let mut r = Recorder {
        rx,
        wake,
        queries,
        store,
        leases: leases.clone(),
        retention,
        messages: Messages::default(),
        batch: Batch::default(),
        audit: Audit::new(log),
        logging: true,
        failing_since: None,
        last_complaint: None,
        writing: None,
        local: None,
        policy_log: Vec::new(),
    };
    let (stop, stopped) = oneshot::channel();
    let (finished, done) = oneshot::channel();
    std::thread::Builder::new()
        .name("relaylease-usage".into())
        .spawn(move || {
            r.open_local();
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(r.run(stopped)),
                Err(e) => tracing::error!(error = %e, "usage recorder: cannot start its runtime: nothing is recorded"),
            }
            let _ = finished.send(());
        })
        .map_err(|e| crate::Error::net("start the usage recorder", e))?;
    Ok(RecorderTask { stop, done })
}

/// Between two pieces of a drain: give the CPU to whatever else is ready to run on it,
/// the answers' thread first of all.
///
/// The recorder runs at the daemon's own priority. On a host whose CPUs the answers keep
/// busy it shares a CPU with them, and a drain taken in one go (the uses of a whole tick,
/// about 3.5 ms of work at the benchmark's 77,000 uses a second) held every policy
/// connection's answer up for as long. In pieces of [`PIECE`] uses with a `sched_yield`
/// between them the answers wait a fraction of that. A recorder that is behind (a quarter
/// of the policy log's room in use, or [`PAUSES_WITHIN`] into its drain) does not pause:
/// its pauses must never cost a use. Until 2026-12-07 the recorder was niced by 10 instead,
/// which starved it on a saturated host (issue 19; docs/performance.md).
fn let_answers_run() {
    std::thread::yield_now();
}

fn retention_start(now: Millis, retention: Duration) -> Millis {
    now.saturating_sub(retention.as_millis().min(u64::MAX as u128) as u64)
}

impl Recorder {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_flush = Instant::now();
        // At start, before anything else: a daemon stopped right after it started (its first
        // tick and the stop both ready, select! picks either) still drops what is too old.
        self.prune(now_ms()).await;
        let mut last_prune = Instant::now();
        let mut last_work = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let now = now_ms();
                    if self.drain(now) > 0 {
                        last_work = Instant::now();
                    }
                    for m in self.messages.quiet(now) {
                        self.audit_message(&m);
                    }
                    self.audit.flush();
                    // A store that fails (Redis away: each try may wait seconds) is tried
                    // less often, so the queue keeps being drained.
                    let every = if self.failing_since.is_some() { FLUSH_FAILING } else { FLUSH };
                    self.written(false).await;
                    // A write still going on when the next is due: the batch grows until
                    // it has ended.
                    if last_flush.elapsed() >= every && self.writing.is_none() {
                        last_flush = Instant::now();
                        self.flush();
                    }
                    self.fold_step(last_work.elapsed() >= SLEEP_AFTER);
                    if last_prune.elapsed() >= PRUNE_EVERY {
                        last_prune = Instant::now();
                        self.prune(now).await;
                    }
                    if self.at_rest() && last_work.elapsed() >= SLEEP_AFTER {
                        let prune_in = PRUNE_EVERY.saturating_sub(last_prune.elapsed());
                        if self.sleep(&mut stop, prune_in).await {
                            break;
                        }
                        // What woke it is drained a tick from now: the crash bound holds.
                        tick.reset();
                        last_work = Instant::now();
                    }
                }
                Some(q) = self.queries.recv() => self.answer(q).await,
                _ = &mut stop => break,
            }
        }
        let now = now_ms();
        self.drain(now);
        for m in self.messages.finish_all() {
            self.audit_message(&m);
        }
        self.audit.flush();
        self.written(true).await;
        self.flush();
        self.written(true).await;
        self.fold_at_stop();
    }

    /// The local table's journal, with what a crash or a stop left in it queued for folding;
    /// without one (it cannot be read), batches are written to the table directly.
    fn open_local(&mut self) {
        let UsageStore::Sled(table) = &self.store else {
            return;
        };
        match Local::open(table.clone()) {
            Ok(l) => {
                let left: usize = l.rounds.iter().map(|r| r.items.len()).sum();
                if left > 0 {
                    tracing::info!(
                        rounds = l.rounds.len(),
                        records = left,
                        "usage journal: folding what the last run left into the table"
                    );
                }
                self.local = Some(l);
            }
            Err(e) => tracing::error!(error = %e,
                "usage journal: cannot open it; counts are written to the table directly, each second"),
        }
    }

    /// Fold a step of the journal into the local table: a new round every [`FOLD_EVERY`], or
    /// once the recorder is `quiet` (so that it can sleep).
    fn fold_step(&mut self, quiet: bool) {
        let Some(l) = &mut self.local else {
            return;
        };
        if l.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        if l.rounds.is_empty() && (quiet || l.last_round.elapsed() >= FOLD_EVERY) {
            l.close_round();
        }
        match l.fold(FOLD_STEP) {
            Ok(()) => {
                if l.retry_at.take().is_some() {
                    tracing::info!("usage table: folding the journal into it again");
                }
            }
            Err(e) => {
                l.retry_at = Some(Instant::now() + FLUSH_FAILING);
                Stats::bump(&self.leases.stats.errors);
                if self
                    .last_complaint
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
                {
                    self.last_complaint = Some(Instant::now());
                    tracing::error!(error = %e,
                        "cannot fold the usage journal into the table (answers are not affected): its counts wait in the journal");
                }
            }
        }
    }

    /// Everything in the journal folded, up to `limit` (None: however long it takes).
    fn fold_all(&mut self, limit: Option<Duration>) -> crate::Result<()> {
        let Some(l) = &mut self.local else {
            return Ok(());
        };
        l.close_round();
        let start = Instant::now();
        while !l.rounds.is_empty() && limit.is_none_or(|max| start.elapsed() < max) {
            l.fold(4 * FOLD_STEP)?;
        }
        Ok(())
    }

    /// A stopping daemon folds what it can in [`FOLD_AT_STOP`]; the next start folds the rest.
    fn fold_at_stop(&mut self) {
        if let Err(e) = self.fold_all(Some(FOLD_AT_STOP)) {
            tracing::warn!(error = %e, "usage journal: not folded at stop; the next start folds it");
        }
    }

    fn audit_message(&mut self, m: &Finished) {
        if self.logging {
            self.audit.message(m);
        }
    }

    /// Nothing waits to be written: no open message, no count in the batch, no store failing.
    fn at_rest(&self) -> bool {
        self.messages.is_empty()
            && self.batch.is_empty()
            && self.local.as_ref().is_none_or(Local::is_empty)
            && self.writing.is_none()
            && self.failing_since.is_none()
    }

    /// Sleep until a sender wakes the recorder, a query comes, the prune is due (`prune_in`)
    /// or the daemon stops (true).
    async fn sleep(&mut self, stop: &mut oneshot::Receiver<()>, prune_in: Duration) -> bool {
        self.wake.sleep();
        // An event queued before the flag went up woke nobody: it is taken now.
        if self.drain(now_ms()) > 0 {
            self.wake.awake();
            return false;
        }
        let stopped = tokio::select! {
            _ = self.wake.woken() => false,
            Some(q) = self.queries.recv() => {
                self.answer(q).await;
                false
            }
            _ = tokio::time::sleep(prune_in) => false,
            _ = &mut *stop => true,
        };
        self.wake.awake();
        stopped
    }

    /// Take what is queued (at most [`DRAIN_MAX`]); how many events that was.
    fn drain(&mut self, now: Millis) -> usize {
        self.logging = Audit::enabled();
        self.audit.stamp();
        let mut policy = 0;
        let leases = self.leases.clone();
        if let Some(usage) = leases.usage() {
            let mut log = std::mem::take(&mut self.policy_log);
            policy = usage.take_policy_log(&mut log);
            let started = Instant::now();
            for (i, e) in policy_log::Reader::new(&log).enumerate() {
                self.take(e, now);
                if i % PIECE == PIECE - 1
                    && usage.policy_backlog() < POLICY_LOG_EVENTS / 4
                    && started.elapsed() < PAUSES_WITHIN
                {
                    let_answers_run();
                }
            }
            self.policy_log = log;
        }
        for n in policy..policy + DRAIN_MAX {
            match self.rx.try_recv() {
                Ok(e) => self.take(e, now),
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => return n,
            }
        }
        policy + DRAIN_MAX
    }

    /// Count a use in its user's record (or its address's, for a login without a user).
    fn count(&mut self, u: &Use, d: Delta) {
        match u.user() {
            Some(user) => self.batch.add(b'u', user, d),
            None => self.batch.add_addr(&u.net, d),
        }
    }

    fn take(&mut self, e: Event, now: Millis) {
        match e {
            Event::Use(u) if u.method == Method::PostfixPolicy => {
                Stats::bump(&self.leases.stats.relayed_recipients);
                self.count(&u, Delta::relay(u.at, u.client, false, true));
                let (new, finished) = self.messages.rcpt(u);
                if new {
                    Stats::bump(&self.leases.stats.relayed_messages);
                    self.batch.add_to_last(Delta {
                        messages: 1,
                        ..Delta::default()
                    });
                }
                if let Some(f) = finished {
                    self.audit_message(&f);
                }
            }
            Event::Use(u) => {
                Stats::bump(&self.leases.stats.relay_checks);
                if self.logging {
                    self.audit.check(&u);
                }
                self.count(&u, Delta::relay(u.at, u.client, false, false));
            }
            Event::Login { at, subject, addr } => {
                self.batch
                    .add_subject(&subject, Delta::login(at.min(now), addr));
            }
            Event::Data {
                conn,
                instance,
                queue_id,
            } => {
                if let Some(m) = self.messages.data(conn, &instance, &queue_id) {
                    self.audit_message(&m);
                }
            }
            Event::Closed { conn } => {
                if let Some(m) = self.messages.closed(conn) {
                    self.audit_message(&m);
                }
            }
        }
    }

    /// Write the batch, if there is one (and no write is going on): to the local table's
    /// journal here and now (or, with no journal, to the table), to Redis as a task whose
    /// outcome [`Self::written`] takes.
    ///
    /// Not the table itself, each second: a read-modify-write of every user in the batch
    /// took seconds at the soak's load, during which the queue overflowed, and run beside
    /// the drain (tried 2026-12-06) it grew the daemon to 2.7 GB and held 72 hook logins'
    /// durable writes past their clients' timeout. The journal's append is one write.
    fn flush(&mut self) {
        if self.batch.is_empty() || self.writing.is_some() {
            return;
        }
        let items = self.batch.take();
        match self.store.clone() {
            UsageStore::Sled(t) => match &mut self.local {
                Some(l) => match l.journal.append(&items) {
                    Ok(()) => {
                        l.pending.put_back(items);
                        self.outcome(Vec::new(), Ok(()));
                    }
                    Err(e) => self.outcome(items, Err(e)),
                },
                None => {
                    let r = t.apply(&Batch::records(&items));
                    self.outcome(items, r);
                }
            },
            UsageStore::Redis(r) => {
                let records = Batch::records(&items);
                let uses = items.iter().map(|(_, d)| d.uses()).sum();
                let retention = self.retention;
                let task = tokio::spawn(async move {
                    let res = r.apply(&records, retention).await;
                    (items, res)
                });
                self.writing = Some(Write { task, uses });
            }
        }
    }

    /// Take the outcome of the Redis write going on, once it has ended (`wait`: wait for it).
    async fn written(&mut self, wait: bool) {
        let Some(w) = self.writing.take_if(|w| wait || w.task.is_finished()) else {
            return;
        };
        let (items, result) = match w.task.await {
            Ok(done) => done,
            Err(e) => {
                // The write ended abnormally (a panic in the store): its counts are gone.
                Stats::bump(&self.leases.stats.errors);
                self.leases
                    .stats
                    .usage_lost
                    .fetch_add(w.uses, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(error = %e, lost = w.uses, "usage table: a write ended abnormally; its counts are lost");
                return;
            }
        };
        self.outcome(items, result);
    }

    /// A batch written, or failed: kept for the next write, for a while ([`after_failure`]).
    fn outcome(&mut self, items: Items, result: crate::Result<()>) {
        let now = now_ms();
        match result {
            Ok(()) => {
                if self.failing_since.take().is_some() {
                    tracing::info!(store = self.store.describe(), "usage table written again");
                }
            }
            Err(e) => {
                Stats::bump(&self.leases.stats.errors);
                let since = *self.failing_since.get_or_insert(now);
                let lost = after_failure(&mut self.batch, items, since, now);
                if lost > 0 {
                    self.leases
                        .stats
                        .usage_lost
                        .fetch_add(lost, std::sync::atomic::Ordering::Relaxed);
                }
                if self
                    .last_complaint
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
                {
                    self.last_complaint = Some(Instant::now());
                    tracing::error!(error = %e, lost,
                        "cannot write the usage table (answers are not affected): counts kept for a minute, then dropped and counted as lost in stats");
                }
            }
        }
    }

    async fn prune(&mut self, now: Millis) {
        self.written(true).await;
        match self.store.prune(retention_start(now, self.retention)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                records = n,
                "usage table: dropped records idle for longer than --usage-retention"
            ),
            Err(e) => tracing::warn!(error = %e, "usage table: cannot drop old records"),
        }
    }

    async fn answer(&mut self, q: Query) {
        let now = now_ms();
        // What the queue holds belongs in the answer too, and the batch being written: it is
        // either in the table once the write ends, or back in the batch.
        self.drain(now);
        self.audit.flush();
        self.written(true).await;
        match q {
            Query::Report(reply) => {
                let kept_from = retention_start(now, self.retention);
                let local = self.local.as_ref();
                let rows = self.store.load().await.map(|stored| {
                    let unwritten = self
                        .batch
                        .iter()
                        .chain(local.into_iter().flat_map(Local::unfolded));
                    active_since(merged(stored, unwritten), None, kept_from)
                });
                let _ = reply.send(rows);
            }
            Query::Forget(name, reply) => {
                // Nothing of theirs may stay in the journal, to be folded back after a crash.
                // (Redis has no journal: what waits for it is in the batch, removed below.)
                if self.local.is_some() {
                    self.flush();
                    if let Err(e) = self.fold_all(None) {
                        let _ = reply.send(Err(e));
                        return;
                    }
                }
                let mut n = 0;
                let mut result = Ok(());
                for s in [Subject::User(name.clone()), Subject::Addr(name.clone())] {
                    let pending = self.batch.remove(&s);
                    match self.store.forget(s).await {
                        Ok(found) => n += (found || pending) as usize,
                        Err(e) => result = Err(e),
                    }
                }
                if n > 0 {
                    tracing::info!(user = name.as_str(), "usage record forgotten");
                }
                let _ = reply.send(result.map(|()| n));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Millis = 1_790_000_000_000;

    #[test]
    fn a_failing_store_keeps_counts_for_a_while_then_counts_them_lost() {
        let ip = "192.0.2.1".parse().unwrap();
        let mut batch = Batch::default();
        let alice = Subject::User("alice".into());
        let failed = vec![(alice.key(), Delta::relay(T, ip, true, true))];
        // Failing for a moment: kept, merged with what came meanwhile.
        batch.add(b'u', "alice", Delta::relay(T + 1, ip, false, true));
        assert_eq!(after_failure(&mut batch, failed.clone(), T, T + 1000), 0);
        let kept = batch.get(&alice).map(|r| (r.messages, r.recipients));
        assert_eq!(kept, Some((1, 2)));
        // Failing for a minute: dropped, every use counted.
        assert_eq!(after_failure(&mut batch, failed, T, T + GIVE_UP), 3);
        assert!(batch.is_empty());
    }

    /// "Pruned at start": also by a daemon stopped the moment it started, when the recorder's
    /// first tick and the stop are ready together (select! picks either; several rounds).
    #[test]
    fn a_recorder_stopped_at_once_has_dropped_what_is_past_the_retention() {
        use crate::store::{UsageSled, open_store};
        use crate::usage::table::Record;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for round in 0..12 {
            let dir = tempfile::tempdir().unwrap();
            let sled = open_store(&dir.path().join("db")).unwrap();
            let table = Arc::new(UsageSled::open(&sled));
            let now = now_ms();
            let old = Subject::User("old".into());
            let recent = Subject::User("recent".into());
            table
                .apply(&[
                    (
                        old.clone(),
                        Record::login(now - 7_200_000, "192.0.2.9".into()),
                    ),
                    (recent.clone(), Record::login(now, "192.0.2.1".into())),
                ])
                .unwrap();
            let leases = Arc::new(
                Leases::open(Box::new(sled), crate::lease::Rules::default(), now).unwrap(),
            );
            let settings = Settings {
                retention: Duration::from_secs(3600),
                ..Settings::default()
            };
            let task = start(
                &leases,
                UsageStore::Sled(table.clone()),
                settings,
                LogFormat::Text,
            )
            .unwrap();
            rt.block_on(task.stop(Duration::from_secs(10)));
            let left: Vec<Subject> = table.load().unwrap().into_iter().map(|(s, _)| s).collect();
            assert_eq!(left, [recent], "round {round}");
        }
    }
}
