//! Listening Unix sockets: replace a leftover file only when nothing answers, then set
//! the mode and group before anyone else can connect.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, umask};
use nix::unistd::{Gid, chown};

use crate::error::{Error, Result};

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

/// A bound listener of either kind.
pub enum Listener {
    Unix(tokio::net::UnixListener, PathBuf),
    Tcp(tokio::net::TcpListener),
}

/// A connection from either kind of listener.
pub trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Conn for T {}

impl Listener {
    pub async fn bind(addr: &ListenAddr, mode: u32, gid: Option<u32>) -> Result<Listener> {
        match addr {
            ListenAddr::Unix(p) => Ok(Listener::Unix(bind_unix(p, mode, gid)?, p.clone())),
            ListenAddr::Inet(a) => {
                if !a.ip().is_loopback() {
                    tracing::warn!(addr = %a, "listening beyond loopback: anyone who can reach it learns who may relay");
                }
                tokio::net::TcpListener::bind(a)
                    .await
                    .map(Listener::Tcp)
                    .map_err(|e| Error::net(format!("cannot listen on {a}"), e))
            }
        }
    }

    pub async fn accept(&self) -> std::io::Result<Box<dyn Conn>> {
        match self {
            Listener::Unix(l, _) => {
                let (s, _) = l.accept().await?;
                Ok(Box::new(s))
            }
            Listener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok(Box::new(s))
            }
        }
    }

    /// Remove the socket file at shutdown (nothing to do for TCP).
    pub fn cleanup(&self) {
        if let Listener::Unix(_, p) = self {
            remove_socket(p);
        }
    }
}

/// Accept connections until `shutdown`, each served by `handle` on a task of its own, at
/// most `max` at once (one more is closed at once, with a warning that ends in `when_full`);
/// then stop accepting, tell the connections through their watch, and give those with a
/// request in flight `grace`.
pub async fn serve_each<F, Fut>(
    listener: Listener,
    service: &'static str,
    max: usize,
    when_full: &'static str,
    shutdown: impl std::future::Future<Output = ()>,
    grace: std::time::Duration,
    handle: F,
) where
    F: Fn(Box<dyn Conn>, tokio::sync::watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use std::sync::Arc;
    use tokio::sync::{Semaphore, watch};
    tokio::pin!(shutdown);
    let slots = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut failures = AcceptFailures::default();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok(conn) => {
                    failures.accepted(service);
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(limit = max, "{service}: too many connections, closing one{when_full}");
                        continue;
                    };
                    let served = handle(conn, stop_rx.clone());
                    tokio::spawn(async move {
                        served.await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    failures.failed(service, &e);
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = &mut shutdown => break,
        }
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(grace, slots.acquire_many(max as u32)).await;
    listener.cleanup();
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
