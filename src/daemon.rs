//! The daemon: opens the store, starts the sources, the expiry task and the answers, and
//! stops them all cleanly when told to.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{DaemonConfig, read_users};
use crate::control::server::{Access, serve};
use crate::error::{Error, Result};
use crate::lease::now_ms;
use crate::listen::{ListenAddr, Listener, bind_unix, remove_socket};
use crate::sources::follow::Msg;
use crate::store::{
    Backend, Leases, Opened, RedisBackend, STORE_META, SledBackend, drop_queue, redis_sync,
    save_rules,
};

/// How long shutdown waits for requests in flight.
const GRACE: Duration = Duration::from_secs(3);

/// The [`STORE_META`] record of a host whose leases are in its own database.
pub const LOCAL_STORE: &[u8] = b"local";

/// Open the lease database, moving a corrupt one aside.
pub fn open_store(db: &Path) -> Result<SledBackend> {
    Ok(match SledBackend::open(db)? {
        Opened::Fine(b) => b,
        Opened::Quarantined(b, _) => b,
    })
}

/// Socket files this daemon bound, removed when it stops (or fails to start).
struct SocketFiles(Vec<PathBuf>);

impl Drop for SocketFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            remove_socket(p);
        }
    }
}

/// Hand the database directory and everything in it to the daemon's user.
fn hand_over_tree(dir: &Path, to: &crate::privs::RunAs) -> Result<()> {
    crate::privs::hand_over(dir, to)?;
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read", dir, e))?;
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() && !p.is_symlink() {
            hand_over_tree(&p, to)?;
        } else {
            crate::privs::hand_over(&p, to)?;
        }
    }
    Ok(())
}

/// A future that resolves once `rx` reads true (or its sender is gone).
pub async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Run until `shutdown` resolves. `reload` ticks on SIGHUP.
pub async fn run(
    cfg: DaemonConfig,
    shutdown: impl Future<Output = ()>,
    mut reload: tokio::sync::mpsc::Receiver<()>,
) -> Result<()> {
    let started = now_ms();
    let cdb_base = match cfg.tcprules.as_ref().and_then(|c| c.base.as_ref()) {
        Some(p) => crate::answers::cdbfile::read_base(p)?,
        None => Vec::new(),
    };
    let root = nix::unistd::Uid::effective().is_root();
    let run_as = cfg.run_as.as_ref().filter(|_| root);
    if let Some(to) = run_as {
        std::fs::create_dir_all(&cfg.paths.db)
            .map_err(|e| Error::io("create", &cfg.paths.db, e))?;
        hand_over_tree(&cfg.paths.db, to)?;
    }
    let sled = open_store(&cfg.paths.db)?;
    save_rules(&sled, &cfg.rules)?;
    let (backend, redis): (Box<dyn Backend>, _) = match &cfg.store {
        Some(rc) => {
            let (b, link) = RedisBackend::open(rc.clone(), sled).await?;
            (Box::new(b), Some(link))
        }
        None => {
            drop_queue(&sled)?;
            sled.put_meta(STORE_META, LOCAL_STORE)?;
            (Box::new(sled), None)
        }
    };
    let leases = Arc::new(Leases::open(backend, cfg.rules.clone(), now_ms())?);
    let mut unix_paths = vec![cfg.paths.socket.clone()];
    unix_paths.extend(
        cfg.policy
            .iter()
            .chain(&cfg.socketmap)
            .filter_map(|a| match a {
                ListenAddr::Unix(p) => Some(p.clone()),
                ListenAddr::Inet(_) => None,
            }),
    );
    // Socket directories we create are handed to the daemon's user, so it can remove its
    // sockets at shutdown.
    let new_dirs: Vec<PathBuf> = unix_paths
        .iter()
        .filter_map(|p| p.parent())
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    let control = bind_unix(&cfg.paths.socket, cfg.socket_mode, cfg.socket_gid)?;
    // From here on every way out, error or shutdown, removes the socket files we made.
    let mut sockets = SocketFiles(vec![cfg.paths.socket.clone()]);
    let mut policy = Vec::new();
    for addr in &cfg.policy {
        policy.push(Listener::bind(addr, cfg.policy_mode, cfg.policy_gid).await?);
        if let ListenAddr::Unix(p) = addr {
            sockets.0.push(p.clone());
        }
    }
    let mut socketmap = Vec::new();
    for addr in &cfg.socketmap {
        socketmap.push(Listener::bind(addr, cfg.policy_mode, cfg.policy_gid).await?);
        if let ListenAddr::Unix(p) = addr {
            sockets.0.push(p.clone());
        }
    }
    let dovecot_policy = match &cfg.dovecot_policy {
        Some(c) => Some(Listener::bind(&ListenAddr::Inet(c.addr), 0, None).await?),
        None => None,
    };
    if let Some(to) = run_as {
        for d in &new_dirs {
            crate::privs::hand_over(d, to)?;
        }
        for p in &unix_paths {
            nix::unistd::chown(p.as_path(), Some(nix::unistd::Uid::from_raw(to.uid)), None)
                .map_err(|e| Error::io("change owner of", p, std::io::Error::from(e)))?;
        }
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(crate::expiry::run(leases.clone(), stopped(stop_rx.clone())));
    if let Some(link) = redis {
        tasks.spawn(redis_sync::run(link, leases.clone(), stop_rx.clone()));
    }
    tasks.spawn(serve(
        control,
        leases.clone(),
        Access {
            own_uid: nix::unistd::geteuid().as_raw(),
            writer_gid: cfg.writer_gid,
        },
        stopped(stop_rx.clone()),
        GRACE,
    ));
    for l in policy {
        tasks.spawn(crate::answers::policy::serve(
            l,
            leases.clone(),
            stopped(stop_rx.clone()),
            GRACE,
        ));
    }
    for l in socketmap {
        tasks.spawn(crate::answers::socketmap::serve(
            l,
            leases.clone(),
            cfg.socketmap_map.clone(),
            stopped(stop_rx.clone()),
            GRACE,
        ));
    }
    if let (Some(l), Some(c)) = (dovecot_policy, &cfg.dovecot_policy) {
        tracing::info!(addr = %c.addr, api_header = c.secret.as_ref().map_or("-", |h| h.name.as_str()),
            "dovecot-policy: taking Dovecot's auth-policy reports");
        if c.secret.is_none() {
            tracing::warn!(addr = %c.addr,
                "dovecot-policy: no --dovecot-policy-secret-file: any local process can report a login");
        }
        tasks.spawn(crate::sources::dovecot_policy::serve(
            l,
            leases.clone(),
            c.secret.clone(),
            stopped(stop_rx.clone()),
            GRACE,
        ));
    }
    let cdb_reload = cfg.tcprules.clone().map(|c| {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tasks.spawn(crate::answers::cdbfile::run(
            c,
            cdb_base,
            leases.clone(),
            rx,
            stop_rx.clone(),
        ));
        tx
    });
    let followers = if cfg.watches.is_empty() {
        None
    } else {
        Some(crate::sources::start_followers(
            &cfg.watches,
            &cfg.login_patterns,
            leases.clone(),
            cfg.max_session_hold,
        )?)
    };
    if let Some(to) = run_as {
        // Every socket is bound and every log open: root is no longer needed. New files
        // sled made while opening are handed over first.
        hand_over_tree(&cfg.paths.db, to)?;
        crate::privs::drop_to(to)?;
    } else if root {
        tracing::warn!(
            "running as root: give --user (e.g. --user relaylease) so the daemon drops privileges once its sockets are bound"
        );
    }
    // After the drop: journalctl, and every later one, runs as the daemon's user.
    let journal = match &cfg.journal {
        Some(spec) => Some(crate::sources::journal::start(
            spec.clone(),
            &cfg.login_patterns,
            leases.clone(),
            cfg.max_session_hold,
            started,
        )?),
        None => None,
    };
    tracing::info!(
        db = %cfg.paths.db.display(),
        socket = %cfg.paths.socket.display(),
        store = %cfg.store.as_ref().map_or_else(|| "local".to_string(), |s| s.describe()),
        leases = leases.len(),
        expire = %humantime::format_duration(cfg.rules.window),
        "relaylease daemon ready"
    );

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(()) = reload.recv() => {
                reload_config(&cfg, &leases);
                if let Some((_, tx)) = &followers {
                    let _ = tx.send(Msg::Reopen);
                }
                if let Some(tx) = &cdb_reload {
                    let _ = tx.try_send(());
                }
            }
        }
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    if let Some((thread, tx)) = followers {
        let _ = tx.send(Msg::Stop);
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    if let Some(j) = journal {
        let _ = tokio::task::spawn_blocking(move || j.stop()).await;
    }
    let _ = tokio::time::timeout(GRACE + Duration::from_secs(1), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    drop(sockets);
    leases.sync()?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP: re-read what lives in files. A file that cannot be read keeps the old settings.
fn reload_config(cfg: &DaemonConfig, leases: &Leases) {
    if let Some(path) = &cfg.users_file {
        match read_users(path) {
            Ok(users) => {
                let mut rules = (*leases.rules()).clone();
                let n = users.len();
                rules.users = Some(Arc::new(users));
                leases.set_rules(rules);
                tracing::info!(path = %path.display(), users = n, "re-read the users file");
            }
            Err(e) => tracing::error!(error = %e, "keeping the old users list"),
        }
    }
}
