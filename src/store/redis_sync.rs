//! Keeps this host and a shared Redis table in step: sends the queue of local changes,
//! applies other hosts' changes (pub/sub) to the local copy, and reloads it after every
//! reconnect. Redis being away is an outage to wait out, never an error that stops anything.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ipnet::IpNet;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Value};
use serde::Deserialize;

use super::Leases;
use super::redis_store::{
    Change, Failure, RedisConfig, RedisLink, Shared, describe, is_credentials_error,
};
use crate::lease::{Lease, now_ms};
use crate::shutdown::Shutdown;

/// Any one exchange with Redis that takes longer than this counts as an outage.
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// Between reconnection attempts: the first, doubling up to the second.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Through Sentinel, the Sentinels are asked again this often until one names a primary
/// that answers: a failover is over as soon as a replica is promoted.
const MAX_BACKOFF_SENTINEL: Duration = Duration::from_millis(200);
/// With `--store-replicas N`, how long `WAIT N` may take before the changes stay queued here
/// (within [`super::redis_store::ACK_WAIT`], so that a hook's reply still comes in time).
pub(super) const REPLICA_WAIT: Duration = Duration::from_millis(150);
/// While fewer replicas than `--store-replicas` confirm, sending is tried again this often.
const REPLICA_RETRY: Duration = Duration::from_secs(1);
const _: () = assert!(REPLICA_WAIT.as_millis() < super::redis_store::ACK_WAIT.as_millis());
/// A quiet connection is checked this often (a Redis host that vanished sends no reset).
const PING_EVERY: Duration = Duration::from_secs(5);
/// At shutdown, how long the last queued changes may take to go out.
const FINAL_DRAIN: Duration = Duration::from_secs(1);
/// Changes sent per pipeline.
const BATCH: usize = 256;
/// SCAN rounds per reload or flush (1000 keys each): a bound, not a limit anyone reaches.
const MAX_SCAN_ROUNDS: usize = 100_000;

/// Writes a lease unless (without force) Redis holds a later deadline for it, and announces
/// whatever the key holds afterwards, so every host (the writer included) converges.
/// KEYS[1] lease key; ARGV: lease JSON, deadline (ms since the epoch), force (1/0), channel.
const PUT_SCRIPT: &str = r#"
local stored = ARGV[1]
if ARGV[3] ~= '1' then
  local old = redis.call('GET', KEYS[1])
  if old then
    local ok, o = pcall(cjson.decode, old)
    if ok and type(o) == 'table' and tonumber(o['deadline'])
        and tonumber(o['deadline']) >= tonumber(ARGV[2]) then
      stored = old
    end
  end
end
if stored == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
end
redis.call('PUBLISH', ARGV[4], '{"op":"put","lease":' .. stored .. '}')
return 1
"#;

/// KEYS[1] lease key; ARGV: the lease's address as `list` shows it in JSON, channel.
const DEL_SCRIPT: &str = r#"
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], '{"op":"del","net":"' .. ARGV[1] .. '"}')
return 1
"#;

const FLUSH_EVENT: &str = r#"{"op":"flush"}"#;

/// Uses every command the scripts and the sync task use, on a key of our own, so that a
/// user whose ACL lacks one is refused at start rather than at the first login.
/// KEYS[1] the probe key; ARGV[1] channel.
const PROBE_SCRIPT: &str = r#"
redis.call('SET', KEYS[1], '1', 'PX', 1000)
redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], '{"op":"probe"}')
return 1
"#;

/// Check at start that the user may do what relaylease does (see [`PROBE_SCRIPT`]), and
/// with `--store-replicas N` that it may `WAIT` (a warning when fewer replicas answer now).
pub(super) async fn probe<C: ConnectionLike + Send>(
    conn: &mut C,
    cfg: &RedisConfig,
) -> RedisResult<()> {
    redis::cmd("EVAL")
        .arg(PROBE_SCRIPT)
        .arg(1)
        .arg(format!("{}:probe", cfg.prefix))
        .arg(cfg.channel())
        .query_async::<()>(conn)
        .await?;
    if cfg.replicas > 0 {
        let n = wait_replicas(conn, cfg.replicas).await?;
        if n < i64::from(cfg.replicas) {
            tracing::warn!(
                redis = %cfg.shown,
                confirmed = n,
                wanted = cfg.replicas,
                "fewer Redis replicas than --store-replicas confirm writes now: logins stay queued on this host until they do"
            );
        }
    }
    Ok(())
}

/// `WAIT N` for the writes made on `conn` so far: how many replicas have them.
async fn wait_replicas<C: ConnectionLike + Send>(conn: &mut C, n: u32) -> RedisResult<i64> {
    redis::cmd("WAIT")
        .arg(n)
        .arg(REPLICA_WAIT.as_millis() as u64)
        .query_async(conn)
        .await
}

/// Through Sentinel: is the server behind `conn` still the primary? A demoted one keeps
/// answering reads with what it had, which must not override the new primary's table.
async fn still_primary<C: ConnectionLike + Send>(conn: &mut C) -> Result<(), Failure> {
    match bounded("ROLE", redis::cmd("ROLE").query_async::<redis::Role>(conn)).await? {
        redis::Role::Primary { .. } => Ok(()),
        _ => Err(Failure::other(
            "this Redis is no longer the primary: asking the Sentinels again",
        )),
    }
}

/// One message on the events channel: the state of a key after a change.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(super) enum Event {
    Put { lease: Lease },
    Del { net: IpNet },
    Flush,
}

pub(super) fn parse_event(payload: &[u8]) -> Option<Event> {
    serde_json::from_slice(payload).ok()
}

/// Every lease stored under the prefix.
pub(super) async fn load_all<C: ConnectionLike + Send>(
    conn: &mut C,
    cfg: &RedisConfig,
) -> RedisResult<Vec<Lease>> {
    let mut found = std::collections::HashMap::new();
    let mut unreadable = 0usize;
    let mut cursor: u64 = 0;
    for _ in 0..MAX_SCAN_ROUNDS {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(cfg.lease_pattern())
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        if !keys.is_empty() {
            let values: Vec<Option<Vec<u8>>> =
                redis::cmd("MGET").arg(&keys).query_async(conn).await?;
            for v in values.into_iter().flatten() {
                match serde_json::from_slice::<Lease>(&v) {
                    Ok(l) => {
                        found.insert(l.net, l);
                    }
                    Err(_) => unreadable += 1,
                }
            }
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    if unreadable > 0 {
        tracing::warn!(
            count = unreadable,
            prefix = %cfg.prefix,
            "ignoring unreadable lease records in Redis"
        );
    }
    Ok(found.into_values().collect())
}

async fn flush_all<C: ConnectionLike + Send>(conn: &mut C, cfg: &RedisConfig) -> RedisResult<()> {
    let mut cursor: u64 = 0;
    for _ in 0..MAX_SCAN_ROUNDS {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(cfg.lease_pattern())
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("DEL").arg(&keys).query_async::<()>(conn).await?;
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    redis::cmd("PUBLISH")
        .arg(cfg.channel())
        .arg(FLUSH_EVENT)
        .query_async::<()>(conn)
        .await
}

/// Await `f` for at most [`OP_TIMEOUT`]; an error is one line saying what failed.
async fn bounded<T>(what: &str, f: impl Future<Output = RedisResult<T>>) -> Result<T, Failure> {
    match tokio::time::timeout(OP_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failure {
            error: format!("{what}: {}", describe(&e)),
            refused: is_credentials_error(&e),
            replicas: false,
        }),
        Err(_) => Err(Failure::other(format!(
            "{what}: no answer within {}s",
            OP_TIMEOUT.as_secs()
        ))),
    }
}

/// Send everything queued now; returns how many changes went out. With
/// `--store-replicas N` the changes leave the queue only once `WAIT N` confirms them: until
/// then they stay queued here (and are sent again, which changes nothing where they
/// arrived), exactly as during an outage.
async fn drain<C: ConnectionLike + Send>(sh: &Shared, conn: &mut C) -> Result<usize, Failure> {
    let upto = sh.queue.seq();
    let entries = sh.queue.entries();
    let now = now_ms();
    let mut sent = 0;
    let mut rest = &entries[..];
    let wait = sh.cfg.replicas > 0 && !entries.is_empty();
    let mut sent_entries: Vec<&(sled::IVec, sled::IVec, Change)> = Vec::new();
    if let Some((first @ (k, v, Change::Flush), tail)) = rest.split_first() {
        bounded("flush", flush_all(conn, &sh.cfg)).await?;
        if wait {
            sent_entries.push(first);
        } else {
            sh.queue.done(k, v);
        }
        sent += 1;
        rest = tail;
    }
    for chunk in rest.chunks(BATCH) {
        let mut pipe = redis::pipe();
        let mut commands = 0;
        for (_, _, change) in chunk {
            match change {
                Change::Put { lease, force } if lease.is_live(now) => {
                    let Ok(json) = serde_json::to_string(lease) else {
                        continue;
                    };
                    pipe.cmd("EVAL")
                        .arg(PUT_SCRIPT)
                        .arg(1)
                        .arg(sh.cfg.lease_key(&lease.net))
                        .arg(json)
                        .arg(lease.deadline)
                        .arg(if *force { "1" } else { "0" })
                        .arg(sh.cfg.channel())
                        .ignore();
                    commands += 1;
                }
                // Past its deadline: nothing left to share.
                Change::Put { .. } => {}
                Change::Del { net } => {
                    pipe.cmd("EVAL")
                        .arg(DEL_SCRIPT)
                        .arg(1)
                        .arg(sh.cfg.lease_key(net))
                        .arg(net.to_string())
                        .arg(sh.cfg.channel())
                        .ignore();
                    commands += 1;
                }
                // Only ever first; a flush queued after `entries` was read goes next time.
                Change::Flush => {}
            }
        }
        if commands > 0 {
            bounded("send queued changes", pipe.query_async::<()>(conn)).await?;
        }
        if wait {
            sent_entries.extend(chunk);
        } else {
            for (k, v, _) in chunk {
                sh.queue.done(k, v);
            }
        }
        sent += commands;
    }
    if wait {
        let n = bounded("WAIT", wait_replicas(conn, sh.cfg.replicas)).await?;
        if n < i64::from(sh.cfg.replicas) {
            return Err(Failure::replicas(format!(
                "WAIT: {n} of {} replicas confirmed within {} ms",
                sh.cfg.replicas,
                REPLICA_WAIT.as_millis()
            )));
        }
        for (k, v, _) in sent_entries {
            sh.queue.done(k, v);
        }
    }
    sh.sent_up_to(upto);
    Ok(sent)
}

/// Apply one event to the local copy, unless a local change to that key is still queued:
/// Redis will hear of it, and its own event follows.
fn apply(sh: &Shared, leases: &Leases, payload: &[u8]) {
    let now = now_ms();
    match parse_event(payload) {
        Some(Event::Put { lease }) => {
            if !sh.queue.pending(&lease.net) {
                leases.apply_remote(lease, now);
            }
        }
        Some(Event::Del { net }) => {
            if !sh.queue.pending(&net) {
                leases.forget_remote(&net);
            }
        }
        Some(Event::Flush) => leases.replace_all(Vec::new(), now, |n| sh.queue.pending(n)),
        None => tracing::debug!(
            channel = %sh.cfg.channel(),
            "ignoring an unreadable message on the events channel"
        ),
    }
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(OP_TIMEOUT))
        .set_response_timeout(Some(OP_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(MAX_BACKOFF)
}

async fn ping<C: ConnectionLike + Send>(conn: &mut C) -> RedisResult<()> {
    redis::cmd("PING").query_async::<()>(conn).await
}

/// One connection's life: subscribe, send the queue, reload, then follow events until the
/// connection fails (`Err`, with why) or `shutdown` comes (`Ok`).
async fn session(
    sh: &Shared,
    leases: &Leases,
    manager: &mut Option<ConnectionManager>,
    shutdown: &mut Shutdown,
) -> Result<(), Failure> {
    let what = if sh.cfg.uses_sentinel() {
        "ask the Sentinels for the primary"
    } else {
        "connect"
    };
    let client = bounded(what, sh.cfg.primary()).await?;
    let pubsub = bounded("connect", client.get_async_pubsub()).await?;
    let (mut sink, mut stream) = pubsub.split();
    bounded("subscribe", sink.subscribe(sh.cfg.channel())).await?;
    let mut conn = match manager {
        Some(m) => m.clone(),
        None => {
            let m = bounded(
                "connect",
                ConnectionManager::new_with_config(client.clone(), manager_config()),
            )
            .await?;
            manager.insert(m).clone()
        }
    };
    bounded("ping", ping(&mut conn)).await?;
    // Fewer replicas than --store-replicas: the changes stay queued, the table is still
    // reloaded and followed, and sending is tried again every REPLICA_RETRY.
    let (sent, mut short) = match drain(sh, &mut conn).await {
        Ok(n) => (n, None),
        Err(f) if f.replicas => (0, Some(f)),
        Err(f) => return Err(f),
    };
    if sh.cfg.uses_sentinel() {
        still_primary(&mut conn).await?;
    }
    let fresh = bounded("reload", load_all(&mut conn, &sh.cfg)).await?;
    let loaded = fresh.len();
    leases.replace_all(fresh, now_ms(), |n| sh.queue.pending(n));
    match &short {
        None => sh.outage_ends(sent, loaded),
        Some(f) => sh.outage_begins(f),
    }

    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut retry = tokio::time::interval(REPLICA_RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stopping = shutdown.recv();
    tokio::pin!(stopping);
    loop {
        let drained = tokio::select! {
            msg = stream.next() => match msg {
                Some(m) => {
                    apply(sh, leases, m.get_payload_bytes());
                    continue;
                }
                None => return Err(Failure::other("connection lost")),
            },
            _ = sh.queue.wake.notified(), if short.is_none() => {
                drain(sh, &mut conn).await
            }
            _ = retry.tick(), if short.is_some() => {
                drain(sh, &mut conn).await
            }
            _ = timer.tick() => {
                bounded("ping", ping(&mut conn)).await?;
                bounded("ping", sink.ping::<Value>()).await?;
                if sh.cfg.uses_sentinel() {
                    still_primary(&mut conn).await?;
                }
                drain(sh, &mut conn).await
            }
            _ = &mut stopping => {
                let _ = tokio::time::timeout(FINAL_DRAIN, drain(sh, &mut conn)).await;
                return Ok(());
            }
        };
        match drained {
            Ok(sent) => {
                if short.take().is_some() {
                    sh.replicas_confirm(sent);
                }
            }
            Err(f) if f.replicas => {
                if short.is_none() {
                    sh.outage_begins(&f);
                    retry.reset();
                }
                short = Some(f);
            }
            Err(f) => return Err(f),
        }
    }
}

/// Run until `shutdown`: connect, and reconnect after every failure (100 ms, then
/// doubling to 1 s between attempts). Started by the daemon with `--store redis://...`.
pub async fn run(link: RedisLink, leases: Arc<Leases>, mut shutdown: Shutdown) {
    let sh = link.0;
    let max_backoff = if sh.cfg.uses_sentinel() {
        MAX_BACKOFF_SENTINEL
    } else {
        MAX_BACKOFF
    };
    let mut manager = None;
    let mut backoff = MIN_BACKOFF;
    loop {
        if shutdown.is_shutdown() {
            break;
        }
        let started = Instant::now();
        match session(&sh, &leases, &mut manager, &mut shutdown).await {
            Ok(()) => break,
            Err(e) => {
                sh.outage_begins(&e);
                // A manager only replaces a connection that broke; one to a primary demoted
                // by a failover still works and answers READONLY. Start afresh.
                manager = None;
            }
        }
        if started.elapsed() > Duration::from_secs(10) {
            backoff = MIN_BACKOFF;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.recv() => break,
        }
        backoff = (backoff * 2).min(max_backoff);
    }
    sh.set_up(false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_as_the_scripts_write_them() {
        let lease = r#"{"net":"192.0.2.7/32","deadline":1795321822937,"first_login":1,"last_login":2,"user":"bob","source":"hook","logins":3}"#;
        let put = format!(r#"{{"op":"put","lease":{lease}}}"#);
        match parse_event(put.as_bytes()) {
            Some(Event::Put { lease }) => {
                assert_eq!(lease.deadline, 1795321822937);
                assert_eq!(lease.net.to_string(), "192.0.2.7/32");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_event(br#"{"op":"del","net":"2001:db8:1:2::/64"}"#),
            Some(Event::Del {
                net: "2001:db8:1:2::/64".parse().unwrap()
            })
        );
        assert_eq!(parse_event(FLUSH_EVENT.as_bytes()), Some(Event::Flush));
        assert_eq!(parse_event(b"{\"op\":\"put\"}"), None);
        assert_eq!(parse_event(b"garbage"), None);
    }
}
