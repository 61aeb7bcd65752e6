//! The shared backend: leases in Redis, so that every host of a site answers from one table.
//!
//! A write never waits for Redis. It goes into a queue of unsent changes in the local sled
//! database (one entry per address, the newest change wins; log positions stay beside it in
//! the same transaction), and [`super::redis_sync`] sends the queue, applies other hosts'
//! changes to the local copy and reloads it after every reconnect. Keys in Redis:
//! `PREFIX:lease:ADDR/LEN` holds a lease as JSON and expires at its deadline (PXAT);
//! `PREFIX:events` is the pub/sub channel announcing each change.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::sled_store::key_bytes;
use super::{Backend, SledBackend};
use crate::error::{Error, Result};
use crate::lease::{Lease, SOURCE_MANUAL, now_ms};
use redis::RedisResult;

/// At most this many addresses wait in the queue while Redis is away.
pub const MAX_QUEUED: usize = 100_000;
/// How long an acknowledged change (hook login, `add`, `del`, `flush`) waits for Redis to
/// confirm it before the reply goes out anyway, the change queued.
pub const ACK_WAIT: Duration = Duration::from_millis(200);
/// How long the daemon waits for Redis at start before starting without it.
const START_WAIT: Duration = Duration::from_secs(3);
/// Meta record naming the shared store this host's leases live in (without credentials).
pub const STORE_META: &str = "store";

const QUEUE_TREE: &str = "redis-queue";
/// Queue key of a pending flush: sorts before every lease key (those start with 4 or 6), so
/// a flush is sent before the changes made after it.
const FLUSH_KEY: &[u8] = &[0];

/// `--store redis://... --store-prefix NAME`, checked.
#[derive(Clone)]
pub struct RedisConfig {
    /// As given, password included: used only to connect.
    url: String,
    /// With `redis+sentinel://`: where to ask for the primary.
    sentinel: Option<SentinelTarget>,
    /// For messages: the password replaced by `***`.
    pub shown: String,
    pub prefix: String,
    /// `--store-replicas N`: a change counts as stored once `WAIT N` confirms it.
    pub replicas: u32,
}

/// `redis+sentinel://[USER:PASSWORD@]HOST:PORT,.../MASTER/DB`: the Sentinels to ask, the
/// name of the primary they watch, and how to log in to it.
#[derive(Clone)]
struct SentinelTarget {
    /// One URL per Sentinel, with the Sentinel credentials (`sentinel_user`, `sentinel_pass`).
    sentinels: Vec<String>,
    master: String,
    /// The data nodes' login, database and TLS.
    node: redis::sentinel::SentinelNodeConnectionInfo,
}

/// Sentinel's own default port.
const SENTINEL_PORT: u16 = 26379;

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisConfig({} prefix {})", self.shown, self.prefix)
    }
}

/// The URL with its password (and any `pass=` parameter) hidden.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.find("pass=") {
        Some(i) => {
            let rest = &tail[i + 5..];
            let stop = rest.find('&').unwrap_or(rest.len());
            format!("{}pass=***{}", &tail[..i], &rest[stop..])
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

impl RedisConfig {
    /// `no_password` (`--store-no-password`) accepts a URL without a password.
    pub fn parse(url: &str, prefix: &str, no_password: bool) -> Result<RedisConfig> {
        let shown = redact(url);
        let bad = |why: &str| Error::invalid(format!("--store '{shown}': {why}"));
        let scheme = url.split_once("://").map(|(s, _)| s);
        let sentinel = match scheme {
            Some("redis" | "rediss") => None,
            Some("redis+sentinel" | "rediss+sentinel") => {
                Some(parse_sentinel(url, no_password).map_err(|why| bad(&why))?)
            }
            _ => {
                return Err(bad(
                    "expected redis://[USER:PASSWORD@]HOST:PORT/DB, rediss://... (TLS) or redis+sentinel://[USER:PASSWORD@]HOST:PORT,HOST:PORT,.../MASTER/DB",
                ));
            }
        };
        check_prefix(prefix)?;
        if let Some(sentinel) = sentinel {
            return Ok(RedisConfig {
                url: url.to_string(),
                sentinel: Some(sentinel),
                shown,
                prefix: prefix.to_string(),
                replicas: 0,
            });
        }
        let client = redis::Client::open(url).map_err(|e| bad(&describe(&e)))?;
        if matches!(
            client.get_connection_info().addr(),
            redis::ConnectionAddr::Unix(_)
        ) {
            return Err(bad("expected a host and port"));
        }
        let info = client.get_connection_info().redis_settings();
        if !no_password && info.password().is_none_or(str::is_empty) {
            return Err(bad(
                "no password: whoever reaches this Redis could write a lease and open the relay; give the ACL user's password (docs/redis.md), or --store-no-password to accept that",
            ));
        }
        Ok(RedisConfig {
            url: url.to_string(),
            sentinel: None,
            shown,
            prefix: prefix.to_string(),
            replicas: 0,
        })
    }

    /// `--store-replicas N`.
    pub fn with_replicas(mut self, replicas: u32) -> RedisConfig {
        self.replicas = replicas;
        self
    }

    /// Through Sentinel: the primary changes, so it is looked up at every (re)connection.
    pub(super) fn uses_sentinel(&self) -> bool {
        self.sentinel.is_some()
    }

    /// A client for the primary: the URL's server, or the one the Sentinels name now. The
    /// redis crate checks that server's `ROLE` before handing it out, so a primary that the
    /// Sentinels still name after it was demoted is refused.
    pub(super) async fn primary(&self) -> RedisResult<redis::Client> {
        match &self.sentinel {
            None => redis::Client::open(self.url.as_str()),
            Some(t) => {
                let mut sentinel = redis::sentinel::Sentinel::build(t.sentinels.clone())?;
                sentinel.async_master_for(&t.master, Some(&t.node)).await
            }
        }
    }

    pub(super) fn error(&self, e: &redis::RedisError) -> Error {
        Error::Store {
            url: self.shown.clone(),
            detail: describe(e),
        }
    }

    pub fn lease_key(&self, net: &IpNet) -> String {
        format!("{}:lease:{net}", self.prefix)
    }

    /// SCAN pattern matching every lease key of this prefix (the prefix has no glob
    /// characters).
    pub fn lease_pattern(&self) -> String {
        format!("{}:lease:*", self.prefix)
    }

    pub fn channel(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// What the meta record [`STORE_META`] says: where this host's leases are.
    pub fn describe(&self) -> String {
        format!("{} prefix {}", self.shown, self.prefix)
    }
}

fn check_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty()
        || prefix.len() > 64
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(Error::invalid(format!(
            "--store-prefix '{prefix}': use 1 to 64 letters, digits, '_', '.' or '-'"
        )));
    }
    Ok(())
}

/// `redis+sentinel://[USER:PASSWORD@]HOST[:PORT],.../MASTER[/DB][?sentinel_user=U&sentinel_pass=P]`
/// (`rediss+sentinel://` for TLS to the Sentinels and the data nodes alike). USER and
/// PASSWORD log in to the data nodes; the Sentinels have their own (`sentinel_pass`).
fn parse_sentinel(url: &str, no_password: bool) -> std::result::Result<SentinelTarget, String> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let tls = scheme.starts_with("rediss");
    let node_scheme = if tls { "rediss" } else { "redis" };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let mut sentinel_user = None;
    let mut sentinel_pass = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sentinel_user", v)) => sentinel_user = Some(v),
            Some(("sentinel_pass", v)) => sentinel_pass = Some(v),
            _ => {
                return Err(format!(
                    "unknown parameter '{}' (sentinel_user and sentinel_pass are known)",
                    pair.split('=').next().unwrap_or(pair)
                ));
            }
        }
    }
    let sentinel_login = match (sentinel_user, sentinel_pass) {
        (_, None | Some("")) if !no_password => {
            return Err("no Sentinel password: whoever reaches the Sentinels could name another primary and open the relay; add ?sentinel_pass=PASSWORD (docs/redis.md), or --store-no-password to accept that".into());
        }
        (user, Some(pass)) if !pass.is_empty() => format!("{}:{pass}@", user.unwrap_or("")),
        (Some(user), _) if !user.is_empty() => format!("{user}@"),
        _ => String::new(),
    };
    let mut sentinels = Vec::new();
    for host in hosts.split(',') {
        let host = host.trim();
        if host.is_empty() {
            return Err("expected HOST:PORT of each Sentinel, separated by commas".into());
        }
        let with_port = match host.rsplit_once(':') {
            Some((_, port)) if !host.ends_with(']') => {
                port.parse::<u16>()
                    .map_err(|_| format!("'{host}': the port is not a number"))?;
                host.to_string()
            }
            _ => format!("{host}:{SENTINEL_PORT}"),
        };
        let one = format!("{node_scheme}://{sentinel_login}{with_port}");
        let client = redis::Client::open(one.as_str())
            .map_err(|e| format!("Sentinel '{host}': {}", describe(&e)))?;
        if matches!(
            client.get_connection_info().addr(),
            redis::ConnectionAddr::Unix(_)
        ) {
            return Err("expected a host and port for each Sentinel".into());
        }
        sentinels.push(one);
    }
    let mut parts = path.split('/');
    let master = parts.next().unwrap_or("");
    let db = parts.next().unwrap_or("0");
    if master.is_empty() || parts.next().is_some_and(|p| !p.is_empty()) {
        return Err("expected .../MASTER/DB after the Sentinels (MASTER as in 'sentinel monitor MASTER ...')".into());
    }
    if !master
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(format!("'{master}': not a Sentinel master name"));
    }
    // The data nodes' login, decoded as the redis crate decodes any URL.
    let login = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let probe = format!("redis://{login}127.0.0.1/{db}");
    let client = redis::Client::open(probe.as_str()).map_err(|e| describe(&e))?;
    let redis_info = client.get_connection_info().redis_settings().clone();
    if !no_password && redis_info.password().is_none_or(str::is_empty) {
        return Err("no password: whoever reaches this Redis could write a lease and open the relay; give the ACL user's password (docs/redis.md), or --store-no-password to accept that".into());
    }
    let mut node = redis::sentinel::SentinelNodeConnectionInfo::default()
        .set_redis_connection_info(redis_info);
    if tls {
        node = node.set_tls_mode(redis::TlsMode::Secure);
    }
    Ok(SentinelTarget {
        sentinels,
        master: master.to_string(),
        node,
    })
}

/// One line, without the crate's debugging decorations.
pub(super) fn describe(e: &redis::RedisError) -> String {
    if matches!(e.kind(), redis::ErrorKind::AuthenticationFailed) {
        return "wrong user name or password (check --store and the user's ACL)".into();
    }
    let text = e.to_string();
    if text.contains("ReadOnly:") || text.contains("READONLY") {
        return "READONLY: this Redis is a replica now (after a failover --store must lead to the new primary)".into();
    }
    if e.code() == Some("NOAUTH") {
        return "authentication required (NOAUTH): give the user name and password in --store"
            .into();
    }
    let hint = if text.contains("invalid peer certificate") {
        " (is the CA of Redis's certificate in this host's trust store? SSL_CERT_FILE can name one)"
    } else if is_credentials_error(e) {
        " (check --store and the user's ACL)"
    } else {
        ""
    };
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}{hint}"),
        _ => format!("{}{hint}", tidy(&e.to_string())),
    }
}

/// "Redis URL did not parse - InvalidClientConfig" -> "Redis URL did not parse";
/// "Connection refused (os error 111)" -> "connection refused".
fn tidy(s: &str) -> String {
    let s = s.lines().next().unwrap_or("").trim();
    let s = match s.rsplit_once(" - ") {
        Some((head, kind)) if !kind.contains(' ') => head,
        _ => s,
    };
    let s = s.split(" (os error").next().unwrap_or(s);
    // Server errors read `"NOPERM": this user has no permissions ...`.
    let unquoted;
    let s = match s.strip_prefix('"').and_then(|r| r.split_once("\":")) {
        Some((code, rest)) => {
            unquoted = format!("{code}:{rest}");
            unquoted.as_str()
        }
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(first)
            if !s.starts_with("Redis") && c.clone().next().is_some_and(|n| n.is_lowercase()) =>
        {
            first.to_lowercase().chain(c).collect()
        }
        _ => s.to_string(),
    }
}

/// Errors that retrying will not fix: wrong credentials, missing ACL permissions, a TLS
/// certificate this host does not trust.
pub(super) fn is_credentials_error(e: &redis::RedisError) -> bool {
    let text = e.to_string();
    matches!(e.kind(), redis::ErrorKind::AuthenticationFailed)
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
        || text.contains("WRONGPASS")
        || text.contains("invalid peer certificate")
}

/// A change waiting to be sent to Redis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(super) enum Change {
    /// Write a lease. Without `force` a lease already in Redis with a later deadline wins
    /// (another host's login, during an outage); a manual `add` sets the deadline.
    Put {
        lease: Lease,
        force: bool,
    },
    Del {
        net: IpNet,
    },
    Flush,
}

impl Change {
    fn key(&self) -> Vec<u8> {
        match self {
            Change::Put { lease, .. } => key_bytes(&lease.net),
            Change::Del { net } => key_bytes(net),
            Change::Flush => FLUSH_KEY.to_vec(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Queued {
    seq: u64,
    change: Change,
}

/// The queue of unsent changes, in sled so that it survives a restart.
pub(super) struct Queue {
    /// The database's handle, not a tree of its own: a tree would keep the database that
    /// failed a write open (and its file system busy) after it is closed and reopened, and
    /// every change queued after that would go to the closed one.
    sled: SledBackend,
    /// At most this many addresses ([`MAX_QUEUED`]).
    limit: usize,
    len: AtomicUsize,
    seq: AtomicU64,
    /// Wakes the sync task when something was queued.
    pub(super) wake: Notify,
    /// Set once the queue overflowed during this outage (warn once); reset when Redis is back.
    overflowed: AtomicBool,
    dropped: AtomicU64,
}

/// One queued change as read for sending: its raw key and value (for the compare-and-swap
/// that removes it once sent) and the change.
pub(super) type Entry = (sled::IVec, sled::IVec, Change);

impl Queue {
    fn open(sled: &SledBackend, limit: usize) -> Result<Queue> {
        let sled = sled.share();
        let (len, seq) = sled.with_tree("read the queue", QUEUE_TREE, |tree| {
            let mut len = 0;
            let mut seq = 0;
            for item in tree.iter() {
                let Ok((k, v)) = item else { continue };
                match serde_json::from_slice::<Queued>(&v) {
                    Ok(q) => {
                        len += 1;
                        seq = seq.max(q.seq);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "dropping an unreadable queued change");
                        let _ = tree.remove(k);
                    }
                }
            }
            Ok((len, seq))
        })?;
        Ok(Queue {
            sled,
            limit,
            len: AtomicUsize::new(len),
            seq: AtomicU64::new(seq),
            wake: Notify::new(),
            overflowed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        })
    }

    fn encode(&self, change: Change) -> Result<(Vec<u8>, Vec<u8>)> {
        let key = change.key();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let value = serde_json::to_vec(&Queued { seq, change })
            .map_err(|e| Error::invalid(format!("internal error: {e}")))?;
        Ok((key, value))
    }

    /// False (and a warning, once per outage) when the queue is full and `key` not in it.
    fn room_for(&self, key: &[u8]) -> bool {
        if self.len.load(Ordering::Relaxed) < self.limit || self.contains(key) {
            return true;
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
        if !self.overflowed.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                limit = self.limit,
                "queue for Redis is full: new addresses get a lease on this host only until Redis is back and the table reloaded"
            );
        }
        false
    }

    fn contains(&self, key: &[u8]) -> bool {
        self.sled
            .with_tree("read the queue", QUEUE_TREE, |t| t.contains_key(key))
            .unwrap_or(false)
    }

    fn inserted(&self, old: Option<sled::IVec>) {
        if old.is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        self.wake.notify_one();
    }

    fn push(&self, sled: &SledBackend, change: Change) -> Result<()> {
        let (key, value) = self.encode(change)?;
        if !self.room_for(&key) {
            return Ok(());
        }
        let old = sled.with_tree("queue a change", QUEUE_TREE, |t| t.insert(key, value))?;
        self.inserted(old);
        Ok(())
    }

    fn push_with_meta(
        &self,
        sled: &SledBackend,
        change: Change,
        mk: &str,
        mv: &[u8],
    ) -> Result<()> {
        let (key, value) = self.encode(change)?;
        if !self.room_for(&key) {
            return sled.put_meta(mk, mv);
        }
        let old = sled.insert_with_meta(QUEUE_TREE, &key, &value, mk, mv)?;
        self.inserted(old);
        Ok(())
    }

    /// Forget every queued change (a flush supersedes them).
    fn clear(&self, sled: &SledBackend) -> Result<()> {
        sled.with_tree("clear the queue", QUEUE_TREE, |t| t.clear())?;
        self.len.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Is a local change to `net` (or a flush) waiting to be sent? Then Redis does not yet
    /// know the local state of that key, and a reload or event must not overwrite it.
    pub(super) fn pending(&self, net: &IpNet) -> bool {
        self.contains(&key_bytes(net)) || self.contains(FLUSH_KEY)
    }

    /// Every queued change, a flush first.
    pub(super) fn entries(&self) -> Vec<Entry> {
        self.sled
            .with_tree("read the queue", QUEUE_TREE, |t| {
                Ok(t.iter()
                    .filter_map(|item| item.ok())
                    .filter_map(|(k, v)| {
                        let q = serde_json::from_slice::<Queued>(&v).ok()?;
                        Some((k, v, q.change))
                    })
                    .collect())
            })
            .unwrap_or_default()
    }

    /// The entry was sent: remove it unless a newer change replaced it meanwhile.
    pub(super) fn done(&self, key: &sled::IVec, value: &sled::IVec) {
        let swapped = self
            .sled
            .with_tree("remove a sent change", QUEUE_TREE, |t| {
                t.compare_and_swap(key, Some(value), None::<&[u8]>)
            });
        if let Ok(Ok(())) = swapped {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// The sequence number of the newest change queued.
    pub(super) fn seq(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }
}

/// Whether Redis is reachable and how far the queue has been sent, for acknowledgements.
struct Progress {
    up: bool,
    sent: u64,
}

/// Outage bookkeeping: one warning when Redis goes away, one line when it is back.
#[derive(Default)]
pub(super) struct Outage {
    since: Option<Instant>,
    connected_once: bool,
    /// The "refuses our credentials" error was logged in this outage.
    refused_warned: bool,
}

/// Why a connection to Redis failed or ended, in one line.
pub(super) struct Failure {
    pub(super) error: String,
    /// Redis answered, but refused the credentials or a command (ACL).
    pub(super) refused: bool,
    /// The primary took the changes, but fewer replicas than `--store-replicas` confirmed
    /// them: they stay queued, the connection stays.
    pub(super) replicas: bool,
}

impl Failure {
    pub(super) fn other(error: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            refused: false,
            replicas: false,
        }
    }

    pub(super) fn replicas(error: impl Into<String>) -> Failure {
        Failure {
            replicas: true,
            ..Failure::other(error)
        }
    }
}

/// State shared by the backend (inside [`super::Leases`]) and the sync task.
pub(super) struct Shared {
    pub(super) cfg: RedisConfig,
    pub(super) queue: Queue,
    progress: Mutex<Progress>,
    acked: Condvar,
    pub(super) outage: Mutex<Outage>,
}

impl Shared {
    pub(super) fn set_up(&self, up: bool) {
        if let Ok(mut p) = self.progress.lock() {
            p.up = up;
        }
        if up {
            self.queue.overflowed.store(false, Ordering::Relaxed);
            let dropped = self.queue.dropped.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                tracing::warn!(
                    count = dropped,
                    "changes that did not fit in the queue were not sent to Redis"
                );
            }
        }
        self.acked.notify_all();
    }

    /// Every change queued up to `seq` is in Redis.
    pub(super) fn sent_up_to(&self, seq: u64) {
        if let Ok(mut p) = self.progress.lock() {
            p.sent = p.sent.max(seq);
        }
        self.acked.notify_all();
    }

    /// Redis went away (or could not be reached): warn once per outage, and once more if it
    /// turns out to refuse our credentials.
    pub(super) fn outage_begins(&self, f: &Failure) {
        self.set_up(false);
        let Ok(mut o) = self.outage.lock() else {
            return;
        };
        let error = f.error.as_str();
        if f.refused && !o.refused_warned {
            o.refused_warned = true;
            o.since.get_or_insert_with(Instant::now);
            tracing::error!(
                redis = %self.cfg.shown,
                error,
                queued = self.queue.len(),
                "Redis unavailable until the configuration is fixed (credentials, ACL or TLS certificate): answering from the local copy and queueing logins meanwhile"
            );
        } else if o.since.is_none() && f.replicas {
            o.since = Some(Instant::now());
            tracing::warn!(
                redis = %self.cfg.shown,
                error,
                queued = self.queue.len(),
                "fewer Redis replicas than --store-replicas confirm writes: answering from the local copy and queueing logins until they do"
            );
        } else if o.since.is_none() {
            o.since = Some(Instant::now());
            tracing::warn!(
                redis = %self.cfg.shown,
                error,
                queued = self.queue.len(),
                "Redis unavailable: answering from the local copy and queueing logins until it is back"
            );
        } else {
            tracing::debug!(redis = %self.cfg.shown, error, "Redis still unavailable");
        }
    }

    /// Enough replicas confirm writes again (`--store-replicas`); the connection stayed.
    pub(super) fn replicas_confirm(&self, sent: usize) {
        self.set_up(true);
        let Ok(mut o) = self.outage.lock() else {
            return;
        };
        if let Some(t) = o.since.take() {
            tracing::info!(
                redis = %self.cfg.shown,
                after = %humantime::format_duration(Duration::from_secs(t.elapsed().as_secs())),
                sent,
                "Redis replicas confirm writes again: queued changes sent"
            );
        }
    }

    /// Connected, queue sent and table reloaded.
    pub(super) fn outage_ends(&self, sent: usize, loaded: usize) {
        self.set_up(true);
        let Ok(mut o) = self.outage.lock() else {
            return;
        };
        o.refused_warned = false;
        match o.since.take() {
            Some(t) => tracing::info!(
                redis = %self.cfg.shown,
                after = %humantime::format_duration(Duration::from_secs(t.elapsed().as_secs())),
                sent, leases = loaded,
                "Redis reachable again: queued changes sent, local copy reloaded"
            ),
            None if !o.connected_once => tracing::info!(
                redis = %self.cfg.shown, prefix = %self.cfg.prefix, sent, leases = loaded,
                "connected to Redis: leases are shared"
            ),
            None => {}
        }
        o.connected_once = true;
    }
}

/// The sync task's handle on the backend's shared state.
#[derive(Clone)]
pub struct RedisLink(pub(super) Arc<Shared>);

/// Leases in Redis, log positions and settings in the local sled database.
pub struct RedisBackend {
    sled: SledBackend,
    shared: Arc<Shared>,
    /// What Redis held at start, handed to [`Backend::load`] once.
    snapshot: Mutex<Option<Vec<Lease>>>,
}

impl RedisBackend {
    /// Connect once, for at most a few seconds: wrong credentials are an error here, an
    /// unreachable Redis only a warning (the daemon starts from its queue, and catches up
    /// when Redis answers).
    pub async fn open(cfg: RedisConfig, sled: SledBackend) -> Result<(RedisBackend, RedisLink)> {
        let queue = Queue::open(&sled, MAX_QUEUED)?;
        let before = sled.get_meta(STORE_META)?;
        if queue.len() > 0 && before.as_deref() != Some(cfg.describe().as_bytes()) {
            tracing::warn!(
                count = queue.len(),
                was = %before.as_deref().map(String::from_utf8_lossy).unwrap_or_default(),
                "dropping changes queued for another store"
            );
            queue.clear(&sled)?;
        }
        sled.put_meta(STORE_META, cfg.describe().as_bytes())?;
        let shared = Arc::new(Shared {
            queue,
            progress: Mutex::new(Progress { up: false, sent: 0 }),
            acked: Condvar::new(),
            outage: Mutex::new(Outage::default()),
            cfg,
        });
        let first = tokio::time::timeout(START_WAIT, async {
            let client = shared.cfg.primary().await?;
            let mut conn = client
                .get_multiplexed_async_connection_with_config(
                    &redis::AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(START_WAIT))
                        .set_response_timeout(Some(START_WAIT)),
                )
                .await?;
            super::redis_sync::probe(&mut conn, &shared.cfg).await?;
            super::redis_sync::load_all(&mut conn, &shared.cfg).await
        })
        .await;
        let snapshot = match first {
            Ok(Ok(leases)) => Some(leases),
            Ok(Err(e)) if is_credentials_error(&e) => return Err(shared.cfg.error(&e)),
            Ok(Err(e)) => {
                shared.outage_begins(&Failure::other(describe(&e)));
                None
            }
            Err(_) => {
                shared.outage_begins(&Failure::other("no answer within 3s"));
                None
            }
        };
        let link = RedisLink(shared.clone());
        Ok((
            RedisBackend {
                sled,
                shared,
                snapshot: Mutex::new(snapshot),
            },
            link,
        ))
    }

    fn queue(&self) -> &Queue {
        &self.shared.queue
    }
}

/// A host that keeps its leases locally again forgets what it had queued for Redis: sent
/// after a later switch back, those changes could undo newer ones.
pub fn drop_queue(sled: &SledBackend) -> Result<()> {
    let tree = sled.tree(QUEUE_TREE)?;
    if !tree.is_empty() {
        tracing::warn!(
            count = tree.len(),
            "dropping changes queued for Redis: leases are local now"
        );
        tree.clear().map_err(sled.err("clear the queue"))?;
    }
    Ok(())
}

/// A manual `add` sets the deadline; a login only ever extends it.
fn put(lease: &Lease) -> Change {
    Change::Put {
        lease: lease.clone(),
        force: lease.source == SOURCE_MANUAL,
    }
}

impl Backend for RedisBackend {
    /// What Redis held at start, with this host's unsent changes on top.
    fn load(&self) -> Result<Vec<Lease>> {
        let now = now_ms();
        let snapshot = self.snapshot.lock().ok().and_then(|mut s| s.take());
        let mut table = std::collections::HashMap::new();
        let mut flushed = false;
        let mut local = Vec::new();
        for (_, _, change) in self.queue().entries() {
            match change {
                Change::Flush => flushed = true,
                other => local.push(other),
            }
        }
        if !flushed {
            for l in snapshot.unwrap_or_default() {
                table.insert(l.net, l);
            }
        }
        for change in local {
            match change {
                Change::Put { lease, .. } => {
                    table.insert(lease.net, lease);
                }
                Change::Del { net } => {
                    table.remove(&net);
                }
                Change::Flush => {}
            }
        }
        // Never hand back an expired lease: the table would delete it, and a deletion here
        // could remove another host's renewal.
        Ok(table.into_values().filter(|l| l.is_live(now)).collect())
    }

    fn put(&self, lease: &Lease) -> Result<()> {
        self.queue().push(&self.sled, put(lease))
    }

    fn put_with_meta(&self, lease: &Lease, key: &str, value: &[u8]) -> Result<()> {
        self.queue()
            .push_with_meta(&self.sled, put(lease), key, value)
    }

    fn remove(&self, net: &IpNet) -> Result<()> {
        self.queue().push(&self.sled, Change::Del { net: *net })
    }

    /// Redis expires the key itself (PXAT), and every host drops it from its copy at the
    /// same deadline.
    fn expired(&self, _net: &IpNet) -> Result<()> {
        Ok(())
    }

    fn clear(&self) -> Result<()> {
        self.queue().clear(&self.sled)?;
        self.queue().push(&self.sled, Change::Flush)
    }

    fn sync(&self) -> Result<()> {
        self.sync_confirmed().map(|_| ())
    }

    /// On disk here first; then up to [`ACK_WAIT`] for Redis (and with `--store-replicas N`,
    /// N of its replicas) to confirm, unless Redis is known to be away or short of replicas
    /// (the change stays queued and is sent when it is back).
    fn sync_confirmed(&self) -> Result<bool> {
        self.sled.sync()?;
        let target = self.queue().seq();
        let Ok(p) = self.shared.progress.lock() else {
            return Ok(false);
        };
        Ok(
            match self
                .shared
                .acked
                .wait_timeout_while(p, ACK_WAIT, |p| p.up && p.sent < target)
            {
                Ok((p, _)) => p.sent >= target,
                Err(_) => false,
            },
        )
    }

    fn sync_local(&self) -> Result<()> {
        self.sled.sync()
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.sled.get_meta(key)
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.sled.put_meta(key, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::{Login, Millis, Rules, lease_key, parse_ip};
    use crate::store::{Leases, Opened};

    const T0: Millis = 1_800_000_000_000;

    /// A backend that never connected: what a daemon has while Redis is away.
    fn offline(dir: &std::path::Path) -> RedisBackend {
        offline_with_limit(dir, MAX_QUEUED)
    }

    fn offline_with_limit(dir: &std::path::Path, limit: usize) -> RedisBackend {
        // sled lets go of its file lock when its flusher thread has stopped, a moment after
        // the last handle is dropped: a reopen in the same process may have to wait for it.
        let mut tries = 0;
        let opened = loop {
            match SledBackend::open(dir) {
                Err(crate::Error::DbLocked { .. }) if tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other.unwrap(),
            }
        };
        let sled = match opened {
            Opened::Fine(b) | Opened::Quarantined(b, _) => b,
        };
        let queue = Queue::open(&sled, limit).unwrap();
        RedisBackend {
            sled,
            shared: Arc::new(Shared {
                cfg: RedisConfig::parse("redis://127.0.0.1:1/0", "relaylease", true).unwrap(),
                queue,
                progress: Mutex::new(Progress { up: false, sent: 0 }),
                acked: Condvar::new(),
                outage: Mutex::new(Outage::default()),
            }),
            snapshot: Mutex::new(None),
        }
    }

    fn lease(ip: &str, deadline: Millis) -> Lease {
        let login = Login {
            ip: parse_ip(ip).unwrap(),
            user: Some("alice".into()),
            at: deadline.saturating_sub(1000),
            source: "/var/log/mail.log".into(),
        };
        Lease::new(lease_key(login.ip, 64), &login, deadline)
    }

    fn far() -> Millis {
        now_ms() + 3_600_000
    }

    #[test]
    fn the_queue_keeps_the_newest_change_per_address_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = offline(dir.path());
            b.put(&lease("192.0.2.1", far())).unwrap();
            b.put(&lease("192.0.2.2", far())).unwrap();
            b.put(&lease("192.0.2.2", far() + 1)).unwrap();
            b.remove(&lease("192.0.2.3", far()).net).unwrap();
            b.put_with_meta(&lease("192.0.2.4", far()), "pos", b"42")
                .unwrap();
            assert_eq!(b.queue().len(), 4, "one entry per address");
            assert!(b.queue().pending(&lease("192.0.2.3", 0).net));
            assert!(!b.queue().pending(&lease("192.0.2.9", 0).net));
            b.sync().unwrap();
        }
        let b = offline(dir.path());
        assert_eq!(b.queue().len(), 4);
        assert_eq!(b.queue().seq(), 5, "sequence numbers go on after a restart");
        assert_eq!(b.get_meta("pos").unwrap().as_deref(), Some(&b"42"[..]));
        let kinds: Vec<_> = b
            .queue()
            .entries()
            .into_iter()
            .map(|(_, _, c)| match c {
                Change::Put { lease, force } => format!("put {} {force}", lease.net),
                Change::Del { net } => format!("del {net}"),
                Change::Flush => "flush".into(),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "put 192.0.2.1/32 false",
                "put 192.0.2.2/32 false",
                "del 192.0.2.3/32",
                "put 192.0.2.4/32 false"
            ]
        );
        // Sent entries go; one replaced meanwhile stays for the next round.
        let entries = b.queue().entries();
        b.put(&lease("192.0.2.1", far() + 5)).unwrap();
        for (k, v, _) in &entries {
            b.queue().done(k, v);
        }
        assert_eq!(b.queue().len(), 1);
        assert!(b.queue().pending(&lease("192.0.2.1", 0).net));
    }

    #[test]
    fn a_full_queue_takes_no_new_address_but_still_updates_queued_ones_and_log_positions() {
        let dir = tempfile::tempdir().unwrap();
        let b = offline_with_limit(dir.path(), 2);
        b.put(&lease("192.0.2.1", far())).unwrap();
        b.put(&lease("192.0.2.2", far())).unwrap();
        b.put_with_meta(&lease("192.0.2.3", far()), "pos", b"7")
            .unwrap();
        b.remove(&lease("192.0.2.4", 0).net).unwrap();
        assert_eq!(b.queue().len(), 2);
        assert!(!b.queue().pending(&lease("192.0.2.3", 0).net));
        assert_eq!(b.get_meta("pos").unwrap().as_deref(), Some(&b"7"[..]));
        assert_eq!(b.queue().dropped.load(Ordering::Relaxed), 2);
        b.remove(&lease("192.0.2.1", 0).net).unwrap();
        let last = b.queue().entries().into_iter().next().map(|(_, _, c)| c);
        assert!(matches!(last, Some(Change::Del { .. })), "{last:?}");
        // Once Redis is back the count is reported and the next overflow warns again.
        b.shared.set_up(true);
        assert_eq!(b.queue().dropped.load(Ordering::Relaxed), 0);
        assert!(!b.queue().overflowed.load(Ordering::Relaxed));
    }

    #[test]
    fn load_puts_unsent_changes_over_what_redis_held_and_a_flush_over_everything() {
        let dir = tempfile::tempdir().unwrap();
        let b = offline(dir.path());
        *b.snapshot.lock().unwrap() = Some(vec![
            lease("192.0.2.1", far()),
            lease("192.0.2.2", far()),
            lease("192.0.2.3", now_ms() - 1),
        ]);
        b.remove(&lease("192.0.2.2", 0).net).unwrap();
        b.put(&lease("192.0.2.5", far())).unwrap();
        b.put(&lease("192.0.2.6", now_ms() - 1)).unwrap();
        let mut got: Vec<String> = b
            .load()
            .unwrap()
            .iter()
            .map(|l| l.net.to_string())
            .collect();
        got.sort();
        assert_eq!(
            got,
            ["192.0.2.1/32", "192.0.2.5/32"],
            "never an expired lease"
        );

        *b.snapshot.lock().unwrap() = Some(vec![lease("192.0.2.1", far())]);
        b.clear().unwrap();
        b.put(&lease("192.0.2.7", far())).unwrap();
        let got: Vec<String> = b
            .load()
            .unwrap()
            .iter()
            .map(|l| l.net.to_string())
            .collect();
        assert_eq!(got, ["192.0.2.7/32"]);
        assert!(
            b.queue().pending(&lease("192.0.2.1", 0).net),
            "a queued flush covers every address"
        );
    }

    #[test]
    fn manual_adds_set_the_deadline_and_expiry_deletes_nothing_in_redis() {
        let dir = tempfile::tempdir().unwrap();
        let b = offline(dir.path());
        let tree = b.sled.tree(QUEUE_TREE).unwrap();
        let leases = Leases::open(Box::new(b), Rules::default(), T0).unwrap();
        let ip = parse_ip("192.0.2.1").unwrap();
        leases
            .add(ip, std::time::Duration::from_secs(60), T0)
            .unwrap();
        let login = Login {
            ip: parse_ip("192.0.2.2").unwrap(),
            user: None,
            at: T0,
            source: "hook".into(),
        };
        leases.login(&login, T0, true, None).unwrap();
        leases.expire(T0 + 3_600_000).unwrap();
        assert!(leases.is_empty());
        let changes = queued(&tree);
        assert!(
            matches!(
                &changes[..],
                [
                    Change::Put { force: true, .. },
                    Change::Put { force: false, .. }
                ]
            ),
            "{changes:?}"
        );
    }

    /// What is queued, read through a second handle on the queue's tree.
    fn queued(tree: &sled::Tree) -> Vec<Change> {
        tree.iter()
            .filter_map(|i| i.ok())
            .filter_map(|(_, v)| serde_json::from_slice::<Queued>(&v).ok())
            .map(|q| q.change)
            .collect()
    }

    #[test]
    fn remote_changes_update_the_copy_and_announce_without_writing_back() {
        let dir = tempfile::tempdir().unwrap();
        let b = offline(dir.path());
        let tree = b.sled.tree(QUEUE_TREE).unwrap();
        let leases = Leases::open(Box::new(b), Rules::default(), T0).unwrap();
        let mut changes = leases.subscribe();
        let ip = parse_ip("192.0.2.1").unwrap();
        leases.apply_remote(lease("192.0.2.1", T0 + 60_000), T0);
        assert!(leases.check(ip, T0).allowed());
        assert!(
            !leases.check(ip, T0 + 60_000).allowed(),
            "to the millisecond"
        );
        assert!(changes.has_changed().unwrap());
        changes.borrow_and_update();
        leases.apply_remote(lease("192.0.2.1", T0 + 120_000), T0);
        assert!(!changes.has_changed().unwrap(), "a renewal keeps the set");
        assert!(leases.check(ip, T0 + 60_000).allowed());
        leases.apply_remote(lease("192.0.2.2", T0 - 1), T0);
        assert_eq!(leases.len(), 1, "an expired lease is not taken");
        leases.forget_remote(&lease("192.0.2.1", 0).net);
        assert!(!leases.check(ip, T0).allowed());
        assert!(changes.has_changed().unwrap());
        assert!(queued(&tree).is_empty(), "nothing written back");

        // A reload replaces the copy but keeps local changes Redis has not heard of yet.
        leases.apply_remote(lease("192.0.2.3", T0 + 60_000), T0);
        let local = Login {
            ip: parse_ip("192.0.2.4").unwrap(),
            user: None,
            at: T0,
            source: "hook".into(),
        };
        leases.login(&local, T0, false, None).unwrap();
        leases.replace_all(vec![lease("192.0.2.5", T0 + 60_000)], T0, |net| {
            tree.contains_key(key_bytes(net)).unwrap_or(false)
        });
        let mut now: Vec<String> = leases.list(T0).iter().map(|l| l.net.to_string()).collect();
        now.sort();
        assert_eq!(now, ["192.0.2.4/32", "192.0.2.5/32"]);
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("redis://relay:s3cret@10.0.0.5:6379/2"),
            "redis://relay:***@10.0.0.5:6379/2"
        );
        assert_eq!(
            redact("rediss://:s3cret@redis.example.org:6380/0"),
            "rediss://:***@redis.example.org:6380/0"
        );
        assert_eq!(
            redact("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            redact("redis://u:p@h/0?pass=x&a=b"),
            "redis://u:***@h/0?pass=***&a=b"
        );
        assert_eq!(redact("nonsense"), "nonsense");
    }

    #[test]
    fn store_urls_are_checked_and_named_without_the_password() {
        let ok = RedisConfig::parse("redis://relay:pw@127.0.0.1:6390/3", "site-a", false).unwrap();
        assert_eq!(
            ok.describe(),
            "redis://relay:***@127.0.0.1:6390/3 prefix site-a"
        );
        assert_eq!(
            format!("{ok:?}"),
            "RedisConfig(redis://relay:***@127.0.0.1:6390/3 prefix site-a)"
        );
        assert!(
            RedisConfig::parse("rediss://:pw@h.example.org:6380/0", "relaylease", false).is_ok()
        );
        // Without a password whoever reaches Redis can write a lease: only with the flag.
        for url in [
            "redis://h:1/0",
            "redis://relay@h:1/0",
            "redis://relay:@h:1/0",
        ] {
            let e = RedisConfig::parse(url, "relaylease", false)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("no password") && e.contains("--store-no-password"),
                "{e}"
            );
            assert_eq!(e.lines().count(), 1, "{e}");
            assert!(RedisConfig::parse(url, "relaylease", true).is_ok());
        }
        for bad in [
            "http://127.0.0.1:6379",
            "127.0.0.1:6379",
            "redis+unix:///tmp/redis.sock",
            "redis://u:secret@[::1/0",
        ] {
            let e = RedisConfig::parse(bad, "relaylease", true)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("--store '"), "{e}");
            assert!(!e.contains("secret"), "{e}");
        }
        for bad in ["", "a b", "x*", "a:b", &"p".repeat(65)] {
            let e = RedisConfig::parse("redis://h:1/0", bad, true)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("--store-prefix"), "{e}");
        }
    }

    #[test]
    fn sentinel_urls_name_the_sentinels_the_primary_and_both_logins() {
        let url = "redis+sentinel://relay:p%40ss@10.0.0.1:26379,10.0.0.2,[::1]:26380/relay/2?sentinel_pass=s3cret";
        let c = RedisConfig::parse(url, "relaylease", false).unwrap();
        assert!(c.uses_sentinel());
        assert_eq!(
            c.shown,
            "redis+sentinel://relay:***@10.0.0.1:26379,10.0.0.2,[::1]:26380/relay/2?sentinel_pass=***"
        );
        let t = c.sentinel.as_ref().unwrap();
        assert_eq!(t.master, "relay");
        assert_eq!(
            t.sentinels,
            [
                "redis://:s3cret@10.0.0.1:26379",
                "redis://:s3cret@10.0.0.2:26379",
                "redis://:s3cret@[::1]:26380"
            ]
        );
        let tls = RedisConfig::parse(
            "rediss+sentinel://relay:pw@s1:1,s2:2/m?sentinel_user=watch&sentinel_pass=x",
            "relaylease",
            false,
        )
        .unwrap();
        assert_eq!(
            tls.sentinel.as_ref().unwrap().sentinels,
            ["rediss://watch:x@s1:1", "rediss://watch:x@s2:2"]
        );
        // Either password missing: refused unless --store-no-password.
        for url in [
            "redis+sentinel://relay:pw@s1:1,s2:2/m/0",
            "redis+sentinel://s1:1,s2:2/m/0?sentinel_pass=x",
        ] {
            let e = RedisConfig::parse(url, "relaylease", false)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("password") && e.contains("--store-no-password"),
                "{e}"
            );
            assert!(!e.contains("pw") && !e.contains("=x"), "{e}");
            assert!(RedisConfig::parse(url, "relaylease", true).is_ok());
        }
        for bad in [
            "redis+sentinel://:pw@s1:1,s2:2/?sentinel_pass=x",
            "redis+sentinel://:pw@s1:1,,s2:2/m?sentinel_pass=x",
            "redis+sentinel://:pw@s1:port/m?sentinel_pass=x",
            "redis+sentinel://:pw@s1:1/m/0/extra?sentinel_pass=x",
            "redis+sentinel://:pw@s1:1/m?sentinel_pass=x&tls=yes",
            "redis+sentinel://:pw@s1:1/m m?sentinel_pass=x",
        ] {
            let e = RedisConfig::parse(bad, "relaylease", false)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("--store '"), "{e}");
            assert_eq!(e.lines().count(), 1, "{e}");
            assert!(!e.contains(":pw@"), "{e}");
        }
        let plain = RedisConfig::parse("redis://:pw@h:1/0", "relaylease", false).unwrap();
        assert!(!plain.uses_sentinel());
        assert_eq!(plain.with_replicas(2).replicas, 2);
    }

    #[test]
    fn errors_read_as_one_plain_line() {
        assert_eq!(
            tidy("Redis URL did not parse - InvalidClientConfig"),
            "Redis URL did not parse"
        );
        assert_eq!(
            tidy("Connection refused (os error 111)"),
            "connection refused"
        );
        assert_eq!(
            tidy("\"NOPERM\": this user has no permissions to run the 'eval' command"),
            "NOPERM: this user has no permissions to run the 'eval' command"
        );
    }

    #[test]
    fn keys_and_channel_carry_the_prefix() {
        let c = RedisConfig::parse("redis://h:1/0", "site-a", true).unwrap();
        let net: IpNet = "2001:db8:1:2::/64".parse().unwrap();
        assert_eq!(c.lease_key(&net), "site-a:lease:2001:db8:1:2::/64");
        assert_eq!(c.lease_pattern(), "site-a:lease:*");
        assert_eq!(c.channel(), "site-a:events");
    }

    #[test]
    fn a_flush_sorts_before_every_lease() {
        let v4: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(Change::Flush.key() < Change::Del { net: v4 }.key());
    }
}
