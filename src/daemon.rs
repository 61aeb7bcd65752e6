//! The daemon: opens the leases, binds every socket, starts the sources, the expiry task and
//! the answers, drops root, then waits, reloads on SIGHUP and stops them all cleanly.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::answers::tcprules::Rule;
use crate::config::{DaemonConfig, read_users};
use crate::control::server::Writers;
use crate::counters::Counters;
use crate::error::{Error, Result};
use crate::lease::now_ms;
use crate::listen::{ListenAddr, Listener, SocketFiles};
use crate::privs::RunAs;
use crate::shutdown::{Shutdown, Trigger};
use crate::sources::FollowerHandle;
use crate::sources::journal::JournalSource;
use crate::store::{
    Backend, LOCAL_STORE, Leases, RedisBackend, RedisLink, STORE_META, drop_queue, open_store,
    redis_sync, save_rules,
};
use crate::usage::recorder::RecorderTask;

/// How long shutdown waits for requests in flight.
const GRACE: Duration = Duration::from_secs(3);

/// Run until `shutdown` resolves. `reload` ticks on SIGHUP.
pub async fn run(
    cfg: DaemonConfig,
    shutdown: impl Future<Output = ()>,
    reload: tokio::sync::mpsc::Receiver<()>,
) -> Result<()> {
    let started = now_ms();
    let open_files = raise_open_files_limit();
    warn_about_exposure(&cfg);
    let cdb_base = match cfg.tcprules.as_ref().and_then(|c| c.base.as_ref()) {
        Some(p) => crate::answers::tcprules_writer::read_base(p)?,
        None => Vec::new(),
    };
    let run_as = cfg
        .run_as
        .as_ref()
        .filter(|_| nix::unistd::Uid::effective().is_root());
    let (leases, redis, recorder) = open_leases(&cfg, run_as).await?;
    // From here on every way out, error or shutdown, removes the socket files we made.
    let (sockets, files) = bind_sockets(&cfg, run_as).await?;
    let mut running = spawn_tasks(&cfg, &leases, sockets, redis, cdb_base)?;
    drop_root(&cfg, run_as)?;
    running.journal = start_journal(&cfg, &leases, &running, started)?;
    tracing::info!(
        db = %cfg.paths.db.display(),
        socket = %cfg.paths.socket.display(),
        store = %cfg.store.as_ref().map_or_else(|| "local".to_string(), |s| s.describe()),
        leases = leases.len(),
        expire = %humantime::format_duration(cfg.rules.window),
        open_files_limit = open_files,
        "relaylease daemon ready"
    );
    let running = wait(&cfg, &leases, running, shutdown, reload).await;
    running.stop().await;
    drop(files);
    recorder.stop(GRACE).await;
    // Every acknowledged change was made durable before its reply, so a database that
    // cannot be written now loses nothing anyone was told was kept: the exit status stays 0.
    if let Err(e) = leases.sync() {
        tracing::error!(error = %e,
            "cannot flush the database at stop: every acknowledged lease is already on disk; logins read from the logs since the last flush are read again at the next start");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Every held connection is a file: take all the hard limit allows (systemd's default soft
/// limit is 1024, below what the policy service alone may hold). The figure is said in the
/// "ready" line (a start that fails says one line, its error).
fn raise_open_files_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!(soft, hard, error = %e, "cannot raise the open files limit");
                soft
            }
        }
    } else {
        soft
    }
}

/// Say at start which ways in the settings leave open beyond root and the mail servers.
fn warn_about_exposure(cfg: &DaemonConfig) {
    if cfg.socket_mode & 0o002 != 0 && cfg.writer_gid.is_none() {
        tracing::warn!(socket = %cfg.paths.socket.display(), mode = format!("{:04o}", cfg.socket_mode),
            "--socket-mode lets every local user connect to the control socket: each can ask about any address (only root and the daemon's user may change leases; --writer-group names more)");
    }
    for (flag, addrs) in [("--policy", &cfg.policy), ("--socketmap", &cfg.socketmap)] {
        for a in addrs {
            if let ListenAddr::Inet(sa) = a
                && !sa.ip().is_loopback()
            {
                tracing::warn!(addr = %sa, "{flag} listens beyond this host: whoever reaches it learns which addresses may relay, which is information about customers");
            }
        }
    }
    if cfg.journal.as_ref().is_some_and(|j| j.trust.any_origin) {
        tracing::warn!(
            "--journal-any-origin: journal entries are believed whoever wrote them, so any local user could open the relay"
        );
    }
    if cfg.watch_insecure && !cfg.watches.is_empty() {
        tracing::warn!(
            "--watch-insecure: log files that ordinary users can write are followed, so any of them could open the relay"
        );
    }
}

/// Open the lease database (handed to `--user` first), in it the leases themselves or, with
/// `--store redis://`, the link to Redis and the local outage queue; and start the recorder
/// of lease uses, which writes the usage table beside them.
async fn open_leases(
    cfg: &DaemonConfig,
    run_as: Option<&RunAs>,
) -> Result<(Arc<Leases>, Option<RedisLink>, RecorderTask)> {
    if let Some(to) = run_as {
        std::fs::create_dir_all(&cfg.paths.db)
            .map_err(|e| Error::io("create", &cfg.paths.db, e))?;
        crate::privs::hand_over_tree(&cfg.paths.db, to)?;
    }
    let sled = open_store(&cfg.paths.db)?;
    save_rules(&sled, &cfg.rules)?;
    let usage_store = crate::usage::command::store_for(&sled, cfg.store.as_ref())?;
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
    let recorder =
        crate::usage::recorder::start(&leases, usage_store, cfg.usage.clone(), cfg.log_format)?;
    Ok((leases, redis, recorder))
}

/// Every listening socket, bound and not yet served.
struct Sockets {
    control: Listener,
    policy: Vec<Listener>,
    socketmap: Vec<Listener>,
    dovecot_policy: Option<Listener>,
}

/// Bind the control socket, the policy and socketmap listeners and Dovecot's auth-policy
/// port. The files are handed to `--user`, who must be able to remove them at shutdown; the
/// returned [`SocketFiles`] alone removes them.
async fn bind_sockets(
    cfg: &DaemonConfig,
    run_as: Option<&RunAs>,
) -> Result<(Sockets, SocketFiles)> {
    let control_addr = ListenAddr::Unix(cfg.paths.socket.clone());
    let unix_files = std::iter::once(&control_addr)
        .chain(&cfg.policy)
        .chain(&cfg.socketmap)
        .filter_map(|a| match a {
            ListenAddr::Unix(p) => Some(p.as_path()),
            ListenAddr::Inet(_) => None,
        });
    // Socket directories we create are handed to the daemon's user, so it can remove its
    // sockets at shutdown.
    let new_dirs: Vec<PathBuf> = unix_files
        .filter_map(Path::parent)
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    let mut files = SocketFiles::default();
    let control = Listener::bind(&control_addr, cfg.socket_mode, cfg.socket_gid).await?;
    files.track(&control_addr);
    let mut answers = [(&cfg.policy, Vec::new()), (&cfg.socketmap, Vec::new())];
    for (addrs, bound) in answers.iter_mut() {
        for addr in addrs.iter() {
            bound.push(Listener::bind(addr, cfg.policy_mode, cfg.policy_gid).await?);
            files.track(addr);
        }
    }
    let [(_, policy), (_, socketmap)] = answers;
    let dovecot_policy = match &cfg.dovecot_policy {
        Some(c) => Some(Listener::bind(&ListenAddr::Inet(c.addr), 0, None).await?),
        None => None,
    };
    if let Some(to) = run_as {
        for d in &new_dirs {
            crate::privs::hand_over(d, to)?;
        }
        for p in files.paths() {
            nix::unistd::chown(p.as_path(), Some(nix::unistd::Uid::from_raw(to.uid)), None)
                .map_err(|e| Error::io("change owner of", p, std::io::Error::from(e)))?;
        }
    }
    let sockets = Sockets {
        control,
        policy,
        socketmap,
        dovecot_policy,
    };
    Ok((sockets, files))
}

/// What runs until shutdown, and how to reach it.
struct Running {
    trigger: Trigger,
    tasks: tokio::task::JoinSet<()>,
    followers: Option<FollowerHandle>,
    journal: Option<JournalSource>,
    cdb_reload: Option<tokio::sync::mpsc::Sender<()>>,
    counters: Arc<Counters>,
}

impl Running {
    /// Tell every task to stop, wait for the followers (what they read is then recorded) and
    /// give the others [`GRACE`] and a little more.
    async fn stop(mut self) {
        tracing::info!("shutting down");
        self.trigger.pull();
        if let Some(f) = self.followers {
            f.stop().await;
        }
        if let Some(j) = self.journal {
            j.stopped().await;
        }
        let _ = tokio::time::timeout(GRACE + Duration::from_secs(1), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
    }
}

/// Start the expiry task, the Redis link, every server, the cdb writer and the followers.
fn spawn_tasks(
    cfg: &DaemonConfig,
    leases: &Arc<Leases>,
    sockets: Sockets,
    redis: Option<RedisLink>,
    cdb_base: Vec<Rule>,
) -> Result<Running> {
    let (trigger, shutdown) = crate::shutdown::channel();
    let counters = Arc::new(Counters::default());
    let stop = || shutdown.clone();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(crate::expiry::run(leases.clone(), stop()));
    tasks.spawn(crate::memory::run(stop()));
    if let Some(link) = redis {
        tasks.spawn(redis_sync::run(link, leases.clone(), stop()));
    }
    let writers = Writers {
        own_uid: nix::unistd::geteuid().as_raw(),
        writer_gid: cfg.writer_gid,
    };
    use crate::control::server as control;
    tasks.spawn(control::serve(
        sockets.control,
        leases.clone(),
        counters.clone(),
        writers,
        stop(),
        GRACE,
    ));
    // Postfix's and the socketmap clients' answers, on a thread of their own
    // (crate::answers::thread says why).
    let n_policy = sockets.policy.len();
    let listeners: Vec<Listener> = sockets
        .policy
        .into_iter()
        .chain(sockets.socketmap)
        .collect();
    if !listeners.is_empty() {
        let (leases, counters, stop) = (leases.clone(), counters.clone(), stop());
        let map = cfg.socketmap_map.clone();
        let answers = crate::answers::thread::start("answers", listeners, move |mut ls| {
            let socketmap = ls.split_off(n_policy);
            let mut servers = tokio::task::JoinSet::new();
            for l in ls {
                let s = crate::answers::postfix_policy::serve;
                servers.spawn(s(l, leases.clone(), counters.clone(), stop.clone(), GRACE));
            }
            for l in socketmap {
                let s = crate::answers::socketmap::serve;
                servers.spawn(s(l, leases.clone(), map.clone(), stop.clone(), GRACE));
            }
            async move { while servers.join_next().await.is_some() {} }
        })?;
        tasks.spawn(answers);
    }
    if let (Some(l), Some(c)) = (sockets.dovecot_policy, &cfg.dovecot_policy) {
        spawn_dovecot_policy(&mut tasks, l, c, leases, stop());
    }
    let cdb_reload = cfg.tcprules.clone().map(|c| {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let writer = crate::answers::tcprules_writer::run(c, cdb_base, leases.clone(), rx, stop());
        tasks.spawn(writer);
        tx
    });
    let followers = match cfg.watches.is_empty() {
        true => None,
        false => Some(crate::sources::start_followers(
            &cfg.watches,
            &cfg.login_patterns,
            leases.clone(),
            counters.clone(),
            cfg.max_session_hold,
            cfg.watch_insecure,
        )?),
    };
    Ok(Running {
        trigger,
        tasks,
        followers,
        journal: None,
        cdb_reload,
        counters,
    })
}

/// Follow the journal, after root is dropped: sd-journal opens every later file (after a
/// rotation) as the daemon's user, so the first one is opened as that user too and a missing
/// permission shows at start.
fn start_journal(
    cfg: &DaemonConfig,
    leases: &Arc<Leases>,
    running: &Running,
    started: crate::lease::Millis,
) -> Result<Option<JournalSource>> {
    let Some(spec) = &cfg.journal else {
        return Ok(None);
    };
    crate::sources::journal::start(
        spec.clone(),
        &cfg.login_patterns,
        leases.clone(),
        running.counters.clone(),
        cfg.max_session_hold,
        started,
        running.trigger.subscribe(),
    )
    .map(Some)
}

fn spawn_dovecot_policy(
    tasks: &mut tokio::task::JoinSet<()>,
    listener: Listener,
    c: &crate::sources::dovecot_auth_policy::PolicyConfig,
    leases: &Arc<Leases>,
    shutdown: Shutdown,
) {
    tracing::info!(addr = %c.addr, api_header = c.secret.as_ref().map_or("-", |h| h.name.as_str()),
        "dovecot-policy: taking Dovecot's auth-policy reports");
    if c.secret.is_none() {
        tracing::warn!(addr = %c.addr,
            "dovecot-policy: --dovecot-policy-no-secret: any local process can report a login and open the relay");
    }
    let secret = c.secret.clone();
    let server = crate::sources::dovecot_auth_policy::serve(
        listener,
        leases.clone(),
        secret,
        shutdown,
        GRACE,
    );
    tasks.spawn(server);
}

/// Every socket is bound and every log open: root is no longer needed. Files sled made while
/// opening are handed over first.
fn drop_root(cfg: &DaemonConfig, run_as: Option<&RunAs>) -> Result<()> {
    match run_as {
        Some(to) => {
            crate::privs::hand_over_tree(&cfg.paths.db, to)?;
            crate::privs::drop_to(to)
        }
        None => {
            if nix::unistd::Uid::effective().is_root() {
                tracing::warn!(
                    "running as root: give --user (e.g. --user relaylease) so the daemon drops privileges once its sockets are bound"
                );
            }
            Ok(())
        }
    }
}

/// Serve until `shutdown`; each SIGHUP re-reads the users file, reopens the logs and
/// rebuilds the cdb from its base file.
async fn wait(
    cfg: &DaemonConfig,
    leases: &Leases,
    running: Running,
    shutdown: impl Future<Output = ()>,
    mut reload: tokio::sync::mpsc::Receiver<()>,
) -> Running {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return running,
            Some(()) = reload.recv() => {
                reload_users(cfg, leases);
                if let Some(f) = &running.followers {
                    f.reopen();
                }
                if let Some(tx) = &running.cdb_reload {
                    let _ = tx.try_send(());
                }
            }
        }
    }
}

/// SIGHUP: re-read the users file. One that cannot be read keeps the old list.
fn reload_users(cfg: &DaemonConfig, leases: &Leases) {
    let Some(path) = &cfg.users_file else {
        return;
    };
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
