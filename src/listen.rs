//! Listening Unix sockets: replace a leftover file only when nothing answers, then set
//! the mode and group before anyone else can connect.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::sys::stat::{Mode, umask};
use nix::unistd::{Gid, chown};
use tokio::net::unix::UCred;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};
use crate::shutdown::Shutdown;

/// Bind `path` for a tokio listener. The socket file is created with no access for others
/// (umask) and only then given `mode` and `gid`, so there is no window with wrong permissions.
pub fn bind_unix(path: &Path, mode: u32, gid: Option<u32>) -> Result<tokio::net::UnixListener> {
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    }
    if std::fs::symlink_metadata(path).is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(Error::invalid(format!(
                "{}: another process is already answering on this socket",
                path.display()
            )));
        }
        std::fs::remove_file(path).map_err(|e| Error::io("remove stale socket", path, e))?;
    }
    let old = umask(Mode::from_bits_truncate(0o177));
    let bound = std::os::unix::net::UnixListener::bind(path);
    umask(old);
    let listener = bound.map_err(|e| Error::io("bind", path, e))?;
    if let Some(g) = gid {
        chown(path, None, Some(Gid::from_raw(g)))
            .map_err(|e| Error::io("set group of", path, std::io::Error::from(e)))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("set mode of", path, e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("use", path, e))?;
    tokio::net::UnixListener::from_std(listener).map_err(|e| Error::io("listen on", path, e))
}

/// Accepting fails mostly for want of file descriptors, and then again at every retry until
/// a connection ends: one warning when it starts and one line when it is over, not a line
/// per retry.
#[derive(Default)]
pub struct AcceptFailures {
    count: u64,
}

impl AcceptFailures {
    pub fn failed(&mut self, service: &str, e: &std::io::Error) {
        if self.count == 0 {
            let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                .map(|(soft, _)| soft.to_string())
                .unwrap_or_else(|_| "?".into());
            tracing::warn!(error = %crate::error::describe_io(e), open_files_limit = %limit,
                "{service}: cannot accept connections; new ones wait until a connection ends");
        }
        self.count += 1;
    }

    pub fn accepted(&mut self, service: &str) {
        if self.count > 0 {
            tracing::info!(
                failed_tries = self.count,
                "{service}: accepting connections again"
            );
            self.count = 0;
        }
    }
}

/// Remove a socket file we created, at shutdown.
pub fn remove_socket(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove socket file");
    }
}

/// Where a service listens, spelled as Postfix spells it: `unix:/path` or `inet:host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    Unix(PathBuf),
    Inet(SocketAddr),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            ListenAddr::Inet(a) => write!(f, "inet:{a}"),
        }
    }
}

/// Parse `unix:/path`, `inet:127.0.0.1:10031`, `inet:[::1]:10031` or `inet:localhost:10031`.
pub fn parse_listen_addr(flag: &str, s: &str) -> Result<ListenAddr> {
    let bad = |why: &str| Error::invalid(format!("{flag} '{s}': {why}"));
    if let Some(path) = s.strip_prefix("unix:") {
        if !path.starts_with('/') {
            return Err(bad("a unix socket needs an absolute path"));
        }
        return Ok(ListenAddr::Unix(PathBuf::from(path)));
    }
    let Some(rest) = s.strip_prefix("inet:") else {
        return Err(bad("expected unix:/path or inet:host:port"));
    };
    let rest = rest.replace("localhost:", "127.0.0.1:");
    rest.parse::<SocketAddr>()
        .map(ListenAddr::Inet)
        .map_err(|_| bad("expected inet:host:port with a numeric address"))
}

/// A bound listener of either kind. It never removes its socket file: [`SocketFiles`] does.
pub enum Listener {
    Unix(tokio::net::UnixListener),
    Tcp(tokio::net::TcpListener),
}

/// A connection from either kind of listener.
pub trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Conn for T {}

/// One accepted connection, with its peer's credentials when it came over a Unix socket.
pub struct Accepted {
    pub conn: Box<dyn Conn>,
    pub peer: Option<tokio::net::unix::UCred>,
}

impl Listener {
    /// Bind `addr`; a Unix socket file is given `mode` and `gid` before anyone can connect.
    pub async fn bind(addr: &ListenAddr, mode: u32, gid: Option<u32>) -> Result<Listener> {
        match addr {
            ListenAddr::Unix(p) => Ok(Listener::Unix(bind_unix(p, mode, gid)?)),
            ListenAddr::Inet(a) => tokio::net::TcpListener::bind(a)
                .await
                .map(Listener::Tcp)
                .map_err(|e| Error::net(format!("cannot listen on {a}"), e)),
        }
    }

    /// The listener without its runtime: a tokio listener is served by the reactor of the
    /// runtime it was made on, so one moving to another runtime's thread goes as this and
    /// is made a tokio listener again there ([`StdListener::into_tokio`]).
    pub fn into_std(self) -> std::io::Result<StdListener> {
        match self {
            Listener::Unix(l) => l.into_std().map(StdListener::Unix),
            Listener::Tcp(l) => l.into_std().map(StdListener::Tcp),
        }
    }

    pub async fn accept(&self) -> std::io::Result<Accepted> {
        match self {
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                let peer = s.peer_cred().ok();
                Ok(Accepted {
                    conn: Box::new(s),
                    peer,
                })
            }
            Listener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok(Accepted {
                    conn: Box::new(s),
                    peer: None,
                })
            }
        }
    }
}

/// A bound listener between runtimes (non-blocking, as [`Listener::into_std`] leaves it).
pub enum StdListener {
    Unix(std::os::unix::net::UnixListener),
    Tcp(std::net::TcpListener),
}

impl StdListener {
    /// A [`Listener`] on the runtime this is called from.
    pub fn into_tokio(self) -> std::io::Result<Listener> {
        match self {
            StdListener::Unix(l) => tokio::net::UnixListener::from_std(l).map(Listener::Unix),
            StdListener::Tcp(l) => tokio::net::TcpListener::from_std(l).map(Listener::Tcp),
        }
    }
}

/// The socket files this daemon bound: the one owner that removes them, when it is dropped
/// (at shutdown, or when a start fails half-way).
#[derive(Default)]
pub struct SocketFiles(Vec<PathBuf>);

impl SocketFiles {
    /// Remember `addr`'s file, if it has one, for removal.
    pub fn track(&mut self, addr: &ListenAddr) {
        if let ListenAddr::Unix(p) = addr {
            self.0.push(p.clone());
        }
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.0
    }
}

impl Drop for SocketFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            remove_socket(p);
        }
    }
}

/// What a service says when it has to turn a connection away.
pub struct Service {
    pub name: &'static str,
    /// Connections served at once, besides [`Sharing::reserved`]; one more is closed at once.
    pub max_conns: usize,
    /// The end of the warning about it: what the client does then.
    pub when_full: &'static str,
    /// How the slots are shared among the local users who connect.
    pub sharing: Sharing,
}

/// Who judges whether a peer is one the service must keep answering.
pub type Privileged = Arc<dyn Fn(&UCred) -> bool + Send + Sync>;

/// How a Unix socket's slots are shared, by the peer's credentials (SO_PEERCRED, which a
/// client cannot forge): a flood of idle connections from one local user must not crowd out
/// the others, nor the peers the service exists for (the writers of the control socket,
/// root and the daemon's own user everywhere). A TCP peer has no credentials: only the
/// total applies to it.
pub struct Sharing {
    /// The most connections one uid may hold at once, unless it is privileged.
    pub per_uid: usize,
    /// Slots beyond `max_conns` that only privileged peers may take.
    pub reserved: usize,
    /// Privileged peers are exempt from `per_uid` and alone take the reserved slots. Asked
    /// only when one of those matters, once per uid while it holds connections (it may look
    /// up the groups).
    pub privileged: Privileged,
}

impl Sharing {
    /// Half the slots at most for any one uid, and `reserved` more for root and the
    /// daemon's own user.
    pub fn by_uid(max_conns: usize, reserved: usize) -> Sharing {
        let own = nix::unistd::Uid::effective().as_raw();
        Sharing {
            per_uid: (max_conns / 2).max(1),
            reserved,
            privileged: Arc::new(move |c: &UCred| c.uid() == 0 || c.uid() == own),
        }
    }
}

/// Why a connection was turned away.
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    /// Every slot it may take is in use.
    Full,
    /// Its uid holds its share already.
    Share(u32),
}

/// Connections held per uid, with whether the uid is privileged (asked once while it holds
/// any).
type Holders = Arc<Mutex<HashMap<u32, (usize, Option<bool>)>>>;

/// The slots of one service: the general ones, the reserved ones, and who holds them.
struct Admission {
    general: Arc<Semaphore>,
    reserved: Arc<Semaphore>,
    max_conns: usize,
    reserve: usize,
    per_uid: usize,
    holders: Holders,
}

/// A slot taken: given back (and its uid's count lowered) when the connection ends.
struct Slot {
    _permit: OwnedSemaphorePermit,
    uid: Option<u32>,
    holders: Holders,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(uid) = self.uid else {
            return;
        };
        let mut h = match self.holders.lock() {
            Ok(h) => h,
            Err(p) => p.into_inner(),
        };
        if let Some(e) = h.get_mut(&uid) {
            e.0 = e.0.saturating_sub(1);
            if e.0 == 0 {
                h.remove(&uid);
            }
        }
    }
}

impl Admission {
    fn new(max_conns: usize, sharing: &Sharing) -> Admission {
        Admission {
            general: Arc::new(Semaphore::new(max_conns)),
            reserved: Arc::new(Semaphore::new(sharing.reserved)),
            max_conns,
            reserve: sharing.reserved,
            per_uid: sharing.per_uid,
            holders: Holders::default(),
        }
    }

    /// A slot for a connection from the peer `uid` (None: a TCP peer), or why not.
    /// `privileged` is asked at most once while the uid holds connections.
    fn admit(
        &self,
        uid: Option<u32>,
        privileged: impl FnOnce() -> bool,
    ) -> std::result::Result<Slot, Refused> {
        let Some(uid) = uid else {
            return match self.general.clone().try_acquire_owned() {
                Ok(p) => Ok(Slot {
                    _permit: p,
                    uid: None,
                    holders: self.holders.clone(),
                }),
                Err(_) => Err(Refused::Full),
            };
        };
        let mut h = match self.holders.lock() {
            Ok(h) => h,
            Err(p) => p.into_inner(),
        };
        let entry = h.entry(uid).or_insert((0, None));
        let mut ask = Some(privileged);
        let mut privileged = |known: &mut Option<bool>| {
            *known.get_or_insert_with(|| ask.take().is_some_and(|f| f()))
        };
        let permit = if entry.0 >= self.per_uid && !privileged(&mut entry.1) {
            Err(Refused::Share(uid))
        } else if let Ok(p) = self.general.clone().try_acquire_owned() {
            Ok(p)
        } else if privileged(&mut entry.1) {
            self.reserved
                .clone()
                .try_acquire_owned()
                .map_err(|_| Refused::Full)
        } else {
            Err(Refused::Full)
        };
        match permit {
            Ok(p) => {
                entry.0 += 1;
                Ok(Slot {
                    _permit: p,
                    uid: Some(uid),
                    holders: self.holders.clone(),
                })
            }
            Err(why) => {
                if entry.0 == 0 {
                    h.remove(&uid);
                }
                Err(why)
            }
        }
    }

    /// Wait (at most `grace`) until every connection has given its slot back.
    async fn drained(&self, grace: std::time::Duration) {
        let all = async {
            let _g = self.general.acquire_many(self.max_conns as u32).await;
            let _r = self.reserved.acquire_many(self.reserve as u32).await;
        };
        let _ = tokio::time::timeout(grace, all).await;
    }
}

/// Turned-away connections, told once per run of them (a flood would otherwise fill the
/// log with a line per connection): a warning at the first, the count when one is let in.
#[derive(Default)]
struct Refusals {
    count: u64,
}

impl Refusals {
    fn refused(&mut self, service: &Service, why: &Refused) {
        if self.count == 0 {
            let name = service.name;
            match why {
                Refused::Full => tracing::warn!(
                    limit = service.max_conns,
                    reserved = service.sharing.reserved,
                    "{name}: too many connections, closing one{}; more are closed without a line each until one is let in",
                    service.when_full
                ),
                Refused::Share(uid) => tracing::warn!(
                    uid,
                    share = service.sharing.per_uid,
                    "{name}: one user holds its share of connections, closing one of its new ones{}; more are closed without a line each until one is let in",
                    service.when_full
                ),
            }
        }
        self.count += 1;
    }

    fn admitted(&mut self, service: &Service) {
        if self.count > 0 {
            tracing::info!(
                closed = self.count,
                "{}: let a connection in again after closing some",
                service.name
            );
            self.count = 0;
        }
    }
}

/// Accept connections until `shutdown`, each served by `handle` on a task of its own (with
/// a shutdown of its own), within the slots [`Service`] allows; then stop accepting and give
/// the connections with a request in flight `grace`.
pub async fn serve_each<F, Fut>(
    listener: Listener,
    service: Service,
    mut shutdown: Shutdown,
    grace: std::time::Duration,
    handle: F,
) where
    F: Fn(Accepted, Shutdown) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let name = service.name;
    let slots = Admission::new(service.max_conns, &service.sharing);
    let mut failures = AcceptFailures::default();
    let mut refusals = Refusals::default();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => {
                    failures.accepted(name);
                    let peer = accepted.peer.as_ref();
                    let privileged = || peer.is_some_and(|c| (service.sharing.privileged)(c));
                    let slot = match slots.admit(peer.map(|c| c.uid()), privileged) {
                        Ok(s) => s,
                        Err(why) => {
                            refusals.refused(&service, &why);
                            continue;
                        }
                    };
                    refusals.admitted(&service);
                    let served = handle(accepted, shutdown.clone());
                    tokio::spawn(async move {
                        served.await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    failures.failed(name, &e);
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.recv() => break,
        }
    }
    slots.drained(grace).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_spellings() {
        assert_eq!(
            parse_listen_addr("--policy", "unix:/run/relaylease/policy.sock").unwrap(),
            ListenAddr::Unix("/run/relaylease/policy.sock".into())
        );
        assert_eq!(
            parse_listen_addr("--policy", "inet:127.0.0.1:10031").unwrap(),
            ListenAddr::Inet("127.0.0.1:10031".parse().unwrap())
        );
        assert_eq!(
            parse_listen_addr("--policy", "inet:[::1]:10031").unwrap(),
            ListenAddr::Inet("[::1]:10031".parse().unwrap())
        );
        assert_eq!(
            parse_listen_addr("--policy", "inet:localhost:10031").unwrap(),
            ListenAddr::Inet("127.0.0.1:10031".parse().unwrap())
        );
        for bad in ["/run/x.sock", "unix:relative", "inet:host", "tcp:1.2.3.4:5"] {
            let e = parse_listen_addr("--policy", bad).unwrap_err().to_string();
            assert!(e.contains(&format!("'{bad}'")), "{e}");
        }
    }

    /// One user's flood takes its share and no more; another user, and a privileged peer
    /// beyond the general slots, still get in; slots come back when connections end.
    #[test]
    fn one_users_flood_leaves_room_for_others_and_privileged_peers() {
        let a = Admission::new(
            4,
            &Sharing {
                per_uid: 2,
                reserved: 1,
                privileged: Arc::new(|_| false),
            },
        );
        let nobody = Some(65534);
        let held: Vec<Slot> = (0..2).map(|_| a.admit(nobody, || false).unwrap()).collect();
        assert_eq!(a.admit(nobody, || false).err(), Some(Refused::Share(65534)));
        let other: Vec<Slot> = (0..2)
            .map(|_| a.admit(Some(1000), || false).unwrap())
            .collect();
        // The general slots are all taken: a reader is refused, a writer takes the reserve.
        assert_eq!(a.admit(Some(1001), || false).err(), Some(Refused::Full));
        let mut asked = 0;
        let writer = a.admit(Some(8), || {
            asked += 1;
            true
        });
        assert!(writer.is_ok());
        assert_eq!(a.admit(Some(0), || true).err(), Some(Refused::Full));
        assert_eq!(asked, 1);
        // A TCP peer (no credentials) counts against the total only.
        drop(other);
        assert!(a.admit(None, || false).is_ok());
        drop(held);
        assert!(a.admit(nobody, || false).is_ok());
        assert!(
            a.holders.lock().unwrap().get(&1000).is_none(),
            "no entry kept for a uid that holds none"
        );
    }

    /// A privileged uid is not held to the share, and is asked once while it holds any.
    #[test]
    fn a_privileged_uid_may_take_more_than_a_share() {
        let a = Admission::new(
            4,
            &Sharing {
                per_uid: 1,
                reserved: 0,
                privileged: Arc::new(|_| true),
            },
        );
        let mut asked = 0;
        let held: Vec<Slot> = (0..4)
            .map(|_| {
                a.admit(Some(0), || {
                    asked += 1;
                    true
                })
                .unwrap()
            })
            .collect();
        assert_eq!(held.len(), 4);
        assert_eq!(asked, 1);
    }
}
