//! The usage table in Redis (`--store redis`): every SMTP host adds its batches to one
//! record per user, `PREFIX:usage:u:USER` (or `PREFIX:usage:a:ADDR`), a JSON string that a
//! Lua script merges atomically and that expires `--usage-retention` after its last login or
//! relay. Only the commands the lease table already needs are used (GET, SET, DEL, SCAN,
//! MGET, EVAL), so the documented ACL covers it.

use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::Mutex;

use super::redis_store::RedisConfig;
use crate::error::Result;
use crate::usage::table::{Record, Subject};

/// Any one exchange taking longer than this fails the batch (it is kept and retried).
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// SCAN rounds per listing (1000 keys each).
const MAX_SCAN_ROUNDS: usize = 10_000;

/// Adds a batch to a record: counts add up, first times are the earliest, last times the
/// latest, the last address is the one of the latest activity; then the record expires a
/// retention after its latest activity. KEYS[1] record key; ARGV: batch JSON, retention ms.
const MERGE_SCRIPT: &str = r#"
local d = cjson.decode(ARGV[1])
local r = {}
local old = redis.call('GET', KEYS[1])
if old then
  local ok, o = pcall(cjson.decode, old)
  if ok and type(o) == 'table' then r = o end
end
local function num(v) if type(v) == 'number' then return v end return nil end
local function last(x) return math.max(num(x['last_login']) or 0, num(x['last_relay']) or 0) end
local newer = last(d) >= last(r)
for _, f in ipairs({'logins', 'messages', 'recipients', 'checks'}) do
  r[f] = (num(r[f]) or 0) + (num(d[f]) or 0)
end
for _, f in ipairs({'first_login', 'first_relay'}) do
  if num(d[f]) and (not num(r[f]) or d[f] < r[f]) then r[f] = d[f] end
end
for _, f in ipairs({'last_login', 'last_relay'}) do
  if num(d[f]) and (not num(r[f]) or d[f] > r[f]) then r[f] = d[f] end
end
if newer and type(d['last_address']) == 'string' then r['last_address'] = d['last_address'] end
local until_ms = last(r) + tonumber(ARGV[2])
redis.call('SET', KEYS[1], cjson.encode(r), 'PXAT', string.format('%.0f', until_ms))
return 1
"#;

pub struct UsageRedis {
    cfg: RedisConfig,
    conn: Mutex<Option<ConnectionManager>>,
}

fn key_text(s: &Subject) -> String {
    match s {
        Subject::User(u) => format!("u:{u}"),
        Subject::Addr(a) => format!("a:{a}"),
    }
}

impl UsageRedis {
    pub fn new(cfg: RedisConfig) -> UsageRedis {
        UsageRedis {
            cfg,
            conn: Mutex::new(None),
        }
    }

    fn key(&self, s: &Subject) -> String {
        format!("{}:usage:{}", self.cfg.prefix, key_text(s))
    }

    fn subject(&self, key: &str) -> Option<Subject> {
        let rest = key.strip_prefix(&format!("{}:usage:", self.cfg.prefix))?;
        match rest.split_at_checked(2)? {
            ("u:", u) => Some(Subject::User(u.to_string())),
            ("a:", a) => Some(Subject::Addr(a.to_string())),
            _ => None,
        }
    }

    async fn connection(&self) -> Result<ConnectionManager> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let client = tokio::time::timeout(OP_TIMEOUT, self.cfg.primary())
            .await
            .map_err(|_| self.timeout())?
            .map_err(|e| self.cfg.error(&e))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(1);
        let c = tokio::time::timeout(
            OP_TIMEOUT,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| self.timeout())?
        .map_err(|e| self.cfg.error(&e))?;
        Ok(slot.insert(c).clone())
    }

    fn timeout(&self) -> crate::Error {
        crate::Error::Store {
            url: self.cfg.shown.clone(),
            detail: format!("no answer within {}s", OP_TIMEOUT.as_secs()),
        }
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        what: impl FnOnce() -> redis::Pipeline,
    ) -> Result<T> {
        let mut c = self.connection().await?;
        let p = what();
        let r = tokio::time::timeout(OP_TIMEOUT, p.query_async(&mut c))
            .await
            .map_err(|_| self.timeout())
            .and_then(|r| r.map_err(|e| self.cfg.error(&e)));
        if r.is_err() && self.cfg.uses_sentinel() {
            // After a failover the connection leads to a replica (READONLY) or nowhere: ask
            // the Sentinels again next time.
            *self.conn.lock().await = None;
        }
        r
    }

    pub async fn apply(&self, batch: &[(Subject, Record)], retention: Duration) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let retention = retention.as_millis().min(u64::MAX as u128) as u64;
        let mut items = Vec::with_capacity(batch.len());
        for (s, r) in batch {
            let json = serde_json::to_string(r)
                .map_err(|e| crate::Error::invalid(format!("internal error: {e}")))?;
            items.push((self.key(s), json));
        }
        let _: Vec<redis::Value> = self
            .run(|| {
                let mut p = redis::pipe();
                for (k, json) in &items {
                    p.cmd("EVAL")
                        .arg(MERGE_SCRIPT)
                        .arg(1)
                        .arg(k)
                        .arg(json)
                        .arg(retention);
                }
                p
            })
            .await?;
        Ok(())
    }

    pub async fn load(&self) -> Result<Vec<(Subject, Record)>> {
        let pattern = format!("{}:usage:*", self.cfg.prefix);
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        for _ in 0..MAX_SCAN_ROUNDS {
            let ((next, keys),): ((u64, Vec<String>),) = self
                .run(|| {
                    let mut p = redis::pipe();
                    p.cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000);
                    p
                })
                .await?;
            if !keys.is_empty() {
                let (values,): (Vec<Option<Vec<u8>>>,) = self
                    .run(|| {
                        let mut p = redis::pipe();
                        p.cmd("MGET").arg(&keys);
                        p
                    })
                    .await?;
                for (k, v) in keys.iter().zip(values) {
                    let parsed = v.and_then(|v| serde_json::from_slice::<Record>(&v).ok());
                    match (self.subject(k), parsed) {
                        (Some(s), Some(r)) => out.push((s, r)),
                        _ => {
                            tracing::debug!(key = %k, "usage table: skipping an unreadable record")
                        }
                    }
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        Ok(out)
    }

    pub async fn forget(&self, s: &Subject) -> Result<bool> {
        let key = self.key(s);
        let (n,): (u64,) = self
            .run(|| {
                let mut p = redis::pipe();
                p.cmd("DEL").arg(&key);
                p
            })
            .await?;
        Ok(n > 0)
    }
}
