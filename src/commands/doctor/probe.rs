//! Trying something as another user: a forked child drops to the user (its groups included,
//! as the daemon's own drop does), tries, and reports the errno in its exit status.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Uid, User, fork, getgrouplist, setgid, setgroups, setuid};

use crate::error::{Error, Result};

/// What to try.
pub enum Try<'a> {
    /// Open the file for reading.
    Read(&'a Path),
    /// Connect to the unix socket.
    Connect(&'a Path),
}

/// Try `what` as `user`; `Ok(Err(errno))` when the user may not.
pub fn as_user(user: &str, what: Try<'_>) -> Result<Result<(), Errno>> {
    let u = User::from_name(user)
        .map_err(|e| Error::invalid(format!("cannot look up user '{user}': {e}")))?
        .ok_or_else(|| Error::invalid(format!("unknown user '{user}'")))?;
    let me = Uid::effective();
    if !me.is_root() && me != u.uid {
        return Err(Error::invalid(format!(
            "trying files as user {user} needs root: run doctor as root"
        )));
    }
    let name = CString::new(user).map_err(|_| Error::invalid("a user name with a NUL byte"))?;
    let groups = getgrouplist(&name, u.gid)
        .map_err(|e| Error::invalid(format!("cannot list the groups of '{user}': {e}")))?;
    // Everything the child needs is prepared here: after fork it only makes system calls.
    let prepared = match what {
        Try::Read(p) => Prepared::Read(
            CString::new(p.as_os_str().as_bytes())
                .map_err(|_| Error::invalid(format!("{}: a path with a NUL byte", p.display())))?,
        ),
        Try::Connect(p) => Prepared::Connect(
            UnixAddr::new(p).map_err(|e| Error::invalid(format!("{}: {e}", p.display())))?,
        ),
    };
    // SAFETY: the child makes only async-signal-safe system calls and leaves with _exit.
    match unsafe { fork() }.map_err(|e| Error::net("fork a probe", e.into()))? {
        ForkResult::Child => {
            let code = child(me.is_root(), &groups, u.gid, u.uid, &prepared);
            // SAFETY: _exit is the only safe way out of a forked child.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => Ok(Ok(())),
            Ok(WaitStatus::Exited(_, 255)) => Err(Error::invalid(format!(
                "cannot become user {user} to try a file"
            ))),
            Ok(WaitStatus::Exited(_, n)) => Ok(Err(Errno::from_raw(n))),
            other => Err(Error::invalid(format!(
                "the probe as {user} ended: {other:?}"
            ))),
        },
    }
}

enum Prepared {
    Read(CString),
    Connect(UnixAddr),
}

fn child(root: bool, groups: &[Gid], gid: Gid, uid: Uid, what: &Prepared) -> i32 {
    if root && (setgroups(groups).is_err() || setgid(gid).is_err() || setuid(uid).is_err()) {
        return 255;
    }
    let r = match what {
        Prepared::Read(path) => {
            // SAFETY: a valid C string; the descriptor is closed by _exit.
            let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK) };
            if fd < 0 { Err(Errno::last()) } else { Ok(()) }
        }
        Prepared::Connect(addr) => socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .and_then(|s| {
            use std::os::fd::AsRawFd;
            connect(s.as_raw_fd(), addr)
        }),
    };
    match r {
        Ok(()) => 0,
        Err(e) => (e as i32).clamp(1, 254),
    }
}
