//! Who relayed: every answer that lets a client relay because of a lease is recorded as one
//! use, off the answer path, and becomes an audit line and a count in the usage table.
//!
//! An answer hands the use to [`Usage::send`], which puts it in a bounded queue and returns
//! (the Postfix policy service, whose uses come at its full rate, appends its connections'
//! events to a bounded log instead, [`Usage::policy`] and [`policy_log`]): recording never
//! delays or changes an answer, and a use that finds the queue or the log full is counted as
//! lost in `stats`. The recorder ([`recorder`], a thread of its own) empties the
//! queue every [`recorder::TICK`] while there is work (with nothing to do it sleeps until
//! [`Usage::send`] wakes it: an idle daemon does not wake twenty times a second), puts
//! Postfix's per-recipient requests together into messages ([`message`]), writes one audit
//! line per relayed message, and adds the counts to the per-user usage table ([`table`]) in
//! batches, every [`recorder::FLUSH`] (the local table through its journal,
//! [`crate::store::usage_journal`]). Logins are counted the same way.
//!
//! # Layout
//! - [`table`]: the usage records and the `usage` report (pure).
//! - [`message`]: messages from policy requests (pure).
//! - [`policy_log`]: the policy service's events as bytes, on their way to the recorder (pure).
//! - [`mark`]: the `--mark-header` value, tokens and `TCPREMOTEINFO` (pure).
//! - [`recorder`]: the task that drains the queue, logs, and writes the table.
//! - [`command`]: `relaylease usage`.

pub mod audit;
pub mod command;
pub mod mark;
pub mod message;
pub mod policy_log;
pub mod recorder;
pub mod table;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cli::UnleasedAction;
use crate::error::{Error, Result};
use crate::lease::Verdict;
use crate::lease::{Login, Millis, lease_key, show_key};
use crate::store::{Leases, Outcome, Stats};
use table::{Row, Subject};

/// Uses and logins waiting for the recorder (about 130 bytes each): at one drain per
/// [`recorder::TICK`] (50 ms), room for 160,000 a second.
pub const QUEUE: usize = 8192;

/// Policy events held for the recorder at most ([`Usage::policy`]): as many as the queue
/// holds, in at most this many bytes (requests with long addresses take more).
pub const POLICY_LOG_EVENTS: usize = QUEUE;
pub const POLICY_LOG_BYTES: usize = 4 << 20;

/// The default `--usage-retention`.
pub const RETENTION: &str = "400d";

/// Which answer granted relay through a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    PostfixPolicy,
    Socketmap,
    EximCheck,
    SmtpWrap,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::PostfixPolicy => "postfix-policy",
            Method::Socketmap => "socketmap",
            Method::EximCheck => "exim-check",
            Method::SmtpWrap => "smtp-wrap",
        }
    }
}

/// Which text of a [`Texts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Text {
    /// The lease's user (empty when it has none: see [`Use::user`]).
    User = 0,
    /// Where the login that granted the lease came from.
    Source = 1,
    /// The Postfix policy request's `instance`, `sender`, `recipient` and `queue_id`.
    Instance = 2,
    Sender = 3,
    Recipient = 4,
    QueueId = 5,
}

/// The texts of one use in one allocation: an answer makes one and the recorder frees one,
/// however many texts the use carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Texts {
    buf: String,
    ends: [u32; 6],
}

impl Texts {
    /// The texts in [`Text`] order.
    pub fn new(parts: [&str; 6]) -> Texts {
        let mut buf = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0u32; 6];
        for (end, p) in ends.iter_mut().zip(parts) {
            buf.push_str(p);
            *end = buf.len() as u32;
        }
        Texts { buf, ends }
    }

    pub fn get(&self, t: Text) -> &str {
        let i = t as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.buf.get(start..self.ends[i] as usize).unwrap_or("")
    }
}

/// One answer that granted relay because of a lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Use {
    pub at: Millis,
    pub client: IpAddr,
    /// The lease's key.
    pub net: ipnet::IpNet,
    /// When the login that granted (or last renewed) the lease happened.
    pub login_at: Millis,
    pub has_user: bool,
    pub method: Method,
    /// The Postfix policy connection it came on (0 for the other methods).
    pub conn: u64,
    pub texts: Texts,
}

impl Use {
    /// A use of the lease `l`; `policy` is the request's instance, sender, recipient and
    /// queue id (empty for the methods that do not say which message).
    pub fn new(
        l: &crate::store::LeaseRef<'_>,
        at: Millis,
        client: IpAddr,
        method: Method,
        conn: u64,
        policy: [&str; 4],
    ) -> Use {
        let [instance, sender, recipient, queue_id] = policy;
        Use {
            at,
            client,
            net: l.net,
            login_at: l.last_login,
            has_user: l.user.is_some(),
            method,
            conn,
            texts: Texts::new([
                l.user.unwrap_or(""),
                l.source,
                instance,
                sender,
                recipient,
                queue_id,
            ]),
        }
    }

    pub fn user(&self) -> Option<&str> {
        self.has_user.then(|| self.texts.get(Text::User))
    }

    pub fn text(&self, t: Text) -> &str {
        self.texts.get(t)
    }
}

/// What an answer or a login hands to the recorder.
#[derive(Debug)]
pub enum Event {
    /// Relay granted because of a lease.
    Use(Use),
    /// A successful login (whether or not it earned a lease).
    Login {
        at: Millis,
        subject: Subject,
        addr: IpAddr,
    },
    /// The DATA or END-OF-MESSAGE request of a message that relayed through a lease.
    Data {
        conn: u64,
        instance: String,
        queue_id: String,
    },
    /// A policy connection that carried leased messages closed.
    Closed { conn: u64 },
}

/// `--mark-header`, `--mark-token-secret`, `--unleased-action`, `--usage-retention`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub mark_header: Option<String>,
    pub secret: Option<mark::Secret>,
    pub unleased: UnleasedAction,
    pub retention: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mark_header: None,
            secret: None,
            unleased: UnleasedAction::Dunno,
            retention: Duration::from_secs(400 * 86_400),
        }
    }
}

/// What the control socket asks the recorder.
#[derive(Debug)]
pub enum Query {
    /// Every record, with the counts not yet written.
    Report(std::sync::mpsc::Sender<Result<Vec<Row>>>),
    /// Remove a user's (or an address's) record; replies how many were removed.
    Forget(String, std::sync::mpsc::Sender<Result<usize>>),
}

/// The answers' and logins' way to the recorder, kept in [`Leases`].
pub struct Usage {
    tx: SyncSender<Event>,
    /// The policy service's events ([`policy_log`]), waiting for the recorder's next drain.
    policy: Mutex<PolicyLog>,
    wake: Arc<Wake>,
    queries: tokio::sync::mpsc::Sender<Query>,
    pub settings: Settings,
    conns: AtomicU64,
}

/// Encoded [`policy_log::PolicyEvent`]s and how many.
#[derive(Default)]
struct PolicyLog {
    buf: Vec<u8>,
    events: usize,
}

/// How long the control socket waits for the recorder's answer.
const QUERY_WAIT: Duration = Duration::from_secs(10);

impl Usage {
    /// A number for a new policy connection, unique in this daemon.
    pub fn next_conn(&self) -> u64 {
        self.conns.fetch_add(1, Ordering::Relaxed)
    }

    /// Queue `e` for the recorder, never waiting: when the queue is full it is lost, and
    /// counted.
    pub fn send(&self, e: Event, stats: &Stats) {
        match self.tx.try_send(e) {
            Ok(()) => self.wake.queued(),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                Stats::bump(&stats.usage_lost);
            }
        }
    }

    /// Log one of a policy connection's events for the recorder, never waiting: beyond
    /// [`POLICY_LOG_EVENTS`] or [`POLICY_LOG_BYTES`] (a recorder that does not keep up) it
    /// is lost, and counted, as a full queue loses what [`Usage::send`] is given.
    pub fn policy(&self, e: &policy_log::PolicyEvent<'_>, stats: &Stats) {
        let first = {
            // Nothing panics while the lock is held (encoding only appends): a poisoned
            // lock still holds a whole log.
            let mut log = self.policy.lock().unwrap_or_else(|p| p.into_inner());
            if log.events >= POLICY_LOG_EVENTS || log.buf.len() >= POLICY_LOG_BYTES {
                drop(log);
                Stats::bump(&stats.usage_lost);
                return;
            }
            policy_log::encode(&mut log.buf, e);
            log.events += 1;
            log.events == 1
        };
        // Only the first event since the recorder's last take can find it asleep: the
        // recorder raises its flag before it takes the log (under this lock), so either it
        // takes this event or this sees the flag.
        if first {
            self.wake.queued();
        }
    }

    /// The recorder's side of [`Usage::policy`]: the events logged since the last take, in
    /// `spare`'s place (`spare`, emptied, becomes the new log: no allocation once both have
    /// grown); how many.
    pub fn take_policy_log(&self, spare: &mut Vec<u8>) -> usize {
        spare.clear();
        let mut log = self.policy.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::swap(&mut log.buf, spare);
        std::mem::take(&mut log.events)
    }

    /// How many of the policy service's events wait for the recorder's next take.
    pub fn policy_backlog(&self) -> usize {
        self.policy.lock().unwrap_or_else(|p| p.into_inner()).events
    }

    /// Who a mark names for this lease (user or token), when `--mark-header` is set.
    pub fn mark_who(&self, user: Option<&str>, net: &ipnet::IpNet) -> Option<String> {
        self.settings.mark_header.as_ref()?;
        mark::who(self.settings.secret.as_ref(), user, &show_key(net)).map(|(_, w)| w)
    }

    /// The header to prepend for a message relayed through this lease.
    pub fn header(
        &self,
        user: Option<&str>,
        net: &ipnet::IpNet,
        login_at: Millis,
    ) -> Option<(&str, String)> {
        let name = self.settings.mark_header.as_deref()?;
        let who = mark::who(self.settings.secret.as_ref(), user, &show_key(net));
        Some((name, mark::header_value(who, login_at)))
    }

    fn ask<T>(&self, make: impl FnOnce(std::sync::mpsc::Sender<Result<T>>) -> Query) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.queries
            .try_send(make(tx))
            .map_err(|_| Error::invalid("the usage recorder is busy or stopped; try again"))?;
        rx.recv_timeout(QUERY_WAIT).unwrap_or_else(|_| {
            Err(Error::invalid(
                "the usage recorder did not answer within 10s",
            ))
        })
    }

    /// Every record of the table, the counts not yet written included (blocking: call it
    /// off the runtime's worker threads).
    pub fn report(&self) -> Result<Vec<Row>> {
        self.ask(Query::Report)
    }

    /// Remove the records of `name` (a user, or an address); blocking like [`Self::report`].
    pub fn forget(&self, name: &str) -> Result<usize> {
        self.ask(|tx| Query::Forget(name.to_string(), tx))
    }

    /// The record whose token is `token` (`usage --token`).
    pub fn find_token(&self, token: &str) -> Result<Option<Row>> {
        let secret = self.settings.secret.as_ref().ok_or_else(|| {
            Error::invalid(
                "the daemon has no --mark-token-secret: its marks name users, not tokens",
            )
        })?;
        let token = token.trim().to_ascii_lowercase();
        Ok(self
            .report()?
            .into_iter()
            .find(|r| secret.token(&r.subject()) == token))
    }
}

/// A new [`Usage`] and the queue ends the recorder reads.
pub fn channel(
    settings: Settings,
) -> (
    Usage,
    std::sync::mpsc::Receiver<Event>,
    tokio::sync::mpsc::Receiver<Query>,
    Arc<Wake>,
) {
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
    let (qtx, qrx) = tokio::sync::mpsc::channel(16);
    let wake = Arc::new(Wake::default());
    (
        Usage {
            tx,
            policy: Mutex::default(),
            wake: wake.clone(),
            queries: qtx,
            settings,
            conns: AtomicU64::new(1),
        },
        rx,
        qrx,
        wake,
    )
}

/// How the recorder sleeps while it has nothing to do, and how a sender wakes it. Only the
/// first event after a sleep costs a wake-up; while the recorder is awake a sender pays one
/// fence and one load.
#[derive(Debug, Default)]
pub struct Wake {
    asleep: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Wake {
    /// An event was queued: wake the recorder if it sleeps.
    fn queued(&self) {
        // Pairs with the fence in `sleep`: either this load sees the flag, or the recorder's
        // look at the queue after raising it sees the event (the fences keep each side's
        // store before its load). Measured on the policy benchmark: no change (100.0% of the
        // build before).
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.asleep.load(Ordering::Relaxed) && self.asleep.swap(false, Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }

    /// The recorder goes to sleep: from now on a queued event wakes it. It must look at the
    /// queue once more after this, for an event queued just before.
    pub fn sleep(&self) {
        self.asleep.store(true, Ordering::SeqCst);
        // Pairs with the fence in `queued`.
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// Until a sender wakes the recorder (at once if one did since the last wait).
    pub async fn woken(&self) {
        self.notify.notified().await;
    }

    /// The recorder is awake again, however it woke.
    pub fn awake(&self) {
        self.asleep.store(false, Ordering::SeqCst);
    }
}

/// A login the lease table judged: counted in its user's record (logins replayed from an
/// old log, too old to grant anything, are not).
pub fn login_seen(leases: &Leases, login: &Login, outcome: &Outcome, now: Millis) {
    let Some(usage) = leases.usage() else {
        return;
    };
    if matches!(outcome, Outcome::Refused(Verdict::Stale)) {
        return;
    }
    let subject = match &login.user {
        Some(u) => Subject::User(u.clone()),
        None => Subject::Addr(show_key(&lease_key(login.ip, leases.rules().v6_prefix))),
    };
    usage.send(
        Event::Login {
            at: login.at.min(now),
            subject,
            addr: crate::lease::canonical(login.ip),
        },
        &leases.stats,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_never_waits_and_counts_what_it_lost() {
        let (usage, rx, _queries, _wake) = channel(Settings::default());
        let stats = Stats::default();
        let login = |i: u64| Event::Login {
            at: i,
            subject: Subject::User("alice".into()),
            addr: "192.0.2.1".parse().unwrap(),
        };
        for i in 0..QUEUE as u64 + 5 {
            usage.send(login(i), &stats);
        }
        assert_eq!(stats.usage_lost.load(Ordering::Relaxed), 5);
        assert_eq!(rx.try_iter().count(), QUEUE);
        // A recorder that is gone loses everything, still without waiting.
        drop(rx);
        usage.send(login(0), &stats);
        assert_eq!(stats.usage_lost.load(Ordering::Relaxed), 6);
    }

    /// The policy log holds what the queue holds, never waits, counts what it loses, and
    /// hands over its events in order; after a take it has room again.
    #[test]
    fn the_policy_log_never_waits_and_counts_what_it_lost() {
        use policy_log::{PolicyEvent, Reader};
        let (usage, _rx, _queries, _wake) = channel(Settings::default());
        let stats = Stats::default();
        for conn in 0..POLICY_LOG_EVENTS as u64 + 3 {
            usage.policy(&PolicyEvent::Closed { conn }, &stats);
        }
        assert_eq!(stats.usage_lost.load(Ordering::Relaxed), 3);
        assert_eq!(usage.policy_backlog(), POLICY_LOG_EVENTS);
        let mut log = Vec::new();
        assert_eq!(usage.take_policy_log(&mut log), POLICY_LOG_EVENTS);
        assert_eq!(usage.policy_backlog(), 0);
        let conns: Vec<u64> = Reader::new(&log)
            .map(|e| match e {
                Event::Closed { conn } => conn,
                other => panic!("not a close: {other:?}"),
            })
            .collect();
        assert_eq!(conns, (0..POLICY_LOG_EVENTS as u64).collect::<Vec<_>>());
        usage.policy(&PolicyEvent::Closed { conn: 7 }, &stats);
        assert_eq!(usage.take_policy_log(&mut log), 1);
        assert_eq!(Reader::new(&log).count(), 1);
        assert_eq!(stats.usage_lost.load(Ordering::Relaxed), 3);
    }

    /// A receiver that goes to sleep whenever it took nothing, as the recorder does, is woken
    /// by the event that follows: a sender racing its sleeps, 20,000 times, never leaves an
    /// event waiting (a lost wake-up would leave it asleep until the 5 s limit). `take`
    /// takes what waits and says how many; `send` sends event `i`; `room` is what the way
    /// between them holds.
    fn a_sleeping_receiver_takes_every_event(
        wake: Arc<Wake>,
        mut take: impl FnMut() -> usize + Send + 'static,
        send: impl Fn(u64),
        room: usize,
    ) {
        use std::sync::atomic::AtomicUsize;
        const N: usize = 20_000;
        let taken = Arc::new(AtomicUsize::new(0));
        let progress = taken.clone();
        let receiver = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut sleeps = 0;
                loop {
                    taken.fetch_add(take(), Ordering::Relaxed);
                    if taken.load(Ordering::Relaxed) == N {
                        return Ok(sleeps);
                    }
                    wake.sleep();
                    let got = take();
                    if got > 0 {
                        taken.fetch_add(got, Ordering::Relaxed);
                        wake.awake();
                        continue;
                    }
                    sleeps += 1;
                    let woke = tokio::time::timeout(Duration::from_secs(5), wake.woken()).await;
                    wake.awake();
                    if woke.is_err() {
                        return Err(format!(
                            "asleep for 5 s with {} of {N} events taken",
                            taken.load(Ordering::Relaxed)
                        ));
                    }
                }
            })
        });
        for i in 0..N {
            // Never more in flight than the way holds, so nothing is lost to a full one.
            let t = std::time::Instant::now();
            while i - progress.load(Ordering::Relaxed) >= room / 2 {
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "the receiver stopped"
                );
                std::thread::yield_now();
            }
            send(i as u64);
            if i % 3 == 0 {
                std::thread::yield_now();
            }
        }
        let sleeps = receiver.join().unwrap().unwrap();
        assert!(
            sleeps > 0,
            "the receiver never slept: the race was not exercised"
        );
    }

    #[test]
    fn a_sleeping_receiver_is_woken_by_every_event() {
        let (usage, rx, _queries, wake) = channel(Settings::default());
        let stats = Stats::default();
        let take = move || rx.try_iter().count();
        let send = |conn| usage.send(Event::Closed { conn }, &stats);
        a_sleeping_receiver_takes_every_event(wake, take, send, QUEUE);
        assert_eq!(stats.usage_lost.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_sleeping_receiver_is_woken_by_every_policy_event() {
        let (usage, _rx, _queries, wake) = channel(Settings::default());
        let usage = Arc::new(usage);
        let stats = Stats::default();
        let taker = usage.clone();
        let mut log = Vec::new();
        let take = move || taker.take_policy_log(&mut log);
        let send = |conn| usage.policy(&policy_log::PolicyEvent::Closed { conn }, &stats);
        a_sleeping_receiver_takes_every_event(wake, take, send, POLICY_LOG_EVENTS);
        assert_eq!(stats.usage_lost.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn texts_travel_together_and_come_apart_again() {
        let t = Texts::new([
            "alice",
            "/var/log/mail.log",
            "i1",
            "",
            "b@remote.example",
            "Q1",
        ]);
        assert_eq!(t.get(Text::User), "alice");
        assert_eq!(t.get(Text::Source), "/var/log/mail.log");
        assert_eq!(t.get(Text::Sender), "");
        assert_eq!(t.get(Text::QueueId), "Q1");
        assert_eq!(Texts::default().get(Text::Recipient), "");
    }
}
