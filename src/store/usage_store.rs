//! Where the usage table lives: a tree of the local sled database, or Redis with
//! `--store redis` so that every SMTP host's counts add up in one table.

use std::sync::Arc;
use std::time::Duration;

use super::SledBackend;
use super::usage_journal::{Journal, Round};
use super::usage_redis::UsageRedis;
use crate::error::Result;
use crate::lease::Millis;
use crate::usage::table::{Delta, Items, Record, Subject};

const USAGE_TREE: &str = "usage";
/// The usage tree's record of the last journal round whose fold finished (u64,
/// little-endian): no subject's key starts with a zero byte.
const ROUND_KEY: &[u8] = b"\0round";
/// Records in one sled batch of a fold. With 256 (a whole tick's fold), the full soak's
/// threads grew by 12.5% in its second half, failing its flatness check: most likely tokio's
/// blocking pool, growing with hook logins that waited on the batch lock.
const FOLD_BATCH: usize = 16;

/// The usage table in the local database: one JSON record per subject.
pub struct UsageSled {
    db: SledBackend,
}

fn decode(k: &[u8], v: &[u8]) -> Option<(Subject, Record)> {
    Some((Subject::from_key(k)?, serde_json::from_slice(v).ok()?))
}

impl UsageSled {
    pub fn open(db: &SledBackend) -> UsageSled {
        UsageSled { db: db.share() }
    }

    /// Add `batch` to the stored records in one atomic write, and make it durable: a
    /// daemon killed after this returns keeps it.
    pub fn apply(&self, batch: &[(Subject, Record)]) -> Result<()> {
        self.db.with_tree("write usage", USAGE_TREE, |tree| {
            let mut write = sled::Batch::default();
            for (s, delta) in batch {
                let key = s.key();
                let mut r = tree
                    .get(&key)?
                    .and_then(|v| serde_json::from_slice::<Record>(&v).ok())
                    .unwrap_or_default();
                r.merge(delta);
                write.insert(key, serde_json::to_vec(&r).unwrap_or_default());
            }
            tree.apply_batch(write)?;
            tree.flush()?;
            Ok(())
        })
    }

    /// Add a journal round's counts to their records, except where a record already has
    /// them (it carries this round or a later one: the round is being folded again after a
    /// crash). Written in sled batches, as the usage table always was, of [`FOLD_BATCH`]
    /// records: a batch holds every other writer (the leases') up while it is applied.
    /// Durable once [`Self::finish`] has returned.
    pub fn fold(&self, items: &[(Vec<u8>, Delta)], round: u64) -> Result<()> {
        for chunk in items.chunks(FOLD_BATCH) {
            self.fold_batch(chunk, round)?;
        }
        Ok(())
    }

    fn fold_batch(&self, items: &[(Vec<u8>, Delta)], round: u64) -> Result<()> {
        self.db.with_tree("write usage", USAGE_TREE, |tree| {
            let mut write = sled::Batch::default();
            for (key, d) in items {
                let mut r = tree
                    .get(key)?
                    .and_then(|v| serde_json::from_slice::<Record>(&v).ok())
                    .unwrap_or_default();
                if r.folded >= round {
                    continue;
                }
                r.merge(&d.record());
                r.folded = round;
                write.insert(key.as_slice(), serde_json::to_vec(&r).unwrap_or_default());
            }
            tree.apply_batch(write)
        })
    }

    /// A round folded: make it durable and remember it, so that later rounds are numbered
    /// after it even once every journal file is gone.
    pub fn finish(&self, round: u64) -> Result<()> {
        self.db.with_tree("write usage", USAGE_TREE, |tree| {
            let mut write = sled::Batch::default();
            write.insert(ROUND_KEY, &round.to_le_bytes());
            tree.apply_batch(write)?;
            tree.flush()?;
            Ok(())
        })
    }

    /// The journal of this table, and the rounds it holds that are still to be folded.
    pub fn journal(&self) -> Result<(Journal, Vec<Round>)> {
        let stored = self
            .db
            .with_tree("read usage", USAGE_TREE, |tree| tree.get(ROUND_KEY))?;
        let after = stored
            .and_then(|v| Some(u64::from_le_bytes(v.as_ref().try_into().ok()?)))
            .unwrap_or(0);
        Journal::open(self.db.path(), after)
    }

    /// Fold every round the journal holds now (a daemon that stopped or crashed before it
    /// had): what `usage` reads with no daemon running is then complete.
    pub fn recover(&self) -> Result<()> {
        let (journal, rounds) = self.journal()?;
        for Round { round, items } in rounds {
            self.fold_round(&journal, &items, round)?;
        }
        Ok(())
    }

    /// Fold a whole round, make it durable and remove its file.
    fn fold_round(&self, journal: &Journal, items: &Items, round: u64) -> Result<()> {
        self.fold(items, round)?;
        self.finish(round)?;
        journal.remove(round)
    }

    pub fn load(&self) -> Result<Vec<(Subject, Record)>> {
        let (out, unreadable) = self.db.with_tree("read usage", USAGE_TREE, |tree| {
            let mut out = Vec::new();
            let mut unreadable = 0usize;
            for item in tree.iter() {
                let (k, v) = item?;
                if k.as_ref() == ROUND_KEY {
                    continue;
                }
                match decode(&k, &v) {
                    Some(x) => out.push(x),
                    None => unreadable += 1,
                }
            }
            Ok((out, unreadable))
        })?;
        if unreadable > 0 {
            tracing::warn!(
                records = unreadable,
                "usage table: skipping unreadable records"
            );
        }
        Ok(out)
    }

    pub fn forget(&self, s: &Subject) -> Result<bool> {
        self.db.with_tree("remove usage", USAGE_TREE, |tree| {
            let old = tree.remove(s.key())?;
            tree.flush()?;
            Ok(old.is_some())
        })
    }

    /// Drop the records with no login or relay since `before`.
    pub fn prune(&self, before: Millis) -> Result<usize> {
        self.db.with_tree("prune usage", USAGE_TREE, |tree| {
            let mut old = Vec::new();
            for item in tree.iter() {
                let (k, v) = item?;
                if k.as_ref() == ROUND_KEY {
                    continue;
                }
                if decode(&k, &v).is_none_or(|(_, r)| r.last_active() < before) {
                    old.push(k);
                }
            }
            for k in &old {
                tree.remove(k)?;
            }
            if !old.is_empty() {
                tree.flush()?;
            }
            Ok(old.len())
        })
    }
}

/// The usage table of this daemon.
#[derive(Clone)]
pub enum UsageStore {
    Sled(Arc<UsageSled>),
    Redis(Arc<UsageRedis>),
}

/// The methods are async for Redis; the sled ones block, which is what the recorder wants
/// on its own thread and runtime.
impl UsageStore {
    /// Add a batch; records with no activity for `retention` expire (Redis) or are pruned.
    pub async fn apply(&self, batch: Vec<(Subject, Record)>, retention: Duration) -> Result<()> {
        match self {
            UsageStore::Sled(s) => s.apply(&batch),
            UsageStore::Redis(r) => r.apply(&batch, retention).await,
        }
    }

    pub async fn load(&self) -> Result<Vec<(Subject, Record)>> {
        match self {
            UsageStore::Sled(s) => s.load(),
            UsageStore::Redis(r) => r.load().await,
        }
    }

    pub async fn forget(&self, subject: Subject) -> Result<bool> {
        match self {
            UsageStore::Sled(s) => s.forget(&subject),
            UsageStore::Redis(r) => r.forget(&subject).await,
        }
    }

    /// Drop records idle since `before` (Redis expires its own).
    pub async fn prune(&self, before: Millis) -> Result<usize> {
        match self {
            UsageStore::Sled(s) => s.prune(before),
            UsageStore::Redis(_) => Ok(0),
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            UsageStore::Sled(_) => "local database",
            UsageStore::Redis(_) => "Redis",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Opened;

    #[test]
    fn a_round_folded_again_after_a_crash_adds_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let Ok(Opened::Fine(b)) = SledBackend::open(&dir.path().join("db")) else {
            panic!("open")
        };
        let table = UsageSled::open(&b);
        let (mut journal, left) = table.journal().unwrap();
        assert!(left.is_empty());
        let t = 1_790_000_000_000;
        let ip = "192.0.2.1".parse().unwrap();
        let items = vec![
            (b"ualice".to_vec(), Delta::login(t, ip)),
            (b"ubob".to_vec(), Delta::relay(t, ip, true, true)),
        ];
        journal.append(&items).unwrap();
        let round = journal.rotate();
        // Killed after alice's record was written, before the round was finished.
        table.fold(&items[..1], round).unwrap();
        drop(journal);
        table.recover().unwrap();
        let mut all = table.load().unwrap();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let counts: Vec<(String, u64, u64)> = all
            .iter()
            .map(|(s, r)| (s.name().to_string(), r.logins, r.recipients))
            .collect();
        assert_eq!(
            counts,
            [("alice".to_string(), 1, 0), ("bob".to_string(), 0, 1)]
        );
        // The round's file is gone, and later rounds are numbered after it all the same.
        let (journal, left) = table.journal().unwrap();
        assert!(left.is_empty());
        assert!(!journal.path(round).exists());
        assert!(journal.round() > round);
    }

    #[test]
    fn batches_add_up_survive_a_reopen_and_old_records_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let t = 1_790_000_000_000;
        {
            let Ok(Opened::Fine(b)) = SledBackend::open(&db) else {
                panic!("open")
            };
            let u = UsageSled::open(&b);
            let alice = Subject::User("alice".into());
            let old = Subject::Addr("192.0.2.9".into());
            u.apply(&[
                (alice.clone(), Record::login(t, "192.0.2.1".into())),
                (old.clone(), Record::login(t - 1000, "192.0.2.9".into())),
            ])
            .unwrap();
            u.apply(&[(
                alice.clone(),
                Record::relay(t + 5, "192.0.2.2".into(), true, true),
            )])
            .unwrap();
            assert!(u.forget(&Subject::User("nobody".into())).is_ok_and(|f| !f));
            assert_eq!(u.prune(t - 500).unwrap(), 1);
        }
        let b = loop {
            match SledBackend::open(&db) {
                Ok(Opened::Fine(b)) => break b,
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let u = UsageSled::open(&b);
        let all = u.load().unwrap();
        assert_eq!(all.len(), 1);
        let (s, r) = &all[0];
        assert_eq!(s, &Subject::User("alice".into()));
        assert_eq!((r.logins, r.messages, r.recipients), (1, 1, 1));
        assert_eq!(r.last_address.as_deref(), Some("192.0.2.2"));
        assert!(u.forget(s).unwrap());
        assert!(u.load().unwrap().is_empty());
    }
}
