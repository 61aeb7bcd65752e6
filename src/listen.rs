//! Listening Unix sockets: replace a leftover file only when nothing answers, then set
//! the mode and group before anyone else can connect.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, umask};
use nix::unistd::{Gid, chown};

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
    /// Connections served at once; one more is closed at once, with a warning.
    pub max_conns: usize,
    /// The end of that warning: what the client does then.
    pub when_full: &'static str,
}

/// Accept connections until `shutdown`, each served by `handle` on a task of its own (with
/// a shutdown of its own), at most `service.max_conns` at once; then stop accepting and give
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
    use std::sync::Arc;
    use tokio::sync::Semaphore;
    let Service {
        name,
        max_conns: max,
        when_full,
    } = service;
    let slots = Arc::new(Semaphore::new(max));
    let mut failures = AcceptFailures::default();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => {
                    failures.accepted(name);
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(limit = max, "{name}: too many connections, closing one{when_full}");
                        continue;
                    };
                    let served = handle(accepted, shutdown.clone());
                    tokio::spawn(async move {
                        served.await;
                        drop(permit);
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
    let _ = tokio::time::timeout(grace, slots.acquire_many(max as u32)).await;
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
}
