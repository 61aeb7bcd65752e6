//! Whether a followed log file can be trusted to hold only what the logger wrote: a file or
//! directory that an ordinary local user can write lets that user append a perfect login
//! line without going through syslog at all.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The first uid of ordinary (human) users on Debian (`UID_MIN` in /etc/login.defs).
pub const FIRST_ORDINARY_UID: u32 = 1000;

/// Who owns a file and who may write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub mode: u32,
}

impl From<&std::fs::Metadata> for Owner {
    fn from(m: &std::fs::Metadata) -> Owner {
        Owner {
            uid: m.uid(),
            mode: m.mode(),
        }
    }
}

/// Why a log file (or, when it does not exist yet, its directory) is not trusted; `None`
/// when only root, system users and the daemon's own user (`own_uid`, who may change leases
/// through the control socket anyway) can write it. Group-writable is fine: Debian's
/// mail.log is `root:adm 0640` and Ubuntu's /var/log is `root:syslog 0775`.
pub fn risk(file: Option<Owner>, dir: Owner, own_uid: u32) -> Option<String> {
    file.and_then(|f| file_risk(f, own_uid))
        .or_else(|| dir_risk(dir, own_uid))
}

fn ordinary(uid: u32, own_uid: u32) -> bool {
    uid >= FIRST_ORDINARY_UID && uid != own_uid
}

/// The file's part of [`risk`]: checked again on the open file before every read, since
/// its mode can change while it is open (a `chmod`, a logrotate `create 0666` racing us).
pub fn file_risk(f: Owner, own_uid: u32) -> Option<String> {
    if f.mode & 0o002 != 0 {
        return Some(format!(
            "is writable by every user (mode {:04o})",
            f.mode & 0o7777
        ));
    }
    if ordinary(f.uid, own_uid) {
        return Some(format!("is owned by an ordinary user (uid {})", f.uid));
    }
    None
}

fn dir_risk(dir: Owner, own_uid: u32) -> Option<String> {
    if dir.mode & 0o002 != 0 {
        return Some(format!(
            "is in a directory every user can write (mode {:04o}), where anyone can create it before the logger does",
            dir.mode & 0o7777
        ));
    }
    if ordinary(dir.uid, own_uid) {
        return Some(format!(
            "is in a directory owned by an ordinary user (uid {}), who can replace it",
            dir.uid
        ));
    }
    None
}

/// The directory a log file lives in, symbolic links resolved.
fn directory(path: &Path) -> PathBuf {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    match real.parent() {
        Some(p) if !p.as_os_str().is_empty() => {
            std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
        }
        _ => PathBuf::from("."),
    }
}

/// [`risk`] for the file at `path` as it is now, `file` being its metadata when it is open
/// (checked on the open file, not the name). `None` when it can be trusted; a directory
/// that cannot be looked at counts as a risk. `own_uid` is the user the daemon started as
/// (whom the control socket lets change leases), not the one it dropped to.
pub fn check(path: &Path, file: Option<&std::fs::Metadata>, own_uid: u32) -> Option<String> {
    let dir = directory(path);
    let dir_owner = match std::fs::metadata(&dir) {
        Ok(m) => Owner::from(&m),
        // Nothing there to follow yet: it is checked when it appears and is opened.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && file.is_none() => return None,
        Err(e) => {
            return Some(format!(
                "is in {}, which cannot be examined: {e}",
                dir.display()
            ));
        }
    };
    let file = match file {
        Some(m) => Some(Owner::from(m)),
        None => std::fs::metadata(path).ok().map(|m| Owner::from(&m)),
    };
    risk(file, dir_owner, own_uid)
}

/// The one-line refusal for `--watch FILE`.
pub fn refusal(path: &Path, why: &str) -> String {
    format!(
        "--watch {}: the file {why}: any local user could write a login line and open the relay; fix its permissions, or give --watch-insecure to follow it anyway",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT_DIR: Owner = Owner {
        uid: 0,
        mode: 0o40755,
    };

    fn file(uid: u32, mode: u32) -> Option<Owner> {
        Some(Owner {
            uid,
            mode: 0o100000 | mode,
        })
    }

    #[test]
    fn debian_and_ubuntu_layouts_are_trusted() {
        // Debian: /var/log root:root 0755, mail.log root:adm 0640.
        assert_eq!(risk(file(0, 0o640), ROOT_DIR, 0), None);
        // Ubuntu: /var/log root:syslog 0775, mail.log syslog:adm 0640 (syslog is uid 104).
        let ubuntu_dir = Owner {
            uid: 0,
            mode: 0o40775,
        };
        assert_eq!(risk(file(104, 0o640), ubuntu_dir, 0), None);
        // Group-writable files are fine too.
        assert_eq!(risk(file(104, 0o660), ubuntu_dir, 0), None);
        // Not there yet, in a good directory.
        assert_eq!(risk(None, ROOT_DIR, 0), None);
    }

    #[test]
    fn what_any_user_can_write_is_refused() {
        let r = risk(file(0, 0o666), ROOT_DIR, 0).unwrap();
        assert!(r.contains("writable by every user (mode 0666)"), "{r}");
        let r = risk(file(65534, 0o644), ROOT_DIR, 0).unwrap();
        assert!(r.contains("ordinary user (uid 65534)"), "{r}");
        let r = risk(file(1000, 0o600), ROOT_DIR, 0).unwrap();
        assert!(r.contains("uid 1000"), "{r}");
        // /tmp: sticky and world-writable, with or without the file there yet.
        let tmp = Owner {
            uid: 0,
            mode: 0o41777,
        };
        let r = risk(file(0, 0o644), tmp, 0).unwrap();
        assert!(
            r.contains("directory every user can write (mode 1777)"),
            "{r}"
        );
        assert!(risk(None, tmp, 0).is_some());
        let home = Owner {
            uid: 1001,
            mode: 0o40755,
        };
        assert!(risk(file(0, 0o644), home, 0).unwrap().contains("uid 1001"));
    }

    #[test]
    fn the_daemons_own_user_may_own_it() {
        // A daemon run by uid 1000 (who may change leases anyway) may follow uid 1000's log.
        let dir = Owner {
            uid: 1000,
            mode: 0o40700,
        };
        assert_eq!(risk(file(1000, 0o644), dir, 1000), None);
        assert!(risk(file(1001, 0o644), dir, 1000).is_some());
    }
}
