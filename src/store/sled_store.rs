//! The embedded durable backend: one sled database under `--db DIR`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::Backend;
use crate::error::describe_sled;
use crate::error::{Error, Result};
use crate::lease::{Lease, now_ms};

const LEASES: &str = "leases";
/// Files every sled database directory holds: its settings and its log.
const SLED_CONF: &str = "conf";
const SLED_LOG: &str = "db";
const META: &str = "meta";

/// sled's default page cache is 1 GiB; leases are read from the in-memory index, and the
/// database is read through only once, at start. A small cache keeps a large table's RSS
/// down (1,000,000 leases: 140 MiB of sled memory after the first read with 16 MiB, 111 MiB
/// with 2 MiB).
const CACHE_BYTES: u64 = 2 * 1024 * 1024;

/// After a write error, how long to wait before each attempt to reopen the database.
const REOPEN_EVERY: Duration = Duration::from_secs(2);

pub struct SledBackend {
    path: PathBuf,
    /// `None` between closing a database that failed a write and reopening it.
    /// Shared with [`SledBackend::share`]'s handles, so that closing and reopening after a
    /// write error is one act for all of them (a handle keeping the old database open would
    /// keep its lock, and the reopen would fail).
    open: Arc<RwLock<Option<Trees>>>,
    /// Set by a write error: when the database was last (re)opened. sled refuses every
    /// operation after one I/O error, so the way back is closing it and opening it again.
    failed: Arc<Mutex<Option<Instant>>>,
}

struct Trees {
    db: sled::Db,
    leases: sled::Tree,
    meta: sled::Tree,
    /// sled's log file, for the fsync sled's flush leaves out (see [`Backend::sync`]).
    log: std::fs::File,
}

/// How opening the database went, for the caller to report.
pub enum Opened {
    Fine(SledBackend),
    /// The old database was corrupt and now lies at this path; the new one is empty.
    Quarantined(SledBackend, PathBuf),
}

fn open_raw(path: &Path) -> std::result::Result<sled::Db, sled::Error> {
    // sled can panic on some damaged files instead of returning an error; contain it and
    // treat it as corruption.
    let r = contained(|| {
        sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .open()
    });
    match r {
        Some(r) => r,
        None => Err(sled::Error::ReportableBug(
            "the database could not be read".into(),
        )),
    }
}

/// Run `f`, and None if it panicked, with nothing printed (no message, no backtrace). The
/// panic unwinds through the unwinder that build.rs links in.
fn contained<T>(f: impl FnOnce() -> T) -> Option<T> {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(prev);
    r.ok()
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
        let trees = Trees::new(path, db).map_err(|e| Error::Db {
            op: "open tree",
            path: path.to_path_buf(),
            source: e,
        })?;
        Ok(SledBackend {
            path: path.to_path_buf(),
            open: Arc::new(RwLock::new(Some(trees))),
            failed: Arc::new(Mutex::new(None)),
        })
    }

    /// Run `f` on the open database. An I/O error closes it; a later call reopens it, so
    /// the daemon writes again once the disk has room or is writable again.
    fn with<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Trees) -> std::result::Result<T, sled::Error>,
    ) -> Result<T> {
        self.reopen_if_failed();
        let open = self.open.read().unwrap_or_else(PoisonError::into_inner);
        let Some(trees) = open.as_ref() else {
            let closed = std::io::Error::other(format!(
                "closed after a write error (reopened every {}s until that works)",
                REOPEN_EVERY.as_secs()
            ));
            return Err(self.err(op)(sled::Error::Io(closed)));
        };
        let r = f(trees);
        if let Err(sled::Error::Io(_)) = &r {
            let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
            failed.get_or_insert_with(Instant::now);
        }
        r.map_err(self.err(op))
    }

    fn reopen_if_failed(&self) {
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        match *failed {
            Some(at) if at.elapsed() >= REOPEN_EVERY => {}
            _ => return,
        }
        *failed = Some(Instant::now());
        let mut open = self.open.write().unwrap_or_else(PoisonError::into_inner);
        // The failed database holds the lock on the directory (and keeps its file system
        // busy, so that it cannot be unmounted and repaired): close it first.
        *open = None;
        // Never create a new database here: an empty directory is a file system not
        // mounted back yet, and leases written there would be hidden once it is.
        if !self.path.join(SLED_CONF).is_file() {
            tracing::warn!(db = %self.path.display(), "cannot reopen the database yet: it is not there");
            return;
        }
        match open_raw(&self.path).and_then(|db| Trees::new(&self.path, db)) {
            Ok(trees) => {
                *open = Some(trees);
                *failed = None;
                tracing::info!(db = %self.path.display(), "database reopened after a write error: writing again");
            }
            Err(e) => tracing::warn!(db = %self.path.display(), error = %describe_sled(&e),
                "cannot reopen the database yet"),
        }
    }

    /// The database's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Another handle on the same open database (the usage table's): it never holds a tree
    /// of its own, so it follows this one through a close and reopen.
    pub(super) fn share(&self) -> SledBackend {
        SledBackend {
            path: self.path.clone(),
            open: self.open.clone(),
            failed: self.failed.clone(),
        }
    }

    /// Run `f` on the tree `name` of the open database, with the reopening after a write
    /// error that every operation of this backend has.
    pub(super) fn with_tree<T>(
        &self,
        op: &'static str,
        name: &'static str,
        f: impl FnOnce(&sled::Tree) -> std::result::Result<T, sled::Error>,
    ) -> Result<T> {
        self.with(op, |t| f(&t.db.open_tree(name)?))
    }

    /// Another tree of the same database (the shared store's queue of unsent changes).
    pub(super) fn tree(&self, name: &'static str) -> Result<sled::Tree> {
        self.with("open tree", |t| t.db.open_tree(name))
    }

    /// Write `key` in `tree` and a meta record so that a crash keeps both or neither;
    /// returns the value `key` had before.
    pub(super) fn insert_with_meta(
        &self,
        tree: &'static str,
        key: &[u8],
        value: &[u8],
        meta_key: &str,
        meta_value: &[u8],
    ) -> Result<Option<sled::IVec>> {
        use sled::Transactional;
        self.with("write", |trees| {
            let tree = trees.db.open_tree(tree)?;
            (&tree, &trees.meta)
                .transaction(|(t, meta)| {
                    let old = t.insert(key, value)?;
                    meta.insert(meta_key.as_bytes(), meta_value)?;
                    Ok(old)
                })
                .map_err(storage_error)
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

impl Trees {
    fn new(path: &Path, db: sled::Db) -> std::result::Result<Trees, sled::Error> {
        Ok(Trees {
            leases: db.open_tree(LEASES)?,
            meta: db.open_tree(META)?,
            log: std::fs::File::open(path.join(SLED_LOG))?,
            db,
        })
    }
}

/// Our transactions never abort, so only the storage error is left.
fn storage_error(e: sled::transaction::TransactionError<()>) -> sled::Error {
    match e {
        sled::transaction::TransactionError::Storage(e) => e,
        sled::transaction::TransactionError::Abort(()) => {
            sled::Error::ReportableBug("transaction aborted".into())
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

/// The version byte that starts every lease record.
const RECORD_V1: u8 = 1;

/// A lease record: the version, the four numbers (little-endian u64: deadline, first and last
/// login, logins), then the source and the user as u32 length and bytes, the user's length
/// `u32::MAX` when there is none. The address is the record's key. About 60 bytes for a
/// typical lease where JSON took 150, which matters to a database rewritten on every login.
fn encode(l: &Lease) -> Vec<u8> {
    let user = l.user.as_deref().unwrap_or("");
    let mut v = Vec::with_capacity(1 + 32 + 8 + l.source.len() + user.len());
    v.push(RECORD_V1);
    for n in [l.deadline, l.first_login, l.last_login, l.logins] {
        v.extend_from_slice(&n.to_le_bytes());
    }
    v.extend_from_slice(&(l.source.len() as u32).to_le_bytes());
    v.extend_from_slice(l.source.as_bytes());
    match &l.user {
        Some(u) => {
            v.extend_from_slice(&(u.len() as u32).to_le_bytes());
            v.extend_from_slice(u.as_bytes());
        }
        None => v.extend_from_slice(&u32::MAX.to_le_bytes()),
    }
    v
}

/// A u32 length and that many bytes of UTF-8; `Some(None)` for the "no text" length.
fn text(r: &mut &[u8]) -> Option<Option<String>> {
    let (b, rest) = r.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*b);
    if len == u32::MAX {
        *r = rest;
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    let s = std::str::from_utf8(rest.get(..len)?).ok()?.to_string();
    *r = &rest[len..];
    Some(Some(s))
}

/// The lease stored under key `k` as `v`, or `None` when either is not what [`encode`] and
/// [`key_bytes`] write (the caller drops such a record).
fn decode(k: &[u8], v: &[u8]) -> Option<Lease> {
    let net = match k {
        [4, p, a @ ..] if a.len() == 4 => {
            let a: [u8; 4] = a.try_into().ok()?;
            IpNet::V4(ipnet::Ipv4Net::new(a.into(), *p).ok()?)
        }
        [6, p, a @ ..] if a.len() == 16 => {
            let a: [u8; 16] = a.try_into().ok()?;
            IpNet::V6(ipnet::Ipv6Net::new(a.into(), *p).ok()?)
        }
        _ => return None,
    };
    let mut r = v.strip_prefix(&[RECORD_V1])?;
    let mut u64s = [0u64; 4];
    for n in &mut u64s {
        let (b, rest) = r.split_first_chunk::<8>()?;
        *n = u64::from_le_bytes(*b);
        r = rest;
    }
    let source = text(&mut r)??;
    let user = text(&mut r)?;
    if !r.is_empty() {
        return None;
    }
    let [deadline, first_login, last_login, logins] = u64s;
    Some(Lease {
        net,
        deadline,
        first_login,
        last_login,
        user,
        source,
        logins,
    })
}

/// Which end of the tree a reader starts from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Front,
    Back,
}

/// How far each reader has got: the last key the front reader took and the last (lowest)
/// key the back reader took. A reader takes only keys the other has not reached.
#[derive(Default)]
struct Claims {
    front: Option<sled::IVec>,
    back: Option<sled::IVec>,
}

/// Records read per batch, between looks at the other reader's progress.
const BATCH: usize = 1024;

impl SledBackend {
    /// Read leases from one end until meeting the other reader; sends them in batches and
    /// returns the keys of records that could not be read.
    fn scan(
        tree: &sled::Tree,
        side: Side,
        claims: &Mutex<Claims>,
        tx: std::sync::mpsc::SyncSender<Vec<Lease>>,
    ) -> std::result::Result<Vec<sled::IVec>, sled::Error> {
        let mut it = tree.iter();
        let mut unreadable = Vec::new();
        loop {
            let mut batch = Vec::with_capacity(BATCH);
            while batch.len() < BATCH {
                let item = match side {
                    Side::Front => it.next(),
                    Side::Back => it.next_back(),
                };
                match item {
                    Some(kv) => batch.push(kv?),
                    None => break,
                }
            }
            let ended = batch.len() < BATCH;
            let met = {
                let mut c = claims.lock().unwrap_or_else(|p| p.into_inner());
                let c = &mut *c;
                let (mine, theirs) = match side {
                    Side::Front => (&mut c.front, &c.back),
                    Side::Back => (&mut c.back, &c.front),
                };
                let cut = theirs.as_ref().and_then(|t| {
                    batch.iter().position(|(k, _)| match side {
                        Side::Front => k >= t,
                        Side::Back => k <= t,
                    })
                });
                if let Some(n) = cut {
                    batch.truncate(n);
                }
                if let Some((k, _)) = batch.last() {
                    *mine = Some(k.clone());
                }
                cut.is_some()
            };
            let mut leases = Vec::with_capacity(batch.len());
            for (k, v) in batch {
                match decode(&k, &v) {
                    Some(l) => leases.push(l),
                    None => unreadable.push(k),
                }
            }
            if !leases.is_empty() && tx.send(leases).is_err() {
                break;
            }
            if met || ended {
                break;
            }
        }
        Ok(unreadable)
    }
}

impl Backend for SledBackend {
    fn load(&self) -> Result<Vec<Lease>> {
        let mut out = Vec::new();
        self.load_each(&mut |l| out.push(l))?;
        Ok(out)
    }

    /// Two threads read the tree, one from each end, and meet in the middle: opening a
    /// database of a million leases is mostly sled's reading, and there are two cores.
    fn load_each(&self, each: &mut dyn FnMut(Lease)) -> Result<()> {
        let unreadable = self.with("read leases", |trees| {
            let tree = &trees.leases;
            let claims = Mutex::new(Claims::default());
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Lease>>(16);
            let (fwd, back) = std::thread::scope(|scope| {
                let claims = &claims;
                let tx2 = tx.clone();
                let fwd = scope.spawn(move || Self::scan(tree, Side::Front, claims, tx2));
                let back = scope.spawn(move || Self::scan(tree, Side::Back, claims, tx));
                for batch in rx {
                    batch.into_iter().for_each(&mut *each);
                }
                (fwd.join(), back.join())
            });
            let mut unreadable = Vec::new();
            for side in [fwd, back] {
                let keys = side.map_err(|_| {
                    sled::Error::ReportableBug("a database reader panicked".into())
                })??;
                unreadable.extend(keys);
            }
            Ok(unreadable)
        })?;
        for k in unreadable {
            tracing::warn!("dropping an unreadable lease record");
            self.with("remove lease", |t| t.leases.remove(k))?;
        }
        Ok(())
    }

    fn put(&self, lease: &Lease) -> Result<()> {
        self.with("write lease", |t| {
            t.leases.insert(key_bytes(&lease.net), encode(lease))
        })?;
        Ok(())
    }

    /// One atomic batch.
    fn put_many(&self, leases: &[Lease]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for l in leases {
            batch.insert(key_bytes(&l.net), encode(l));
        }
        self.with("write leases", move |t| t.leases.apply_batch(batch))
    }

    fn remove(&self, net: &IpNet) -> Result<()> {
        self.with("remove lease", |t| t.leases.remove(key_bytes(net)))?;
        Ok(())
    }

    fn clear(&self) -> Result<()> {
        self.with("clear leases", |t| t.leases.clear())
    }

    /// sled's flush makes its writes stable with sync_file_range, which leaves the log
    /// file's size and block map to its next periodic fsync, half a second later: a power
    /// cut or a file system gone read-only in between loses a lease already acknowledged.
    /// The fdatasync here closes that gap (it writes the size and block map a read needs,
    /// and skips the timestamps that a full fsync would commit too).
    fn sync(&self) -> Result<()> {
        self.with("flush", |t| {
            t.db.flush()?;
            t.log.sync_data().map_err(sled::Error::Io)
        })?;
        Ok(())
    }

    fn put_with_meta(&self, lease: &Lease, key: &str, value: &[u8]) -> Result<()> {
        self.put_many_with_meta(std::slice::from_ref(lease), key, value)
    }

    /// One transaction over the leases and the meta record: all of them or none.
    fn put_many_with_meta(&self, leases: &[Lease], key: &str, value: &[u8]) -> Result<()> {
        use sled::Transactional;
        let records: Vec<(Vec<u8>, Vec<u8>)> = leases
            .iter()
            .map(|l| (key_bytes(&l.net), encode(l)))
            .collect();
        self.with("write lease", |t| {
            (&t.leases, &t.meta)
                .transaction(|(tree, meta)| {
                    for (k, v) in &records {
                        tree.insert(k.as_slice(), v.as_slice())?;
                    }
                    meta.insert(key.as_bytes(), value)?;
                    Ok(())
                })
                .map_err(storage_error)
        })
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .with("read", |t| t.meta.get(key.as_bytes()))?
            .map(|v| v.to_vec()))
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.with("write", |t| t.meta.insert(key.as_bytes(), value))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::{Login, lease_key, parse_ip};

    fn lease(ip: &str, user: Option<&str>) -> Lease {
        let login = Login {
            ip: parse_ip(ip).unwrap(),
            user: user.map(str::to_string),
            at: 1_795_316_997_000,
            source: "/var/log/mail.log".into(),
        };
        let mut l = Lease::new(lease_key(login.ip, 64), &login, login.at + 1_800_000);
        l.logins = 12;
        l
    }

    #[test]
    fn records_round_trip() {
        for l in [
            lease("192.0.2.7", Some("alice@example.net")),
            lease("2001:db8::7", None),
            lease("192.0.2.8", Some("")),
            lease("192.0.2.9", Some("ünïcode")),
        ] {
            let v = encode(&l);
            assert_eq!(decode(&key_bytes(&l.net), &v), Some(l.clone()));
        }
        assert_eq!(encode(&lease("192.0.2.7", Some("alice"))).len(), 63);
    }

    #[test]
    fn damaged_records_decode_to_none() {
        let l = lease("192.0.2.7", Some("alice"));
        let (k, v) = (key_bytes(&l.net), encode(&l));
        for cut in 0..v.len() {
            assert_eq!(decode(&k, &v[..cut]), None, "cut at {cut}");
        }
        let mut longer = v.clone();
        longer.push(0);
        assert_eq!(decode(&k, &longer), None);
        assert_eq!(decode(&k[..5], &v), None);
        assert_eq!(decode(&[4, 33, 1, 2, 3, 4], &v), None, "prefix too long");
        assert_eq!(decode(&k, br#"{"net":"192.0.2.7/32"}"#), None);
        let mut bad_utf8 = v.clone();
        let at = bad_utf8.len() - 1;
        bad_utf8[at] = 0xff;
        assert_eq!(decode(&k, &bad_utf8), None);
    }

    #[test]
    fn both_readers_together_load_every_lease_once() {
        let dir = tempfile::tempdir().unwrap();
        let Ok(Opened::Fine(b)) = SledBackend::open(&dir.path().join("db")) else {
            panic!("open");
        };
        for n in [0usize, 1, 2, BATCH - 1, BATCH, 2 * BATCH + 1, 5 * BATCH + 7] {
            b.clear().unwrap();
            let mut want = Vec::new();
            for i in 0..n as u32 {
                let l = lease(
                    &format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                    None,
                );
                b.put(&l).unwrap();
                want.push(l);
            }
            let mut got = b.load().unwrap();
            got.sort_by_key(|l| l.net);
            want.sort_by_key(|l| l.net);
            assert_eq!(got, want, "{n} leases");
        }
    }

    /// A panic deep in a call (as sled's on some damaged files) comes back as None, having
    /// unwound through every frame and run their drops: the unwinder that build.rs links in
    /// works, and the daemon reports a damaged database instead of aborting.
    #[test]
    fn a_panic_is_contained_after_unwinding_every_frame() {
        struct Dropped<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Dropped<'_> {
            fn drop(&mut self) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        fn deep(n: usize, drops: &std::sync::atomic::AtomicUsize) -> usize {
            let _guard = Dropped(drops);
            if n == 0 {
                let v: Vec<usize> = Vec::new();
                return v[std::hint::black_box(3)];
            }
            deep(n - 1, drops) + 1
        }
        let drops = std::sync::atomic::AtomicUsize::new(0);
        assert_eq!(contained(|| deep(20, &drops)), None);
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 21);
        assert_eq!(contained(|| 7), Some(7));
    }

    #[test]
    fn unreadable_records_are_dropped_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let Ok(Opened::Fine(b)) = SledBackend::open(&dir.path().join("db")) else {
            panic!("open");
        };
        let good = lease("192.0.2.7", Some("alice"));
        b.put(&good).unwrap();
        b.with("write", |t| {
            t.leases.insert(&[4, 32, 192, 0, 2, 8][..], &b"junk"[..])
        })
        .unwrap();
        assert_eq!(b.load().unwrap(), vec![good]);
        assert_eq!(
            b.with("read", |t| Ok(t.leases.len())).unwrap(),
            1,
            "the junk record is gone"
        );
    }
}
