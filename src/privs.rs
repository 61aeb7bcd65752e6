//! Dropping root: the daemon binds its sockets and opens its files as root, then becomes
//! `--user` (with its groups) for the rest of its life.

use std::ffi::CString;
use std::path::Path;

use nix::unistd::{Gid, Group, Uid, User, chown, getgrouplist, setgid, setgroups, setuid};

use crate::error::{Error, Result};

/// Who the daemon becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Resolve `--user USER [--group GROUP]`: the group defaults to the user's primary group.
pub fn resolve(user: &str, group: Option<&str>) -> Result<RunAs> {
    let u = match user.parse::<u32>() {
        Ok(n) => User::from_uid(Uid::from_raw(n)),
        Err(_) => User::from_name(user),
    }
    .map_err(|e| Error::invalid(format!("cannot look up user '{user}': {e}")))?
    .ok_or_else(|| Error::invalid(format!("unknown user '{user}'")))?;
    let gid = match group {
        Some(g) => group_id(g)?,
        None => u.gid.as_raw(),
    };
    Ok(RunAs {
        name: u.name,
        uid: u.uid.as_raw(),
        gid,
    })
}

/// A group by name or number.
pub fn group_id(name: &str) -> Result<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(n);
    }
    match Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(Error::invalid(format!("unknown group '{name}'"))),
        Err(e) => Err(Error::invalid(format!(
            "cannot look up group '{name}': {e}"
        ))),
    }
}

/// Hand the database directory and everything in it to the daemon's user.
pub fn hand_over_tree(dir: &Path, to: &RunAs) -> Result<()> {
    hand_over(dir, to)?;
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read", dir, e))?;
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() && !p.is_symlink() {
            hand_over_tree(&p, to)?;
        } else {
            hand_over(&p, to)?;
        }
    }
    Ok(())
}

/// Give a directory the daemon creates (database, socket directory) to the user it will
/// become, so it can still write there after the switch.
pub fn hand_over(path: &Path, to: &RunAs) -> Result<()> {
    chown(
        path,
        Some(Uid::from_raw(to.uid)),
        Some(Gid::from_raw(to.gid)),
    )
    .map_err(|e| Error::io("change owner of", path, std::io::Error::from(e)))
}

/// Become `to`: supplementary groups from the group database (so membership of e.g. `adm`
/// keeps rotated logs readable), then the group, then the user. Checked afterwards.
pub fn drop_to(to: &RunAs) -> Result<()> {
    let fail = |what: &str, e: nix::Error| {
        Error::invalid(format!("cannot switch to user {} ({what}): {e}", to.name))
    };
    let name = CString::new(to.name.clone())
        .map_err(|_| Error::invalid(format!("invalid user name '{}'", to.name)))?;
    let groups = getgrouplist(&name, Gid::from_raw(to.gid)).map_err(|e| fail("groups", e))?;
    setgroups(&groups).map_err(|e| fail("setgroups", e))?;
    setgid(Gid::from_raw(to.gid)).map_err(|e| fail("setgid", e))?;
    setuid(Uid::from_raw(to.uid)).map_err(|e| fail("setuid", e))?;
    if to.uid != 0 && (setuid(Uid::from_raw(0)).is_ok() || Uid::effective().is_root()) {
        return Err(Error::invalid(format!(
            "switched to user {} but root could be regained: refusing to run",
            to.name
        )));
    }
    let group = Group::from_gid(Gid::from_raw(to.gid))
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_else(|| to.gid.to_string());
    tracing::info!(user = %to.name, group = %group, "dropped root privileges");
    Ok(())
}
