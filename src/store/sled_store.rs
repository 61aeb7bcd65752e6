//! The embedded durable backend: one sled database under `--db DIR`.

use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::Backend;
use crate::error::{Error, Result};
use crate::lease::{Lease, now_ms};

const LEASES: &str = "leases";
const META: &str = "meta";

/// sled's default page cache is 1 GiB; leases are small and mostly read from memory.
const CACHE_BYTES: u64 = 16 * 1024 * 1024;

pub struct SledBackend {
    path: PathBuf,
    db: sled::Db,
    leases: sled::Tree,
    meta: sled::Tree,
}

/// How opening the database went, for the caller to report.
pub enum Opened {
    Fine(SledBackend),
    /// The old database was corrupt and now lies at this path; the new one is empty.
    Quarantined(SledBackend, PathBuf),
}

fn open_raw(path: &Path) -> std::result::Result<sled::Db, sled::Error> {
    // sled can panic on some damaged files instead of returning an error; contain it and
    // treat it as corruption, without printing a backtrace.
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(|| {
        sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .open()
    });
    std::panic::set_hook(prev);
    match r {
        Ok(r) => r,
        Err(_) => Err(sled::Error::ReportableBug(
            "the database could not be read".into(),
        )),
    }
}

fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

fn is_corruption(e: &sled::Error) -> bool {
    match e {
        sled::Error::Corruption { .. }
        | sled::Error::Unsupported(_)
        | sled::Error::ReportableBug(_)
        | sled::Error::CollectionNotFound(_) => true,
        sled::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
        ),
    }
}

impl SledBackend {
    /// Open (or create) the database. A corrupt one is renamed aside with a timestamp and a
    /// fresh one created: leases are soft state. A locked one is an error, never quarantined.
    pub fn open(path: &Path) -> Result<Opened> {
        std::fs::create_dir_all(path).map_err(|e| Error::io("create", path, e))?;
        match open_raw(path) {
            Ok(db) => Ok(Opened::Fine(Self::from_db(path, db)?)),
            Err(e) if is_lock_error(&e) => Err(Error::DbLocked {
                path: path.to_path_buf(),
            }),
            Err(e) if is_corruption(&e) => {
                let aside = move_aside(path)?;
                tracing::error!(
                    db = %path.display(),
                    moved_to = %aside.display(),
                    error = %e,
                    "database is corrupt: moved aside, starting with no leases (users log in again to get one)"
                );
                std::fs::create_dir_all(path).map_err(|e| Error::io("create", path, e))?;
                let db = open_raw(path).map_err(|e| Error::Db {
                    op: "create",
                    path: path.to_path_buf(),
                    source: e,
                })?;
                Ok(Opened::Quarantined(Self::from_db(path, db)?, aside))
            }
            Err(sled::Error::Io(io)) => Err(Error::io("open database", path, io)),
            Err(e) => Err(Error::Db {
                op: "open",
                path: path.to_path_buf(),
                source: e,
            }),
        }
    }

    fn from_db(path: &Path, db: sled::Db) -> Result<Self> {
        let tree = |name: &'static str| {
            db.open_tree(name).map_err(|e| Error::Db {
                op: "open tree",
                path: path.to_path_buf(),
                source: e,
            })
        };
        Ok(SledBackend {
            path: path.to_path_buf(),
            leases: tree(LEASES)?,
            meta: tree(META)?,
            db,
        })
    }

    /// Another tree of the same database (the shared store's queue of unsent changes).
    pub(super) fn tree(&self, name: &'static str) -> Result<sled::Tree> {
        self.db.open_tree(name).map_err(self.err("open tree"))
    }

    /// Write `key` in `tree` and a meta record so that a crash keeps both or neither;
    /// returns the value `key` had before.
    pub(super) fn insert_with_meta(
        &self,
        tree: &sled::Tree,
        key: &[u8],
        value: &[u8],
        meta_key: &str,
        meta_value: &[u8],
    ) -> Result<Option<sled::IVec>> {
        use sled::Transactional;
        (tree, &self.meta)
            .transaction(|(t, meta)| {
                let old = t.insert(key, value)?;
                meta.insert(meta_key.as_bytes(), meta_value)?;
                Ok(old)
            })
            .map_err(|e: sled::transaction::TransactionError<()>| match e {
                sled::transaction::TransactionError::Storage(e) => self.err("write")(e),
                sled::transaction::TransactionError::Abort(()) => Error::invalid("write aborted"),
            })
    }

    pub(super) fn err(&self, op: &'static str) -> impl FnOnce(sled::Error) -> Error + '_ {
        move |e| Error::Db {
            op,
            path: self.path.clone(),
            source: e,
        }
    }
}

/// Move a corrupt database out of the way: to `DIR.corrupt-<time>` beside it, or, where the
/// parent is not writable (systemd's ProtectSystem=strict leaves only the state directory
/// writable), into `DIR/corrupt-<time>/`.
fn move_aside(path: &Path) -> Result<PathBuf> {
    let stamp = now_ms() / 1000;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".corrupt-{stamp}"));
    let beside = path.with_file_name(name);
    if std::fs::rename(path, &beside).is_ok() {
        return Ok(beside);
    }
    let inside = path.join(format!("corrupt-{stamp}"));
    std::fs::create_dir(&inside).map_err(|e| Error::io("create", &inside, e))?;
    let entries = std::fs::read_dir(path).map_err(|e| Error::io("read", path, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("corrupt-") {
            continue;
        }
        std::fs::rename(entry.path(), inside.join(&name))
            .map_err(|e| Error::io("move aside", entry.path(), e))?;
    }
    Ok(inside)
}

/// Lease keys: family, prefix length and address bytes, so equal keys are equal bytes.
pub(super) fn key_bytes(net: &IpNet) -> Vec<u8> {
    let mut k = Vec::with_capacity(18);
    match net {
        IpNet::V4(n) => {
            k.push(4);
            k.push(n.prefix_len());
            k.extend_from_slice(&n.addr().octets());
        }
        IpNet::V6(n) => {
            k.push(6);
            k.push(n.prefix_len());
            k.extend_from_slice(&n.addr().octets());
        }
    }
    k
}

impl Backend for SledBackend {
    fn load(&self) -> Result<Vec<Lease>> {
        let mut out = Vec::new();
        for item in self.leases.iter() {
            let (k, v) = item.map_err(self.err("read leases"))?;
            match serde_json::from_slice::<Lease>(&v) {
                Ok(l) => out.push(l),
                Err(e) => {
                    tracing::warn!(error = %e, "dropping an unreadable lease record");
                    self.leases.remove(k).map_err(self.err("remove lease"))?;
                }
            }
        }
        Ok(out)
    }

    fn put(&self, lease: &Lease) -> Result<()> {
        let v = serde_json::to_vec(lease).map_err(|e| Error::invalid(e.to_string()))?;
        self.leases
            .insert(key_bytes(&lease.net), v)
            .map_err(self.err("write lease"))?;
        Ok(())
    }

    fn remove(&self, net: &IpNet) -> Result<()> {
        self.leases
            .remove(key_bytes(net))
            .map_err(self.err("remove lease"))?;
        Ok(())
    }

    fn clear(&self) -> Result<()> {
        self.leases.clear().map_err(self.err("clear leases"))
    }

    fn sync(&self) -> Result<()> {
        self.db.flush().map_err(self.err("flush"))?;
        Ok(())
    }

    fn put_with_meta(&self, lease: &Lease, key: &str, value: &[u8]) -> Result<()> {
        use sled::Transactional;
        let v = serde_json::to_vec(lease).map_err(|e| Error::invalid(e.to_string()))?;
        let k = key_bytes(&lease.net);
        (&self.leases, &self.meta)
            .transaction(|(leases, meta)| {
                leases.insert(k.as_slice(), v.as_slice())?;
                meta.insert(key.as_bytes(), value)?;
                Ok(())
            })
            .map_err(|e: sled::transaction::TransactionError<()>| match e {
                sled::transaction::TransactionError::Storage(e) => self.err("write lease")(e),
                sled::transaction::TransactionError::Abort(()) => {
                    Error::invalid("lease write aborted")
                }
            })
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .meta
            .get(key.as_bytes())
            .map_err(self.err("read"))?
            .map(|v| v.to_vec()))
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.meta
            .insert(key.as_bytes(), value)
            .map_err(self.err("write"))?;
        Ok(())
    }
}
