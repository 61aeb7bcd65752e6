//! The lease table: an in-memory index that answers questions, written through to a durable
//! backend (sled, or Redis shared by a site's hosts) behind the small [`Backend`] trait.

mod index;
mod redis_store;
pub mod redis_sync;
mod sled_store;
pub mod usage_journal;
mod usage_redis;
mod usage_store;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;
use tokio::sync::{Notify, watch};

pub use redis_store::{RedisBackend, RedisConfig, RedisLink, STORE_META, drop_queue};
pub use sled_store::{Opened, SledBackend};
pub use usage_redis::UsageRedis;
pub use usage_store::{UsageSled, UsageStore};

use crate::error::{Error, Result};
use crate::lease::{
    Lease, Login, Millis, Rules, SOURCE_MANUAL, Verdict, lease_key, mono_bound, mono_ms, show_key,
};
use index::Index;
pub use index::LeaseRef;

/// The [`STORE_META`] record of a host whose leases are in its own database.
pub const LOCAL_STORE: &[u8] = b"local";

/// Open the lease database, moving a corrupt one aside.
pub fn open_store(db: &std::path::Path) -> Result<SledBackend> {
    Ok(match SledBackend::open(db)? {
        Opened::Fine(b) => b,
        Opened::Quarantined(b, _) => b,
    })
}

/// Where leases live when the process stops.
pub trait Backend: Send + Sync {
    /// Every stored lease, expired ones included (the caller drops those).
    fn load(&self) -> Result<Vec<Lease>>;
    /// [`Backend::load`] one lease at a time, so that opening a large table does not hold
    /// every lease twice.
    fn load_each(&self, each: &mut dyn FnMut(Lease)) -> Result<()> {
        for lease in self.load()? {
            each(lease);
        }
        Ok(())
    }
    fn put(&self, lease: &Lease) -> Result<()>;
    /// Several leases at once (extensions of open sessions' leases): a store that can
    /// writes them in one batch.
    fn put_many(&self, leases: &[Lease]) -> Result<()> {
        for l in leases {
            self.put(l)?;
        }
        Ok(())
    }
    fn remove(&self, net: &IpNet) -> Result<()>;
    fn clear(&self) -> Result<()>;
    /// A lease reached its deadline. A store that expires records itself (Redis) ignores
    /// this: deleting there could remove another host's renewal it has not seen yet.
    fn expired(&self, net: &IpNet) -> Result<()> {
        self.remove(net)
    }
    /// Make every earlier write durable before returning.
    fn sync(&self) -> Result<()>;
    /// [`Backend::sync`], and whether every earlier write also reached the shared store
    /// (Redis, and `--store-replicas` replicas of it): false while it waits in this host's
    /// queue.
    fn sync_confirmed(&self) -> Result<bool> {
        self.sync().map(|()| true)
    }
    /// Make every earlier write durable on this host, without waiting for a shared store.
    fn sync_local(&self) -> Result<()> {
        self.sync()
    }
    /// Small named records that are not leases (log file positions, settings).
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>>;
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<()>;
    /// Write a lease and a meta record so that a crash keeps both or neither (a log
    /// position with the login read at it).
    fn put_with_meta(&self, lease: &Lease, key: &str, value: &[u8]) -> Result<()> {
        self.put(lease)?;
        self.put_meta(key, value)
    }
    /// [`Backend::put_with_meta`] for several leases (the logins read from one chunk of a
    /// log). Here the meta record goes with the last one: a crash in between keeps leases
    /// whose lines will be read again (a login counted twice), never a position past a
    /// login whose lease was not kept.
    fn put_many_with_meta(&self, leases: &[Lease], key: &str, value: &[u8]) -> Result<()> {
        let Some((last, rest)) = leases.split_last() else {
            return self.put_meta(key, value);
        };
        for l in rest {
            self.put(l)?;
        }
        self.put_with_meta(last, key, value)
    }
}

/// How many lease extensions go in one backend write.
const EXTEND_BATCH: usize = 512;

/// The answer to "may this address relay now?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Static(IpNet),
    Lease(Lease),
    No,
}

impl Answer {
    pub fn allowed(&self) -> bool {
        !matches!(self, Answer::No)
    }
}

/// [`Leases::grant`]'s answer: relay by `--allow`, by a lease (with what `f` made of it),
/// or not at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant<R> {
    No,
    Static,
    Lease(R),
}

/// What a login did to the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Granted(Lease),
    Renewed(Lease),
    Refused(Verdict),
}

/// The lease table's counters for `relaylease stats` (the answers' are in
/// [`crate::counters::Counters`]).
#[derive(Default)]
pub struct Stats {
    logins_by_source: Mutex<BTreeMap<String, u64>>,
    pub granted: AtomicU64,
    pub renewed: AtomicU64,
    pub refused: AtomicU64,
    pub expired: AtomicU64,
    pub deleted: AtomicU64,
    pub errors: AtomicU64,
    /// Uses of leases (see [`crate::usage`]): messages and recipients through the Postfix
    /// policy service, and checks answered yes by the socketmap, Exim and smtp-wrap.
    pub relayed_messages: AtomicU64,
    pub relayed_recipients: AtomicU64,
    pub relay_checks: AtomicU64,
    /// Uses and logins not recorded in the usage table: the recorder's queue was full, or
    /// the table could not be written.
    pub usage_lost: AtomicU64,
}

impl Stats {
    pub fn count_login(&self, source: &str) {
        if let Ok(mut m) = self.logins_by_source.lock() {
            *m.entry(source.to_string()).or_default() += 1;
        }
    }

    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self, active: usize) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            leases_active: active as u64,
            logins_by_source: self
                .logins_by_source
                .lock()
                .map(|m| m.clone())
                .unwrap_or_default(),
            granted: get(&self.granted),
            renewed: get(&self.renewed),
            refused: get(&self.refused),
            expired: get(&self.expired),
            deleted: get(&self.deleted),
            errors: get(&self.errors),
            relayed_messages: get(&self.relayed_messages),
            relayed_recipients: get(&self.relayed_recipients),
            relay_checks: get(&self.relay_checks),
            usage_lost: get(&self.usage_lost),
            // Filled in from [`crate::counters::Counters`] where the daemon keeps them.
            policy_ok: 0,
            policy_dunno: 0,
            policy_defer: 0,
            policy_prepend: 0,
            sessions_open: 0,
            forged: 0,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub leases_active: u64,
    pub logins_by_source: BTreeMap<String, u64>,
    pub granted: u64,
    pub renewed: u64,
    pub refused: u64,
    pub expired: u64,
    pub deleted: u64,
    pub policy_ok: u64,
    pub policy_dunno: u64,
    pub errors: u64,
    /// Absent from an older daemon's answer.
    #[serde(default)]
    pub sessions_open: u64,
    /// Absent from an older daemon's answer.
    #[serde(default)]
    pub forged: u64,
    #[serde(default)]
    pub policy_defer: u64,
    #[serde(default)]
    pub policy_prepend: u64,
    #[serde(default)]
    pub relayed_messages: u64,
    #[serde(default)]
    pub relayed_recipients: u64,
    #[serde(default)]
    pub relay_checks: u64,
    #[serde(default)]
    pub usage_lost: u64,
}

/// The lease table shared by every source and answer in the daemon (and by the commands
/// when they work on the database directly).
pub struct Leases {
    table: RwLock<Index>,
    /// Held by whoever changes leases, across the backend write and the table update: the
    /// table changes in the order the backend was written, and the backend is written
    /// outside the table's lock, so answers never wait for the disk.
    writer: Mutex<()>,
    backend: Box<dyn Backend>,
    rules: RwLock<Arc<Rules>>,
    /// Bumped on every change to the set of leased keys, for answers that rebuild a file.
    changed: watch::Sender<u64>,
    /// Wakes the expiry task when a deadline earlier than all others arrives.
    sooner: Notify,
    pub stats: Stats,
    /// Where answers and logins record their uses (set once by the daemon).
    usage: OnceLock<crate::usage::Usage>,
    /// The monotonic clock that bounds leases written in this process.
    mono: MonoClock,
}

/// The monotonic clock the lease table reads: the process's own, or one a test moves.
enum MonoClock {
    System,
    #[cfg(test)]
    Manual(Arc<AtomicU64>),
}

/// The lease a login makes: `current` renewed to `deadline`, or a new one.
fn renewed_or_new(current: Option<Lease>, login: &Login, net: IpNet, deadline: Millis) -> Lease {
    match current {
        Some(mut l) => {
            l.renew(login, deadline);
            l
        }
        None => Lease::new(net, login, deadline),
    }
}

fn poisoned() -> Error {
    Error::invalid("internal error: lease table lock poisoned")
}

impl Leases {
    /// Load the backend's leases, dropping (and deleting) those already past their deadline:
    /// a restart never brings back an expired lease.
    pub fn open(backend: Box<dyn Backend>, rules: Rules, now: Millis) -> Result<Self> {
        let mut expired = Vec::new();
        let mut loaded = Ok(());
        let table = Index::build(|each| {
            loaded = backend.load_each(&mut |lease| {
                if lease.is_live(now) {
                    each(lease);
                } else {
                    expired.push(lease.net);
                }
            });
        });
        loaded?;
        for net in &expired {
            backend.remove(net)?;
        }
        let dropped = expired.len();
        if dropped > 0 {
            tracing::info!(count = dropped, "dropped leases that expired while stopped");
        }
        let (changed, _) = watch::channel(0);
        Ok(Leases {
            table: RwLock::new(table),
            writer: Mutex::new(()),
            backend,
            rules: RwLock::new(Arc::new(rules)),
            changed,
            sooner: Notify::new(),
            stats: Stats::default(),
            usage: OnceLock::new(),
            mono: MonoClock::System,
        })
    }

    /// Read the monotonic clock from `clock` instead of the process's own.
    #[cfg(test)]
    pub(crate) fn with_mono_clock(mut self, clock: Arc<AtomicU64>) -> Self {
        self.mono = MonoClock::Manual(clock);
        self
    }

    /// Now on the monotonic clock that bounds leases ([`crate::lease::mono_bound`]).
    pub fn mono_now(&self) -> Millis {
        match &self.mono {
            MonoClock::System => mono_ms(),
            #[cfg(test)]
            MonoClock::Manual(c) => c.load(Ordering::Relaxed),
        }
    }

    /// The system clock was stepped back: bring every deadline beyond its lease's monotonic
    /// bound forward to it, so the expiry task ends those leases on time (answers already
    /// refuse them). Returns how many moved.
    pub fn clamp_to_bounds(&self, now: Millis) -> usize {
        let mono = self.mono_now();
        let moved = match self.table.write() {
            Ok(mut t) => t.clamp_to_bounds(now, mono),
            Err(_) => 0,
        };
        if moved > 0 {
            self.sooner.notify_one();
        }
        moved
    }

    pub fn rules(&self) -> Arc<Rules> {
        match self.rules.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn set_rules(&self, rules: Rules) {
        match self.rules.write() {
            Ok(mut r) => *r = Arc::new(rules),
            Err(p) => *p.into_inner() = Arc::new(rules),
        }
    }

    /// Record uses and logins through `usage` from now on (once; later calls are ignored).
    pub fn set_usage(&self, usage: crate::usage::Usage) {
        let _ = self.usage.set(usage);
    }

    pub fn usage(&self) -> Option<&crate::usage::Usage> {
        self.usage.get()
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// Subscribe to changes of the leased set (value is a change counter).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Resolves when a deadline sooner than the expiry task's current one was inserted.
    pub async fn sooner_deadline(&self) {
        self.sooner.notified().await
    }

    fn changed(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn write_lock(&self) -> Result<MutexGuard<'_, ()>> {
        self.writer.lock().map_err(|_| poisoned())
    }

    /// Put leases the backend already holds into the table, waking the expiry task for a
    /// sooner deadline and announcing new keys.
    /// Each is bounded on the monotonic clock from `now`, when it was written.
    fn upsert_all(&self, _w: &MutexGuard<'_, ()>, leases: Vec<Lease>, now: Millis) -> Result<()> {
        if leases.is_empty() {
            return Ok(());
        }
        let mono = self.mono_now();
        let mut t = self.table.write().map_err(|_| poisoned())?;
        let earliest = t.next_deadline();
        let mut sooner = false;
        let mut added = false;
        for lease in leases {
            sooner |= earliest.is_none_or(|e| lease.deadline < e);
            let bound = mono_bound(lease.deadline, now, mono);
            added |= !t.upsert(lease, bound);
        }
        drop(t);
        if sooner {
            self.sooner.notify_one();
        }
        if added {
            self.changed();
        }
        Ok(())
    }

    /// The live lease on `net`, with the deadline its monotonic bound leaves it.
    fn live_lease(&self, net: &IpNet, now: Millis) -> Result<Option<Lease>> {
        let mono = self.mono_now();
        let t = self.table.read().map_err(|_| poisoned())?;
        Ok(t.get_live(net, now, mono))
    }

    /// A change that could not be made durable is not acknowledged, so nothing may answer
    /// for it either: put back the lease as it was before (unless a later change replaced
    /// it meanwhile). The backend is told too, as far as it still listens.
    fn undo(&self, written: &Lease, before: Option<Lease>, now: Millis) {
        let Ok(_w) = self.writer.lock() else {
            return;
        };
        let current = self.table.read().ok().and_then(|t| t.get(&written.net));
        if current.as_ref() != Some(written) {
            return;
        }
        match before {
            Some(old) => {
                let _ = self.backend.put(&old);
                let bound = mono_bound(old.deadline, now, self.mono_now());
                if let Ok(mut t) = self.table.write() {
                    t.upsert(old, bound);
                }
                self.sooner.notify_one();
            }
            None => {
                let _ = self.backend.remove(&written.net);
                if let Ok(mut t) = self.table.write() {
                    t.remove(&written.net);
                }
                self.changed();
            }
        }
    }

    /// Record a successful login. `durable` makes the lease survive a crash before this
    /// returns (hook and manual logins are acknowledged only then). `meta` is written with
    /// the lease, atomically (a log file's position just after the login's line).
    pub fn login(
        &self,
        login: &Login,
        now: Millis,
        durable: bool,
        meta: Option<(&str, &[u8])>,
    ) -> Result<Outcome> {
        self.login_confirmed(login, now, durable, meta)
            .map(|(o, _)| o)
    }

    /// [`Leases::login`], and whether the shared store confirmed it (see
    /// [`Backend::sync_confirmed`]; always true for a login that is not `durable`).
    pub fn login_confirmed(
        &self,
        login: &Login,
        now: Millis,
        durable: bool,
        meta: Option<(&str, &[u8])>,
    ) -> Result<(Outcome, bool)> {
        let logins = std::slice::from_ref(login);
        let Some((outcome, before)) = self.record(logins, now, meta)?.pop() else {
            return Err(Error::invalid("internal error: a login without an outcome"));
        };
        let mut confirmed = true;
        if durable && let Outcome::Granted(lease) | Outcome::Renewed(lease) = &outcome {
            match self.backend.sync_confirmed() {
                Ok(c) => confirmed = c,
                Err(e) => {
                    self.undo(lease, before, now);
                    return Err(e);
                }
            }
        }
        self.report(login, &outcome, now);
        Ok((outcome, confirmed))
    }

    /// Record the logins read from one chunk of a log, with the position after them, in one
    /// write: a busy log costs one transaction per chunk, not one per line. All or none are
    /// kept; an address twice in the chunk is renewed by its second login.
    pub fn login_many(
        &self,
        logins: &[Login],
        now: Millis,
        meta: Option<(&str, &[u8])>,
    ) -> Result<Vec<Outcome>> {
        let outcomes: Vec<Outcome> = self
            .record(logins, now, meta)?
            .into_iter()
            .map(|(o, _)| o)
            .collect();
        for (login, outcome) in logins.iter().zip(&outcomes) {
            self.report(login, outcome, now);
        }
        Ok(outcomes)
    }

    /// Judge `logins`, write the leases they make with `meta` in one backend write, then put
    /// them in the table. Each outcome comes with the live lease its key had before, for
    /// [`Self::undo`].
    fn record(
        &self,
        logins: &[Login],
        now: Millis,
        meta: Option<(&str, &[u8])>,
    ) -> Result<Vec<(Outcome, Option<Lease>)>> {
        let rules = self.rules();
        let w = self.write_lock()?;
        let mut leases: Vec<Lease> = Vec::new();
        let mut slot: HashMap<IpNet, usize> = HashMap::new();
        let mut outcomes = Vec::with_capacity(logins.len());
        for login in logins {
            let (net, deadline) = match rules.judge(login, now) {
                Verdict::Grant { net, deadline } => (net, deadline),
                refused => {
                    outcomes.push((Outcome::Refused(refused), None));
                    continue;
                }
            };
            let before = match slot.get(&net) {
                Some(&i) => Some(leases[i].clone()),
                None => self.live_lease(&net, now)?,
            };
            let lease = renewed_or_new(before.clone(), login, net, deadline);
            let outcome = if lease.logins > 1 {
                Outcome::Renewed(lease.clone())
            } else {
                Outcome::Granted(lease.clone())
            };
            outcomes.push((outcome, before));
            match slot.get(&net) {
                Some(&i) => leases[i] = lease,
                None => {
                    slot.insert(net, leases.len());
                    leases.push(lease);
                }
            }
        }
        match meta {
            Some((k, v)) => self.backend.put_many_with_meta(&leases, k, v)?,
            None => {
                for l in &leases {
                    self.backend.put(l)?;
                }
            }
        }
        self.upsert_all(&w, leases, now)?;
        // Counted once written: a login kept and written again later is counted once.
        for login in logins {
            self.stats.count_login(&login.source);
        }
        Ok(outcomes)
    }

    /// Counters and the log line for one login's outcome.
    fn report(&self, login: &Login, outcome: &Outcome, now: Millis) {
        crate::usage::login_seen(self, login, outcome, now);
        let user = login.user.as_deref().unwrap_or("-");
        match outcome {
            Outcome::Renewed(lease) => {
                Stats::bump(&self.stats.renewed);
                tracing::info!(addr = %show_key(&lease.net), user, source = %login.source,
                    expires_in = %crate::lease::show_remaining(lease.deadline, now), "lease renewed");
            }
            Outcome::Granted(lease) => {
                Stats::bump(&self.stats.granted);
                tracing::info!(addr = %show_key(&lease.net), user, source = %login.source,
                    expires_in = %crate::lease::show_remaining(lease.deadline, now), "lease granted");
            }
            Outcome::Refused(refused) => {
                Stats::bump(&self.stats.refused);
                match refused {
                    Verdict::DeniedNet(n) => tracing::info!(
                        addr = %login.ip, user, source = %login.source, deny = %n,
                        "login refused a lease: address in --deny"),
                    Verdict::DeniedUser => tracing::info!(
                        addr = %login.ip, user, source = %login.source,
                        "login refused a lease: user not in --users"),
                    Verdict::Stale => tracing::info!(
                        addr = %login.ip, user, source = %login.source,
                        "login too old to grant a lease"),
                    Verdict::Static(n) => tracing::debug!(
                        addr = %login.ip, user, allow = %n,
                        "login from an --allow network: nothing to store"),
                    Verdict::Grant { .. } => {}
                }
            }
        }
    }

    /// Move the deadlines of live leases later, to at least `until`: an open session keeps
    /// its lease, and its end starts a window. Only leases that exist are extended, so a
    /// lease deleted by hand (or never granted) stays gone. Returns how many were written.
    /// A few hundred are written at a time, so logins and other writers wait for one small
    /// batch at most.
    pub fn extend_many(&self, targets: &[(IpAddr, Millis)], now: Millis) -> Result<usize> {
        let mut n = 0;
        for chunk in targets.chunks(EXTEND_BATCH) {
            n += self.extend_batch(chunk, now)?;
        }
        Ok(n)
    }

    fn extend_batch(&self, targets: &[(IpAddr, Millis)], now: Millis) -> Result<usize> {
        let rules = self.rules();
        let mono = self.mono_now();
        let longer = |t: &Index| {
            let mut longer: HashMap<IpNet, Lease> = HashMap::new();
            for &(ip, until) in targets {
                let net = lease_key(ip, rules.v6_prefix);
                let current = match longer.get(&net) {
                    Some(l) => Some(l.clone()),
                    None => t.get_live(&net, now, mono),
                };
                // A user taken off --users (SIGHUP) keeps no hold.
                let allowed = |l: &Lease| {
                    rules
                        .users
                        .as_ref()
                        .is_none_or(|users| l.user.as_ref().is_some_and(|u| users.contains(u)))
                };
                if let Some(mut lease) = current
                    && lease.deadline < until
                    && allowed(&lease)
                {
                    lease.deadline = until;
                    longer.insert(net, lease);
                }
            }
            longer
        };
        // Most ends move nothing (a POP3 session ends as it begins): find that out without
        // the writer lock, which logins wait for.
        if longer(&*self.table.read().map_err(|_| poisoned())?).is_empty() {
            return Ok(0);
        }
        let w = self.write_lock()?;
        let longer = longer(&*self.table.read().map_err(|_| poisoned())?);
        let leases: Vec<Lease> = longer.into_values().collect();
        if leases.is_empty() {
            return Ok(0);
        }
        self.backend.put_many(&leases)?;
        let n = leases.len();
        self.upsert_all(&w, leases, now)?;
        Ok(n)
    }

    /// Write again the live leases of `logins`' addresses as the table holds them, with
    /// `meta`: for logins recorded in the table whose write a database failure lost before it
    /// was durable. Judging them again would count each login twice.
    pub fn rewrite(
        &self,
        logins: &[Login],
        now: Millis,
        meta: Option<(&str, &[u8])>,
    ) -> Result<()> {
        let v6_prefix = self.rules().v6_prefix;
        let _w = self.write_lock()?;
        let leases: Vec<Lease> = {
            let t = self.table.read().map_err(|_| poisoned())?;
            let nets: std::collections::BTreeSet<IpNet> = logins
                .iter()
                .map(|l| lease_key(crate::lease::canonical(l.ip), v6_prefix))
                .collect();
            nets.iter()
                .filter_map(|n| t.get(n).filter(|l| l.is_live(now)))
                .collect()
        };
        match meta {
            Some((k, v)) => self.backend.put_many_with_meta(&leases, k, v),
            None => self.backend.put_many(&leases),
        }
    }

    /// A lease set by hand for `dur` from now (replacing the deadline of any existing one).
    pub fn add(&self, ip: IpAddr, dur: Duration, now: Millis) -> Result<Lease> {
        self.add_confirmed(ip, dur, now).map(|(l, _)| l)
    }

    /// [`Leases::add`], and whether the shared store confirmed it.
    pub fn add_confirmed(&self, ip: IpAddr, dur: Duration, now: Millis) -> Result<(Lease, bool)> {
        let rules = self.rules();
        let net = lease_key(ip, rules.v6_prefix);
        let deadline = now.saturating_add(dur.as_millis().min(u64::MAX as u128) as Millis);
        let login = Login {
            ip,
            user: None,
            at: now,
            source: SOURCE_MANUAL.into(),
        };
        let w = self.write_lock()?;
        let before = self.live_lease(&net, now)?;
        let mut lease = renewed_or_new(before.clone(), &login, net, deadline);
        // A manual lease sets the deadline, shorter than the old one or not.
        lease.deadline = deadline;
        self.backend.put(&lease)?;
        self.upsert_all(&w, vec![lease.clone()], now)?;
        drop(w);
        let confirmed = match self.backend.sync_confirmed() {
            Ok(c) => c,
            Err(e) => {
                self.undo(&lease, before, now);
                return Err(e);
            }
        };
        tracing::info!(addr = %show_key(&net), source = SOURCE_MANUAL,
            expires_in = %crate::lease::show_remaining(deadline, now), "lease added");
        Ok((lease, confirmed))
    }

    /// Delete the lease on `net`; durable before it returns.
    pub fn del(&self, net: &IpNet) -> Result<Option<Lease>> {
        let old = {
            let _w = self.write_lock()?;
            let found = self
                .table
                .read()
                .map_err(|_| poisoned())?
                .get(net)
                .is_some();
            if found {
                self.backend.remove(net)?;
            }
            self.table.write().map_err(|_| poisoned())?.remove(net)
        };
        if let Some(l) = &old {
            self.backend.sync()?;
            Stats::bump(&self.stats.deleted);
            self.changed();
            tracing::info!(addr = %show_key(net), user = l.user.as_deref().unwrap_or("-"),
                source = %l.source, "lease deleted");
        }
        Ok(old)
    }

    /// Delete every lease; returns how many there were.
    pub fn flush(&self) -> Result<usize> {
        let n = {
            let _w = self.write_lock()?;
            self.backend.clear()?;
            self.table.write().map_err(|_| poisoned())?.clear()
        };
        self.backend.sync()?;
        self.changed();
        tracing::info!(count = n, "all leases flushed");
        Ok(n)
    }

    /// May `ip` relay at `now`? Exact to the millisecond whatever the expiry task is doing.
    pub fn check(&self, ip: IpAddr, now: Millis) -> Answer {
        let rules = self.rules();
        if let Some(net) = rules.static_net(ip) {
            return Answer::Static(*net);
        }
        let net = lease_key(ip, rules.v6_prefix);
        self.check_key(&net, now)
    }

    /// Whether [`Leases::check`] would allow `ip`, without copying the lease or the rules:
    /// the policy service asks this for every request, from every worker thread at once.
    pub fn allowed(&self, ip: IpAddr, now: Millis) -> bool {
        let net = {
            let rules = match self.rules.read() {
                Ok(r) => r,
                Err(p) => p.into_inner(),
            };
            if rules.static_net(ip).is_some() {
                return true;
            }
            lease_key(ip, rules.v6_prefix)
        };
        match self.table.read() {
            Ok(t) => t.allows(&net, now, || self.mono_now()),
            Err(_) => false,
        }
    }

    /// [`Leases::allowed`] for the answers that record a lease's use: `f` sees the lease
    /// behind a yes (under the table's read lock, so it should only copy what it needs).
    pub fn grant<R>(
        &self,
        ip: IpAddr,
        now: Millis,
        f: impl FnOnce(&LeaseRef<'_>) -> R,
    ) -> Grant<R> {
        let net = {
            let rules = match self.rules.read() {
                Ok(r) => r,
                Err(p) => p.into_inner(),
            };
            if rules.static_net(ip).is_some() {
                return Grant::Static;
            }
            lease_key(ip, rules.v6_prefix)
        };
        match self.table.read() {
            Ok(t) => match t.view(&net, now, || self.mono_now()) {
                Some(l) => Grant::Lease(f(&l)),
                None => Grant::No,
            },
            Err(_) => Grant::No,
        }
    }

    /// The live lease on exactly this key.
    pub fn check_key(&self, net: &IpNet, now: Millis) -> Answer {
        let mono = self.mono_now();
        let Ok(t) = self.table.read() else {
            return Answer::No;
        };
        match t.get_live(net, now, mono) {
            Some(l) => Answer::Lease(l),
            None => Answer::No,
        }
    }

    /// Live leases, soonest deadline first.
    pub fn list(&self, now: Millis) -> Vec<Lease> {
        let mono = self.mono_now();
        match self.table.read() {
            Ok(t) => t.live(now, mono),
            Err(_) => Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.table.read().map(|t| t.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn next_deadline(&self) -> Option<Millis> {
        self.table.read().ok().and_then(|t| t.next_deadline())
    }

    /// Remove what is due at `now` from the table and the backend.
    pub fn expire(&self, now: Millis) -> Result<Vec<Lease>> {
        let (gone, failed) = {
            let _w = self.write_lock()?;
            // Out of the table first: what is due is refused even if the backend fails, and
            // answers that rebuild a file still hear of it.
            let gone = self
                .table
                .write()
                .map_err(|_| poisoned())?
                .take_expired(now);
            let mut failed = None;
            for l in &gone {
                if let Err(e) = self.backend.expired(&l.net) {
                    failed.get_or_insert(e);
                }
            }
            (gone, failed)
        };
        for l in &gone {
            Stats::bump(&self.stats.expired);
            tracing::info!(addr = %show_key(&l.net), user = l.user.as_deref().unwrap_or("-"),
                source = %l.source, "lease expired");
        }
        if !gone.is_empty() {
            self.changed();
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(gone),
        }
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot(self.len())
    }

    pub fn sync(&self) -> Result<()> {
        self.backend.sync()
    }

    /// [`Backend::sync_local`]: the follower's once-a-second check that what it wrote is kept.
    pub fn sync_local(&self) -> Result<()> {
        self.backend.sync_local()
    }
}

/// Changes made elsewhere (another host's logins, through a shared store): they update the
/// table and are announced like local ones, but are never written back to the backend.
impl Leases {
    /// Take `lease` as the current state of its key; one already past its deadline removes it.
    pub fn apply_remote(&self, lease: Lease, now: Millis) {
        if !lease.is_live(now) {
            self.forget_remote(&lease.net);
            return;
        }
        let bound = mono_bound(lease.deadline, now, self.mono_now());
        let Ok(mut t) = self.table.write() else {
            return;
        };
        let earliest = t.next_deadline();
        let deadline = lease.deadline;
        let replaced = t.upsert(lease, bound);
        drop(t);
        if earliest.is_none_or(|e| deadline < e) {
            self.sooner.notify_one();
        }
        if !replaced {
            self.changed();
        }
    }

    /// The lease on `net` is gone elsewhere (deleted by hand).
    pub fn forget_remote(&self, net: &IpNet) {
        let old = self.table.write().ok().and_then(|mut t| t.remove(net));
        if old.is_some() {
            self.changed();
        }
    }

    /// Replace the whole table with `fresh` (a reload after a reconnect), except the keys for
    /// which `keep_local` is true: local changes not yet written to the shared store.
    pub fn replace_all(&self, fresh: Vec<Lease>, now: Millis, keep_local: impl Fn(&IpNet) -> bool) {
        let mono = self.mono_now();
        let Ok(mut t) = self.table.write() else {
            return;
        };
        let mut next = Index::default();
        for l in fresh {
            if l.is_live(now) && !keep_local(&l.net) {
                let bound = mono_bound(l.deadline, now, mono);
                next.upsert(l, bound);
            }
        }
        for (l, bound) in t.all() {
            if keep_local(&l.net) {
                next.upsert(l, bound);
            }
        }
        let same_keys =
            t.len() == next.len() && next.all().iter().all(|(l, _)| t.get(&l.net).is_some());
        *t = next;
        drop(t);
        self.sooner.notify_one();
        if !same_keys {
            self.changed();
        }
    }
}

/// The daemon's settings, saved in the database so that direct mode judges like the daemon.
#[derive(Serialize, serde::Deserialize)]
pub struct SavedRules {
    pub window_ms: u64,
    pub v6_prefix: u8,
    pub allow: Vec<ipnet::IpNet>,
}

pub const SAVED_RULES: &str = "rules";

pub fn save_rules(b: &dyn Backend, r: &Rules) -> Result<()> {
    let s = SavedRules {
        window_ms: r.window.as_millis() as u64,
        v6_prefix: r.v6_prefix,
        allow: r.allow.clone(),
    };
    b.put_meta(SAVED_RULES, &serde_json::to_vec(&s).unwrap_or_default())
}

pub fn load_rules(b: &dyn Backend) -> Rules {
    let saved = b
        .get_meta(SAVED_RULES)
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_slice::<SavedRules>(&v).ok());
    match saved {
        Some(s) => Rules {
            window: Duration::from_millis(s.window_ms),
            v6_prefix: s.v6_prefix,
            allow: s.allow,
            ..Rules::default()
        },
        None => Rules::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::parse_ip;

    /// A backend that keeps everything in memory, to test the table's logic on its own.
    #[derive(Default)]
    struct Mem {
        leases: Mutex<BTreeMap<IpNet, Lease>>,
        meta: Mutex<BTreeMap<String, Vec<u8>>>,
        /// Writes succeed but cannot be made durable (a full disk under sled).
        sync_fails: std::sync::atomic::AtomicBool,
    }

    impl Backend for Mem {
        fn load(&self) -> Result<Vec<Lease>> {
            Ok(self.leases.lock().unwrap().values().cloned().collect())
        }
        fn put(&self, lease: &Lease) -> Result<()> {
            self.leases.lock().unwrap().insert(lease.net, lease.clone());
            Ok(())
        }
        fn remove(&self, net: &IpNet) -> Result<()> {
            self.leases.lock().unwrap().remove(net);
            Ok(())
        }
        fn clear(&self) -> Result<()> {
            self.leases.lock().unwrap().clear();
            Ok(())
        }
        fn sync(&self) -> Result<()> {
            if self.sync_fails.load(Ordering::Relaxed) {
                return Err(Error::invalid("no space left"));
            }
            Ok(())
        }
        fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
            Ok(self.meta.lock().unwrap().get(key).cloned())
        }
        fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
            self.meta.lock().unwrap().insert(key.into(), value.to_vec());
            Ok(())
        }
    }

    const MIN: Millis = 60_000;
    const T0: Millis = 1_000_000 * MIN;

    fn login(ip: &str, at: Millis) -> Login {
        Login {
            ip: parse_ip(ip).unwrap(),
            user: Some("alice".into()),
            at,
            source: "/var/log/mail.log".into(),
        }
    }

    /// A backend whose writes wait for the test's word, like a slow disk.
    struct Stalled {
        mem: Mem,
        entered: Mutex<std::sync::mpsc::Sender<()>>,
        release: Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl Backend for Stalled {
        fn load(&self) -> Result<Vec<Lease>> {
            self.mem.load()
        }
        fn put(&self, lease: &Lease) -> Result<()> {
            let _ = self.entered.lock().unwrap().send(());
            let _ = self.release.lock().unwrap().recv();
            self.mem.put(lease)
        }
        fn remove(&self, net: &IpNet) -> Result<()> {
            self.mem.remove(net)
        }
        fn clear(&self) -> Result<()> {
            self.mem.clear()
        }
        fn sync(&self) -> Result<()> {
            self.mem.sync()
        }
        fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
            self.mem.get_meta(key)
        }
        fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
            self.mem.put_meta(key, value)
        }
    }

    #[test]
    fn answers_do_not_wait_for_a_write_to_the_disk() {
        use std::sync::mpsc::channel;
        let (entered_tx, entered) = channel();
        let (release, release_rx) = channel();
        let mem = Mem::default();
        mem.put(&Lease::new(
            lease_key(parse_ip("192.0.2.1").unwrap(), 64),
            &login("192.0.2.1", T0),
            T0 + 30 * MIN,
        ))
        .unwrap();
        let backend = Stalled {
            mem,
            entered: Mutex::new(entered_tx),
            release: Mutex::new(release_rx),
        };
        let l = Arc::new(Leases::open(Box::new(backend), Rules::default(), T0).unwrap());
        let writer = {
            let l = l.clone();
            std::thread::spawn(move || l.login(&login("192.0.2.2", T0), T0, false, None))
        };
        entered
            .recv_timeout(Duration::from_secs(10))
            .expect("the write reached the backend");
        // While the write is stuck, answers go on: the old lease yes, the new one not yet.
        let (tx, rx) = channel();
        let reader = {
            let l = l.clone();
            std::thread::spawn(move || {
                let ip = |s: &str| parse_ip(s).unwrap();
                let _ = tx.send((
                    l.allowed(ip("192.0.2.1"), T0),
                    l.allowed(ip("192.0.2.2"), T0),
                ));
            })
        };
        let answered = rx.recv_timeout(Duration::from_secs(10));
        release.send(()).unwrap();
        assert_eq!(answered, Ok((true, false)), "an answer waited for the disk");
        assert!(matches!(writer.join().unwrap(), Ok(Outcome::Granted(_))));
        reader.join().unwrap();
        assert!(l.allowed(parse_ip("192.0.2.2").unwrap(), T0));
    }

    /// A step back of the system clock: no answer relays a lease past its length plus
    /// [`crate::lease::CLOCK_SLACK`] on the monotonic clock; the expiry task ends it then;
    /// after a restart the wall deadline alone decides. A step forward ends leases early.
    #[test]
    fn a_clock_stepped_back_holds_leases_to_the_monotonic_clock_until_a_restart() {
        use crate::lease::CLOCK_SLACK;
        let step = 60 * MIN;
        let mono = Arc::new(AtomicU64::new(5_000));
        let l = Leases::open(Box::new(Mem::default()), Rules::default(), T0)
            .unwrap()
            .with_mono_clock(mono.clone());
        let window = l.rules().window.as_millis() as Millis;
        let ip = |s: &str| parse_ip(s).unwrap();
        l.login(&login("192.0.2.1", T0), T0, true, None).unwrap();
        l.login(&login("192.0.2.2", T0), T0, true, None).unwrap();
        // `elapsed` after the logins, with the clock stepped back an hour in between.
        let at = |elapsed: Millis| {
            mono.store(5_000 + elapsed, Ordering::Relaxed);
            T0 + elapsed - step
        };
        let now = at(window - 1);
        assert!(l.allowed(ip("192.0.2.1"), now));
        let now = at(window + CLOCK_SLACK);
        // The wall deadline is an hour away; every answer refuses all the same.
        assert!(!l.allowed(ip("192.0.2.1"), now));
        assert_eq!(l.check(ip("192.0.2.1"), now), Answer::No);
        assert!(l.list(now).is_empty());
        assert!(matches!(l.grant(ip("192.0.2.1"), now, |_| ()), Grant::No));
        // The expiry task, told of the step, ends both now (so the cdb loses them too).
        assert_eq!(l.clamp_to_bounds(now), 2);
        assert_eq!(l.expire(now).unwrap().len(), 2);
        // A login after the step gets its whole window.
        l.login(&login("192.0.2.3", now), now, true, None).unwrap();
        let later = at(2 * window);
        assert!(l.allowed(ip("192.0.2.3"), later));

        // After a restart (the lease loaded from the database) the wall deadline decides.
        let kept = Mem::default();
        kept.put(&Lease::new(
            lease_key(ip("192.0.2.4"), 64),
            &login("192.0.2.4", T0),
            T0 + window,
        ))
        .unwrap();
        let restarted = Leases::open(Box::new(kept), Rules::default(), T0 + CLOCK_SLACK)
            .unwrap()
            .with_mono_clock(mono.clone());
        assert!(restarted.allowed(ip("192.0.2.4"), T0 + window - 1));

        // A step forward: the wall deadline has passed, so the lease ends early (fails closed).
        let l = Leases::open(Box::new(Mem::default()), Rules::default(), T0)
            .unwrap()
            .with_mono_clock(mono.clone());
        mono.store(5_000, Ordering::Relaxed);
        l.login(&login("192.0.2.5", T0), T0, true, None).unwrap();
        mono.store(5_000 + 10 * MIN, Ordering::Relaxed);
        assert!(!l.allowed(ip("192.0.2.5"), T0 + 10 * MIN + step));
    }

    #[test]
    fn what_could_not_be_made_durable_does_not_relay() {
        let mem = Mem::default();
        mem.sync_fails.store(true, Ordering::Relaxed);
        let l = Leases::open(Box::new(mem), Rules::default(), T0).unwrap();
        let ip = |s: &str| parse_ip(s).unwrap();
        // Neither a new hook login nor a manual add answers once its sync failed.
        assert!(l.login(&login("192.0.2.1", T0), T0, true, None).is_err());
        assert!(l.add(ip("192.0.2.2"), Duration::from_secs(60), T0).is_err());
        assert!(!l.allowed(ip("192.0.2.1"), T0));
        assert!(!l.allowed(ip("192.0.2.2"), T0));
        assert!(l.is_empty());
        // A lease from before keeps its old deadline when a renewal fails.
        let followed = l.login(&login("192.0.2.3", T0), T0, false, None).unwrap();
        let Outcome::Granted(old) = followed else {
            panic!("{followed:?}")
        };
        let later = T0 + 10 * MIN;
        assert!(
            l.login(&login("192.0.2.3", later), later, true, None)
                .is_err()
        );
        assert_eq!(l.check(ip("192.0.2.3"), later), Answer::Lease(old.clone()));
        assert!(
            l.add(ip("192.0.2.3"), Duration::from_secs(86_400), later)
                .is_err()
        );
        assert_eq!(l.check(ip("192.0.2.3"), later), Answer::Lease(old));
    }

    #[test]
    fn a_login_grants_then_renews_and_the_answer_follows_the_clock() {
        let l = Leases::open(Box::new(Mem::default()), Rules::default(), T0).unwrap();
        let ip = parse_ip("192.0.2.7").unwrap();
        assert_eq!(l.check(ip, T0), Answer::No);
        assert!(matches!(
            l.login(&login("192.0.2.7", T0), T0, false, None).unwrap(),
            Outcome::Granted(_)
        ));
        assert!(l.check(ip, T0 + 29 * MIN).allowed());
        assert!(!l.check(ip, T0 + 30 * MIN).allowed());
        assert!(matches!(
            l.login(
                &login("192.0.2.7", T0 + 10 * MIN),
                T0 + 10 * MIN,
                false,
                None
            )
            .unwrap(),
            Outcome::Renewed(_)
        ));
        assert!(l.check(ip, T0 + 39 * MIN).allowed());
        assert!(!l.check(ip, T0 + 40 * MIN).allowed());
    }

    #[test]
    fn extending_moves_live_deadlines_later_and_never_resurrects() {
        let l = Leases::open(Box::new(Mem::default()), Rules::default(), T0).unwrap();
        let (a, b, gone) = (
            parse_ip("192.0.2.7").unwrap(),
            parse_ip("192.0.2.8").unwrap(),
            parse_ip("192.0.2.9").unwrap(),
        );
        l.login(&login("192.0.2.7", T0), T0, false, None).unwrap();
        l.login(&login("192.0.2.8", T0), T0, false, None).unwrap();
        l.login(&login("192.0.2.9", T0), T0, false, None).unwrap();
        l.del(&"192.0.2.9/32".parse().unwrap()).unwrap();
        let now = T0 + 20 * MIN;
        let n = l
            .extend_many(
                &[
                    (a, now + 30 * MIN),
                    (b, T0 + 10 * MIN),
                    (gone, now + 30 * MIN),
                    (parse_ip("192.0.2.10").unwrap(), now + 30 * MIN),
                ],
                now,
            )
            .unwrap();
        assert_eq!(n, 1, "only a's deadline moves");
        assert!(l.check(a, T0 + 49 * MIN).allowed());
        assert!(!l.check(a, T0 + 50 * MIN).allowed());
        assert!(!l.check(b, T0 + 30 * MIN).allowed(), "never shortened");
        assert!(!l.check(gone, now).allowed(), "a deleted lease stays gone");
        assert_eq!(l.len(), 2);
        let stored = l.backend().load().unwrap();
        let a_stored = stored.iter().find(|x| x.net == lease_key(a, 64)).unwrap();
        assert_eq!(a_stored.deadline, T0 + 50 * MIN, "written through");
        assert_eq!(l.next_deadline(), Some(T0 + 30 * MIN));
        // An expired lease is not brought back either.
        assert_eq!(
            l.extend_many(&[(b, T0 + 90 * MIN)], T0 + 31 * MIN).unwrap(),
            0
        );
        // Nor is the lease of a user taken off --users extended.
        let mut rules = (*l.rules()).clone();
        rules.users = Some(Arc::new(["bob".to_string()].into_iter().collect()));
        l.set_rules(rules);
        assert_eq!(l.extend_many(&[(a, T0 + 90 * MIN)], now).unwrap(), 0);
    }

    #[test]
    fn allowed_agrees_with_check() {
        let rules = Rules {
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            ..Rules::default()
        };
        let l = Leases::open(Box::new(Mem::default()), rules, T0).unwrap();
        l.login(&login("192.0.2.7", T0), T0, false, None).unwrap();
        l.login(&login("2001:db8::1", T0), T0, false, None).unwrap();
        for ip in [
            "192.0.2.7",
            "192.0.2.8",
            "10.1.2.3",
            "2001:db8::99",
            "2001:db9::1",
        ] {
            let ip = parse_ip(ip).unwrap();
            for now in [T0, T0 + 29 * MIN, T0 + 30 * MIN] {
                assert_eq!(l.allowed(ip, now), l.check(ip, now).allowed(), "{ip} {now}");
            }
        }
        assert!(l.allowed(parse_ip("::ffff:192.0.2.7").unwrap(), T0));
    }

    #[test]
    fn expiry_removes_from_table_and_backend() {
        let l = Leases::open(Box::new(Mem::default()), Rules::default(), T0).unwrap();
        l.login(&login("192.0.2.1", T0), T0, false, None).unwrap();
        l.login(&login("192.0.2.2", T0 + MIN), T0 + MIN, false, None)
            .unwrap();
        assert_eq!(l.next_deadline(), Some(T0 + 30 * MIN));
        let gone = l.expire(T0 + 30 * MIN).unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(l.backend().load().unwrap().len(), 1);
        assert_eq!(l.next_deadline(), Some(T0 + 31 * MIN));
    }

    #[test]
    fn reopening_drops_expired_leases() {
        let mem = Mem::default();
        let l = Leases::open(Box::new(mem), Rules::default(), T0).unwrap();
        l.login(&login("192.0.2.1", T0), T0, true, None).unwrap();
        l.add(
            parse_ip("192.0.2.2").unwrap(),
            Duration::from_secs(3600),
            T0,
        )
        .unwrap();
        let saved = l.backend().load().unwrap();
        let mem = Mem::default();
        for s in &saved {
            mem.put(s).unwrap();
        }
        let l = Leases::open(Box::new(mem), Rules::default(), T0 + 45 * MIN).unwrap();
        let live: Vec<String> = l
            .list(T0 + 45 * MIN)
            .iter()
            .map(|x| show_key(&x.net))
            .collect();
        assert_eq!(live, vec!["192.0.2.2"]);
        assert_eq!(l.backend().load().unwrap().len(), 1);
    }

    #[test]
    fn refused_logins_store_nothing() {
        let rules = Rules {
            deny: vec!["198.51.100.0/24".parse().unwrap()],
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            ..Rules::default()
        };
        let l = Leases::open(Box::new(Mem::default()), rules, T0).unwrap();
        l.login(&login("198.51.100.5", T0), T0, false, None)
            .unwrap();
        l.login(&login("10.1.1.1", T0), T0, false, None).unwrap();
        l.login(&login("192.0.2.1", T0 - 31 * MIN), T0, false, None)
            .unwrap();
        assert!(l.is_empty());
        assert!(l.backend().load().unwrap().is_empty());
        assert_eq!(
            l.check(parse_ip("10.1.1.1").unwrap(), T0),
            Answer::Static("10.0.0.0/8".parse().unwrap())
        );
        assert_eq!(l.stats().refused, 3);
    }

    /// The logins of one chunk of a log, written at once: the same outcomes, counters and
    /// leases as one login at a time, on sled, with the position kept alongside.
    #[test]
    fn a_chunk_of_logins_is_one_write_with_the_same_outcomes_as_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let Ok(Opened::Fine(b)) = SledBackend::open(&db) else {
            panic!("open");
        };
        let rules = Rules {
            deny: vec!["198.51.100.0/24".parse().unwrap()],
            ..Rules::default()
        };
        let l = Leases::open(Box::new(b), rules.clone(), T0).unwrap();
        l.login(&login("192.0.2.9", T0), T0, false, None).unwrap();
        let t1 = T0 + MIN;
        let chunk = [
            login("192.0.2.1", t1),
            login("198.51.100.5", t1),
            login("192.0.2.1", t1 + 1000),
            login("192.0.2.9", t1),
        ];
        let out = l
            .login_many(&chunk, t1, Some(("pos:/var/log/mail.log", b"42")))
            .unwrap();
        assert!(matches!(&out[0], Outcome::Granted(x) if x.logins == 1));
        assert!(matches!(&out[1], Outcome::Refused(Verdict::DeniedNet(_))));
        assert!(
            matches!(&out[2], Outcome::Renewed(x) if x.logins == 2 && x.last_login == t1 + 1000)
        );
        assert!(matches!(&out[3], Outcome::Renewed(x) if x.logins == 2));
        let s = l.stats();
        assert_eq!((s.granted, s.renewed, s.refused), (2, 2, 1));
        let ip = |s: &str| parse_ip(s).unwrap();
        assert!(l.allowed(ip("192.0.2.1"), t1) && l.allowed(ip("192.0.2.9"), t1));
        assert!(!l.allowed(ip("198.51.100.5"), t1));
        assert_eq!(
            l.next_deadline(),
            Some(t1 + 30 * MIN),
            "renewals moved the deadlines"
        );
        drop(l);

        // Reopened: both leases as the table had them, and the position.
        let b = loop {
            match SledBackend::open(&db) {
                Ok(Opened::Fine(b)) => break b,
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        assert_eq!(
            b.get_meta("pos:/var/log/mail.log").unwrap().as_deref(),
            Some(&b"42"[..])
        );
        let l = Leases::open(Box::new(b), rules, t1).unwrap();
        let Answer::Lease(one) = l.check(ip("192.0.2.1"), t1) else {
            panic!("no lease for 192.0.2.1");
        };
        assert_eq!((one.logins, one.last_login), (2, t1 + 1000));
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn manual_add_sets_the_deadline_and_del_removes() {
        let l = Leases::open(Box::new(Mem::default()), Rules::default(), T0).unwrap();
        let ip = parse_ip("2001:db8::7").unwrap();
        l.login(&login("2001:db8::1", T0), T0, false, None).unwrap();
        let lease = l.add(ip, Duration::from_secs(300), T0).unwrap();
        assert_eq!(lease.deadline, T0 + 5 * MIN, "add replaces the deadline");
        assert_eq!(lease.logins, 2, "same /64 as the login");
        assert!(l.del(&lease.net).unwrap().is_some());
        assert!(l.del(&lease.net).unwrap().is_none());
        assert!(!l.check(ip, T0).allowed());
    }

    #[test]
    fn changes_to_the_leased_set_are_announced() {
        let l = Leases::open(Box::new(Mem::default()), Rules::default(), T0).unwrap();
        let mut rx = l.subscribe();
        l.login(&login("192.0.2.1", T0), T0, false, None).unwrap();
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        l.login(&login("192.0.2.1", T0 + 1), T0 + 1, false, None)
            .unwrap();
        assert!(
            !rx.has_changed().unwrap(),
            "a renewal does not change the set"
        );
        l.expire(T0 + 31 * MIN).unwrap();
        assert!(rx.has_changed().unwrap());
    }
}
