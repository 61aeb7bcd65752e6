//! The host's side: the daemon answering, the files it reads as the user it becomes, its
//! database directory, the zone of syslog's time stamps, the cdb tcpserver reads.

use std::path::Path;

use nix::errno::Errno;

use super::Check;

/// Did the daemon answer on its control socket?
pub fn daemon_answers(socket: &Path, result: Result<(), String>) -> Check {
    const NAME: &str = "daemon.answers";
    match result {
        Ok(()) => Check::ok(NAME, format!("the daemon answers on {}.", socket.display())),
        Err(e) => Check::fail(
            NAME,
            format!("no daemon answers on {}: {e}.", socket.display()),
            "start it (systemctl start relaylease) and look at its log (journalctl -u relaylease) if it stops.",
        ),
    }
}

/// Could `user` open the followed log `path` for reading (tried in a child that became it)?
pub fn watch_readable(path: &Path, user: &str, result: Result<(), Errno>) -> Check {
    const NAME: &str = "daemon.watch_readable";
    match result {
        Ok(()) => Check::ok(NAME, format!("user {user} can read {}.", path.display())),
        Err(Errno::ENOENT) => Check::fail(
            NAME,
            format!("{} does not exist.", path.display()),
            "follow the file the mail server writes its logins to.",
        ),
        Err(e) => Check::fail(
            NAME,
            format!(
                "user {user} cannot read {} ({}): the daemon loses it at the first rotation after dropping root.",
                path.display(),
                e.desc()
            ),
            format!(
                "let {user} read it, e.g. keep the log 0640 root:adm (logrotate `create 0640 root adm`) and add {user} to group adm."
            ),
        ),
    }
}

/// Is the database directory the daemon's own (uid `owner`, permission bits `mode`)?
pub fn db_owner(dir: &Path, found: Option<(u32, u32)>, want_uid: u32, want: &str) -> Check {
    const NAME: &str = "daemon.db_owner";
    let Some((owner, mode)) = found else {
        return Check::ok(
            NAME,
            format!(
                "{} does not exist yet; the daemon creates it.",
                dir.display()
            ),
        );
    };
    if mode & 0o022 != 0 {
        return Check::fail(
            NAME,
            format!(
                "{} is writable by other users (mode {:04o}): any of them could write a lease.",
                dir.display(),
                mode & 0o7777
            ),
            format!("chmod go-w {}", dir.display()),
        );
    }
    if owner != want_uid && owner != 0 {
        return Check::fail(
            NAME,
            format!(
                "{} belongs to uid {owner}, not to {want} whom the daemon runs as.",
                dir.display()
            ),
            format!("chown -R {want} {}", dir.display()),
        );
    }
    Check::ok(
        NAME,
        format!(
            "{} belongs to {} and no other user may write there.",
            dir.display(),
            if owner == 0 { "root" } else { want }
        ),
    )
}

/// Do the syslog stamps of `path` read in the daemon's zone? `stamp_ms` is the time of its
/// last line as the daemon reads it (local time), `mtime_ms` when the file was last written.
pub fn clock_zone(path: &Path, stamp_ms: Option<i64>, mtime_ms: i64) -> Check {
    const NAME: &str = "daemon.clock_zone";
    let Some(stamp) = stamp_ms else {
        return Check::ok(
            NAME,
            format!(
                "{} has no syslog-stamped last line to compare (stamps with a zone need none).",
                path.display()
            ),
        );
    };
    let skew = (stamp - mtime_ms) / 1000;
    // The last line is written moments before the file's mtime; a whole zone is an hour or
    // more.
    if skew.abs() >= 15 * 60 {
        let hours = skew as f64 / 3600.0;
        return Check::fail(
            NAME,
            format!(
                "the last line of {} is stamped {hours:+.1} h from when it was written: syslog writes local time in another zone than the daemon's, so its logins are taken as {}.",
                path.display(),
                if skew > 0 {
                    "later than they were"
                } else {
                    "older than they were"
                }
            ),
            "run the daemon with the zone syslog uses (TZ in /etc/default/relaylease or the same /etc/localtime), or have syslog write RFC 3339 stamps.",
        );
    }
    Check::ok(
        NAME,
        format!("the stamps of {} are in the daemon's zone.", path.display()),
    )
}

/// `--max-session-hold` against a log other users can write.
pub fn session_hold(path: &Path, others_write: bool, hold_secs: u64) -> Check {
    const NAME: &str = "daemon.session_hold";
    if others_write && hold_secs > 0 {
        return Check::fail(
            NAME,
            format!(
                "{} is writable by other users and sessions are held for up to {hold_secs}s: a forged login line without its logout keeps a lease that long.",
                path.display()
            ),
            "give the daemon --max-session-hold 0, or make the log writable by its writer only.",
        );
    }
    Check::ok(
        NAME,
        format!(
            "{}: {}",
            path.display(),
            if others_write {
                "writable by others, but no session is held."
            } else {
                "only its writer can write it."
            }
        ),
    )
}

/// Could the tcpserver user open the cdb?
pub fn cdb_readable(path: &Path, user: &str, result: Result<(), Errno>) -> Check {
    const NAME: &str = "qmail.cdb";
    match result {
        Ok(()) => Check::ok(NAME, format!("user {user} can read {}.", path.display())),
        Err(Errno::ENOENT) => Check::fail(
            NAME,
            format!(
                "{} does not exist, so tcpserver refuses every connection.",
                path.display()
            ),
            "start the daemon, which writes it, before tcpserver.",
        ),
        Err(e) => Check::fail(
            NAME,
            format!(
                "user {user} cannot read {} ({}), so tcpserver refuses every connection.",
                path.display(),
                e.desc()
            ),
            "keep the cdb and its directory readable by all (the unit's UMask=0022 and StateDirectoryMode=0755).",
        ),
    }
}

/// Do the static rules parse?
pub fn base_rules(path: &Path, result: Result<usize, String>) -> Check {
    const NAME: &str = "qmail.base_rules";
    match result {
        Ok(n) => Check::ok(
            NAME,
            format!("{} holds {n} rules that parse.", path.display()),
        ),
        Err(e) => Check::fail(
            NAME,
            format!("{e}: the daemon refuses to start."),
            format!(
                "correct the rule in {} (tcprules syntax: ADDR:allow,VAR=\"value\").",
                path.display()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn each_check_can_fail() {
        let p = Path::new("/var/log/dovecot.log");
        assert_eq!(watch_readable(p, "relaylease", Ok(())).status, Status::Ok);
        let c = watch_readable(p, "relaylease", Err(Errno::EACCES));
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.contains("adm"));
        assert_eq!(db_owner(p, Some((7, 0o755)), 7, "x").status, Status::Ok);
        assert_eq!(db_owner(p, Some((0, 0o755)), 7, "x").status, Status::Ok);
        assert_eq!(db_owner(p, Some((8, 0o755)), 7, "x").status, Status::Fail);
        assert_eq!(db_owner(p, Some((7, 0o777)), 7, "x").status, Status::Fail);
        assert_eq!(clock_zone(p, Some(1_000_000), 1_000_900).status, Status::Ok);
        assert_eq!(
            clock_zone(p, Some(1_000_000 + 3_600_000), 1_000_900).status,
            Status::Fail
        );
        assert_eq!(session_hold(p, true, 86400).status, Status::Fail);
        assert_eq!(session_hold(p, true, 0).status, Status::Ok);
        assert_eq!(session_hold(p, false, 86400).status, Status::Ok);
        assert_eq!(
            cdb_readable(p, "qmaild", Err(Errno::ENOENT)).status,
            Status::Fail
        );
        assert_eq!(
            base_rules(p, Err("line 1: bad".into())).status,
            Status::Fail
        );
        assert_eq!(
            daemon_answers(p, Err("refused".into())).status,
            Status::Fail
        );
    }
}
