//! The recorder task: drains the queue of uses and logins, writes the audit lines, and adds
//! the counts to the usage table in batches.
//!
//! Crash bound: a use waits at most [`TICK`] in the queue and [`FLUSH`] in the batch before
//! the batch is written and flushed to the file, so a daemon killed with `kill -9` loses at
//! most the counts of about the last [`CRASH_BOUND_SECS`] seconds (the two, plus the time one
//! write takes), and the audit lines of messages still open then.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::message::{Finished, Messages};
use super::table::{Batch, Record, Subject, active_since, merged};
use super::{Event, Method, Query, Settings, subject_of};
use crate::lease::{Millis, now_ms, show_key};
use crate::store::{Leases, Stats, UsageStore};

/// How often the queue is drained.
pub const TICK: Duration = Duration::from_millis(50);
/// How often the batch of counts is written.
pub const FLUSH: Duration = Duration::from_secs(1);
/// What a `kill -9` may lose, in seconds, as the documentation states it.
pub const CRASH_BOUND_SECS: u64 = 2;
/// Events handled per drain, at most; the rest wait for the next tick.
const DRAIN_MAX: usize = 65_536;
/// A store that keeps failing this long has its counts dropped (and counted as lost).
pub const GIVE_UP: Millis = 60_000;
/// Subjects kept waiting while the store fails; beyond that counts are dropped.
const MAX_WAITING: usize = 100_000;
/// How often records idle for longer than the retention are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// A batch that could not be written: kept for the next flush, unless the store has been
/// failing since `GIVE_UP` ago or too much waits. Returns how many uses were dropped.
pub fn after_failure(
    batch: &mut Batch,
    failed: Vec<(Subject, Record)>,
    failing_since: Millis,
    now: Millis,
) -> u64 {
    if now.saturating_sub(failing_since) >= GIVE_UP || batch.len() + failed.len() > MAX_WAITING {
        let mut lost: u64 = failed.iter().map(|(_, r)| r.uses()).sum();
        lost += batch.uses();
        batch.take();
        return lost;
    }
    for (s, r) in failed {
        batch.add(s, r);
    }
    0
}

pub struct Recorder {
    rx: Receiver<Event>,
    queries: mpsc::Receiver<Query>,
    store: UsageStore,
    leases: Arc<Leases>,
    retention: Duration,
    messages: Messages,
    batch: Batch,
    failing_since: Option<Millis>,
    last_complaint: Option<Instant>,
}

/// The running recorder: [`RecorderTask::stop`] writes what is left and waits for it.
pub struct RecorderTask {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl RecorderTask {
    /// Finish every open message, write the last batch, and return (within `limit`).
    pub async fn stop(self, limit: Duration) {
        let _ = self.stop.send(());
        if tokio::time::timeout(limit, self.task).await.is_err() {
            tracing::warn!("usage recorder: the last counts were not written in time");
        }
    }
}

/// Put a [`super::Usage`] into `leases` and start its recorder.
pub fn start(leases: &Arc<Leases>, store: UsageStore, settings: Settings) -> RecorderTask {
    let retention = settings.retention;
    let (usage, rx, queries) = super::channel(settings);
    leases.set_usage(usage);
    let r = Recorder {
        rx,
        queries,
        store,
        leases: leases.clone(),
        retention,
        messages: Messages::default(),
        batch: Batch::default(),
        failing_since: None,
        last_complaint: None,
    };
    let (stop, stopped) = oneshot::channel();
    RecorderTask {
        stop,
        task: tokio::spawn(r.run(stopped)),
    }
}

fn dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

/// The audit line of a message relayed through a lease.
fn audit_message(m: &Finished) {
    let mut recipients = m.recipients.join(",");
    if m.count > m.recipients.len() as u64 {
        recipients.push_str(",...");
    }
    // Text from requests and logs goes in as strings: the text format quotes and escapes
    // them (a newline cannot start a forged line), JSON carries them as they are.
    tracing::info!(
        client = %m.client,
        user = m.lease.user.as_deref().unwrap_or("-"),
        lease = %show_key(&m.lease.net),
        login_source = m.lease.source.as_str(),
        login_at = %super::table::utc(Some(m.lease.login_at)),
        method = Method::PostfixPolicy.name(),
        sender = dash(&m.sender),
        recipients = recipients.as_str(),
        rcpt_count = m.count,
        queue_id = dash(&m.queue_id),
        instance = dash(&m.instance),
        "relayed through a lease"
    );
}

impl Recorder {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_flush = Instant::now();
        let mut last_prune: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let now = now_ms();
                    self.drain(now);
                    for m in self.messages.quiet(now) {
                        audit_message(&m);
                    }
                    if last_flush.elapsed() >= FLUSH {
                        last_flush = Instant::now();
                        self.flush(now).await;
                    }
                    if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                        last_prune = Some(Instant::now());
                        self.prune(now).await;
                    }
                }
                Some(q) = self.queries.recv() => self.answer(q).await,
                _ = &mut stop => break,
            }
        }
        let now = now_ms();
        self.drain(now);
        for m in self.messages.finish_all() {
            audit_message(&m);
        }
        self.flush(now).await;
    }

    fn drain(&mut self, now: Millis) {
        for _ in 0..DRAIN_MAX {
            match self.rx.try_recv() {
                Ok(e) => self.take(e, now),
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => return,
            }
        }
    }

    fn take(&mut self, e: Event, now: Millis) {
        let stats = &self.leases.stats;
        match e {
            Event::Use {
                at,
                client,
                lease,
                method,
                policy: Some(p),
            } => {
                debug_assert_eq!(method, Method::PostfixPolicy);
                let subject = subject_of(lease.user.as_deref(), &lease.net);
                let (new, finished) = self.messages.rcpt(at, client, &lease, p);
                if let Some(f) = finished {
                    audit_message(&f);
                }
                Stats::bump(&stats.relayed_recipients);
                if new {
                    Stats::bump(&stats.relayed_messages);
                }
                self.batch
                    .add(subject, Record::relay(at, client.to_string(), new, true));
            }
            Event::Use {
                at,
                client,
                lease,
                method,
                policy: None,
            } => {
                tracing::info!(
                    client = %client,
                    user = lease.user.as_deref().unwrap_or("-"),
                    lease = %show_key(&lease.net),
                    login_source = lease.source.as_str(),
                    login_at = %super::table::utc(Some(lease.login_at)),
                    method = method.name(),
                    "relay granted through a lease"
                );
                Stats::bump(&stats.relay_checks);
                let subject = subject_of(lease.user.as_deref(), &lease.net);
                self.batch
                    .add(subject, Record::relay(at, client.to_string(), false, false));
            }
            Event::Login { at, subject, addr } => {
                self.batch.add(subject, Record::login(at.min(now), addr));
            }
            Event::Data {
                conn,
                instance,
                queue_id,
            } => {
                if let Some(m) = self.messages.data(conn, &instance, &queue_id) {
                    audit_message(&m);
                }
            }
            Event::Closed { conn } => {
                if let Some(m) = self.messages.closed(conn) {
                    audit_message(&m);
                }
            }
        }
    }

    async fn flush(&mut self, now: Millis) {
        if self.batch.is_empty() {
            return;
        }
        let items = self.batch.take();
        match self.store.apply(items.clone(), self.retention).await {
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
        let before = now.saturating_sub(self.retention.as_millis().min(u64::MAX as u128) as u64);
        match self.store.prune(before).await {
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
        // What the queue holds belongs in the answer too.
        self.drain(now);
        match q {
            Query::Report(reply) => {
                let kept_from =
                    now.saturating_sub(self.retention.as_millis().min(u64::MAX as u128) as u64);
                let rows = self
                    .store
                    .load()
                    .await
                    .map(|stored| active_since(merged(stored, &self.batch), None, kept_from));
                let _ = reply.send(rows);
            }
            Query::Forget(name, reply) => {
                let mut n = 0;
                let mut result = Ok(());
                for s in [Subject::User(name.clone()), Subject::Addr(name.clone())] {
                    let pending = self.batch.remove(&s).is_some();
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
        let mut batch = Batch::default();
        let alice = Subject::User("alice".into());
        let failed = vec![(
            alice.clone(),
            Record::relay(T, "192.0.2.1".into(), true, true),
        )];
        // Failing for a moment: kept, merged with what came meanwhile.
        batch.add(
            alice.clone(),
            Record::relay(T + 1, "192.0.2.1".into(), false, true),
        );
        assert_eq!(after_failure(&mut batch, failed.clone(), T, T + 1000), 0);
        assert_eq!(
            batch.get(&alice).map(|r| (r.messages, r.recipients)),
            Some((1, 2))
        );
        // Failing for a minute: dropped, every use counted.
        assert_eq!(after_failure(&mut batch, failed, T, T + GIVE_UP), 3);
        assert!(batch.is_empty());
    }
}
