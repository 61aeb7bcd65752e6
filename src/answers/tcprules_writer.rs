//! Keeps tcpserver's rules cdb current: rebuilt shortly after every change to the leased set,
//! bursts coalesced, written atomically.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::tcprules::{Rule, build_rules, build_rules_marked, lease_keys, parse_rules};
use crate::error::{Error, Result};
use crate::lease::{now_ms, show_key};
use crate::shutdown::Shutdown;
use crate::store::{Leases, Stats};

/// Wait this long after a change for more before writing: one write per burst.
const SETTLE: Duration = Duration::from_millis(20);
/// A failed write is tried again after this long even when nothing changes.
const RETRY: Duration = Duration::from_secs(5);

/// `--tcprules FILE.cdb [--tcprules-base FILE] [--tcprules-env NAME=VALUE]`.
#[derive(Clone, Debug)]
pub struct CdbConfig {
    pub path: PathBuf,
    pub base: Option<PathBuf>,
    pub env: Vec<(String, String)>,
}

pub fn read_base(path: &Path) -> Result<Vec<Rule>> {
    let text = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    parse_rules(&text).map_err(|e| Error::invalid(format!("{}: {e}", path.display())))
}

/// Write `bytes` to `path` the way tcprules does: a temp file in the same directory, fsync,
/// rename over the old one, then fsync the directory so the rename survives a crash.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(name);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| Error::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io("replace", path, e))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The cdb for the live leases at this moment.
fn build(leases: &Leases, base: &[Rule], env: &[(String, String)]) -> Result<(Vec<u8>, usize)> {
    let list = leases.list(now_ms());
    let marks = super::lease_use::cdb_marks(leases, &list);
    let nets: Vec<_> = list.into_iter().map(|l| l.net).collect();
    for net in &nets {
        if let Ok(k) = lease_keys(net)
            && !k.complete
        {
            tracing::debug!(addr = %show_key(net), "this IPv6 lease can only be partly written for tcpserver");
        }
    }
    Ok((build_rules_marked(base, &nets, env, &marks)?, nets.len()))
}

/// Rebuild on every change (coalesced) and on `reload` (SIGHUP: the base file is re-read),
/// until `shutdown`. Writes once at start so the file always exists.
pub async fn run(
    cfg: CdbConfig,
    mut base: Vec<Rule>,
    leases: Arc<Leases>,
    mut reload: mpsc::Receiver<()>,
    mut shutdown: Shutdown,
) {
    let mut changes = leases.subscribe();
    let mut failed = false;
    loop {
        let result = {
            let (leases, base, env) = (leases.clone(), base.clone(), cfg.env.clone());
            let path = cfg.path.clone();
            tokio::task::spawn_blocking(move || {
                let (bytes, n) = build(&leases, &base, &env)?;
                write_atomically(&path, &bytes).map(|()| n)
            })
            .await
            .unwrap_or_else(|e| Err(Error::invalid(format!("internal error: {e}"))))
        };
        match result {
            Ok(n) => {
                if failed {
                    tracing::info!(path = %cfg.path.display(), "tcprules cdb written again");
                }
                failed = false;
                tracing::debug!(path = %cfg.path.display(), leases = n, "tcprules cdb rebuilt");
            }
            Err(e) => {
                Stats::bump(&leases.stats.errors);
                failed = true;
                tracing::error!(error = %e, "cannot rebuild the tcprules cdb: tcpserver keeps the previous one (expired leases in it still relay until it can be written)");
            }
        }
        tokio::select! {
            r = changes.changed() => {
                if r.is_err() { return; }
                tokio::time::sleep(SETTLE).await;
                changes.borrow_and_update();
            }
            Some(()) = reload.recv() => {
                if let Some(p) = &cfg.base {
                    match read_base(p) {
                        Ok(b) => {
                            tracing::info!(path = %p.display(), rules = b.len(), "re-read the tcprules base file");
                            base = b;
                        }
                        Err(e) => tracing::error!(error = %e, "keeping the previous tcprules base rules"),
                    }
                }
            }
            _ = tokio::time::sleep(RETRY), if failed => {}
            _ = shutdown.recv() => {
                // Nobody keeps the leases in the file current once we are gone: leave only
                // the administrator's static rules, so nothing relays past its deadline.
                let emptied = build_rules(&base, &[], &cfg.env)
                    .and_then(|bytes| write_atomically(&cfg.path, &bytes));
                match emptied {
                    Ok(()) => tracing::info!(path = %cfg.path.display(), "tcprules cdb left with the static rules only"),
                    Err(e) => tracing::error!(error = %e, "cannot remove the leases from the tcprules cdb at shutdown"),
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rules.cdb");
        write_atomically(&p, b"one").unwrap();
        write_atomically(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let missing = dir.path().join("no/such/dir/rules.cdb");
        assert!(
            write_atomically(&missing, b"x")
                .unwrap_err()
                .to_string()
                .contains("cannot create")
        );
    }
}
