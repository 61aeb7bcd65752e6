//! Process plumbing shared by the rig: finding binaries, stopping process groups, reading logs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Gid, Group, Pid, Uid, User};

/// How long a daemon gets to come up (or a log line to appear) before the rig gives up loudly.
pub(crate) const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a daemon's leader gets to exit after SIGTERM before its group is killed.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// How long killed processes get to disappear (be reaped) before a stop counts as failed.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(10);

/// Directories searched besides `$PATH`: `cargo test` may run with a PATH lacking the sbin dirs.
const EXTRA_BIN_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// Common set-up for every component: root check and reaping of daemonised grandchildren.
///
/// `postfix start` forks a master that detaches from its parent; when it or its children exit
/// they are re-parented to the nearest subreaper. This machine's init reaps orphans only about
/// once a second, so without a subreaper every stop would leave zombies around for a while and
/// "nothing left running" could not be checked promptly. Making the test process the subreaper
/// lets [`stop_group`] reap them by process group at once. It affects this test process only.
pub(crate) fn prepare() {
    assert!(
        Uid::effective().is_root(),
        "the test rig must run as root: Dovecot and Postfix instances need it"
    );
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        nix::sys::prctl::set_child_subreaper(true)
            .unwrap_or_else(|e| panic!("cannot make the test process a child subreaper: {e}"));
    });
}

/// Absolute path of `name`, or a panic naming the Debian package that provides it.
pub(crate) fn find_program(name: &str, package: &str) -> PathBuf {
    let path_dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_dirs)
        .chain(EXTRA_BIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| {
            panic!("`{name}` not found in $PATH or sbin dirs: apt-get install {package}")
        })
}

/// Panics naming `package` unless `path` (a helper binary such as Dovecot's `pop3-login`) exists.
pub(crate) fn require_file(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: apt-get install {package}"
    );
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Uid and gid of a system account, or a panic naming the package that creates it.
pub(crate) fn system_user(name: &str, package: &str) -> (Uid, Gid) {
    let user = User::from_name(name)
        .unwrap_or_else(|e| panic!("cannot look up user {name}: {e}"))
        .unwrap_or_else(|| panic!("user {name} does not exist: apt-get install {package}"));
    (user.uid, user.gid)
}

/// Gid of a system group, or a panic naming the package that creates it.
pub(crate) fn system_group(name: &str, package: &str) -> Gid {
    Group::from_name(name)
        .unwrap_or_else(|e| panic!("cannot look up group {name}: {e}"))
        .unwrap_or_else(|| panic!("group {name} does not exist: apt-get install {package}"))
        .gid
}

/// A fresh, world-searchable subdirectory of `dir` for one instance, named `prefix.XXXXXX`.
///
/// Daemons drop privileges (Dovecot's mail processes run as `mail`, Postfix's as `postfix`),
/// so `dir` and the new directory get `o+x`; every ancestor of `dir` must already allow it.
pub(crate) fn instance_dir(dir: &Path, prefix: &str) -> PathBuf {
    add_mode(dir, 0o011);
    check_ancestors_searchable(dir);
    let path = tempfile::Builder::new()
        .prefix(&format!("{prefix}."))
        .tempdir_in(dir)
        .unwrap_or_else(|e| panic!("cannot create a directory in {}: {e}", dir.display()))
        .keep();
    set_mode(&path, 0o755);
    path
}

pub(crate) fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {:o} {}: {e}", mode, path.display()));
}

fn add_mode(path: &Path, bits: u32) {
    let mode = fs::metadata(path)
        .unwrap_or_else(|e| panic!("cannot stat {}: {e}", path.display()))
        .permissions()
        .mode();
    set_mode(path, (mode | bits) & 0o7777);
}

fn check_ancestors_searchable(dir: &Path) {
    for ancestor in dir.ancestors().skip(1) {
        let Ok(meta) = fs::metadata(ancestor) else {
            continue;
        };
        assert!(
            meta.permissions().mode() & 0o001 != 0,
            "{} is not searchable by other users, so the mail/postfix users cannot reach {}: \
             use a directory under /tmp (tempfile::tempdir)",
            ancestor.display(),
            dir.display()
        );
    }
}

pub(crate) fn mkdir(path: &Path) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("cannot mkdir {}: {e}", path.display()));
}

pub(crate) fn write_file(path: &Path, contents: &str) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Writes a config file dated a minute ago.
///
/// Postfix refuses to trust a main.cf or master.cf modified within the last second (it might
/// still be being written) and re-reads it every 0.3 s until it is older, which would add about
/// two seconds to every start.
pub(crate) fn write_config(path: &Path, contents: &str) {
    write_file(path, contents);
    let past = std::time::SystemTime::now() - Duration::from_secs(60);
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(past))
        .unwrap_or_else(|e| panic!("cannot set the mtime of {}: {e}", path.display()));
}

pub(crate) fn chown(path: &Path, uid: Uid, gid: Gid) {
    std::os::unix::fs::chown(path, Some(uid.as_raw()), Some(gid.as_raw()))
        .unwrap_or_else(|e| panic!("cannot chown {}: {e}", path.display()));
}

/// The last `lines` lines of a log file, for panic messages; never fails.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            let tail = all[all.len().saturating_sub(lines)..].join("\n");
            format!("--- last lines of {} ---\n{tail}", path.display())
        }
        Err(e) => format!("--- cannot read {}: {e} ---", path.display()),
    }
}

/// Whether a line of the file at `path` contains `needle` (false if it cannot be read).
pub(crate) fn log_has(path: &Path, needle: &str) -> bool {
    fs::read_to_string(path).is_ok_and(|text| text.lines().any(|l| l.contains(needle)))
}

/// Polls `path` until a line contains `needle`; returns that line, or `None` after `timeout`.
///
/// Daemons write logs asynchronously (Dovecot through its `log` process, Postfix through
/// `postlogd`), so a line may appear a moment after the client saw the reply.
pub fn wait_for_line(path: &Path, needle: &str, timeout: Duration) -> Option<String> {
    let mut found = None;
    wait_until(timeout, || {
        found = fs::read_to_string(path)
            .ok()
            .and_then(|text| text.lines().find(|l| l.contains(needle)).map(str::to_owned));
        found.is_some()
    });
    found
}

/// Calls `done` every few milliseconds until it returns true or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let max_rounds = timeout.as_millis() / POLL.as_millis() + 1;
    for _ in 0..max_rounds {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            break;
        }
        thread::sleep(POLL);
    }
    done()
}

/// Whether the process has exited (reaping it), for a `Child` the rig spawned.
pub(crate) fn child_exited(child: &mut Child) -> bool {
    !matches!(child.try_wait(), Ok(None))
}

/// Stops every process of group `pgid` led by `leader` and reaps them all.
///
/// The whole group gets SIGTERM at once, and whatever is left after [`STOP_GRACE`] is killed.
/// Measured here: after SIGTERM to the leader alone, Dovecot's master takes 1.1 s to stop its
/// children; after SIGTERM to the group, everything is gone in about 0.1 s, except that now
/// and then the master, seeing its children die first, sleeps for seconds (hence the grace).
/// Postfix's master and tcpserver exit at once either way.
/// `child` is the leader's `Child` handle when the rig spawned it directly, so std reaps it.
/// Returns a description of anything that could not be stopped, for the caller to report.
pub(crate) fn stop_group(pgid: Pid, mut child: Option<&mut Child>) -> Result<(), String> {
    let _ = killpg(pgid, Signal::SIGTERM);
    let leader_gone = wait_until(STOP_GRACE, || match child.as_deref_mut() {
        Some(c) => child_exited(c),
        None => reap_group(pgid) == Errno::ECHILD && kill(pgid, None) == Err(Errno::ESRCH),
    });
    if !leader_gone {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
    if let Some(c) = child {
        let _ = c.wait();
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    let empty = wait_until(KILL_TIMEOUT, || {
        reap_group(pgid);
        killpg(pgid, None) == Err(Errno::ESRCH)
    });
    if empty {
        Ok(())
    } else {
        Err(format!(
            "processes of group {pgid} are still alive after SIGKILL"
        ))
    }
}

/// Reaps every already-exited child in group `pgid`; returns why reaping stopped.
fn reap_group(pgid: Pid) -> Errno {
    let group = Pid::from_raw(-pgid.as_raw());
    for _ in 0..1000 {
        match waitpid(group, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return Errno::EAGAIN,
            Ok(_) => continue,
            Err(e) => return e,
        }
    }
    Errno::EAGAIN
}

/// Reports a failed stop from a `Drop`: panics unless already unwinding (which would abort).
pub(crate) fn report_stop(what: &str, result: Result<(), String>) {
    if let Err(e) = result {
        if thread::panicking() {
            eprintln!("test rig: stopping {what}: {e}");
        } else {
            panic!("test rig: stopping {what}: {e}");
        }
    }
}
