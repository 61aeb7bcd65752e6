//! Listening Unix sockets: replace a leftover file only when nothing answers, then set
//! the mode and group before anyone else can connect.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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

/// Remove a socket file we created, at shutdown.
pub fn remove_socket(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove socket file");
    }
}
