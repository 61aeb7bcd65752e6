//! A private systemd-journald: Debian's real one, in a mount namespace of its own, so a test
//! never touches the host's journal.
//!
//! # What works without systemd as PID 1 (measured on Debian 12, systemd 252)
//! - `systemd-journald` runs fine on its own: without the sockets systemd would pass it, it
//!   binds `/run/systemd/journal/{socket,stdout,dev-log}` itself, and serves
//!   `journalctl --rotate` and `--flush` on `/run/systemd/journal/io.systemd.journal`.
//! - What it does not do is create `/dev/log` (systemd's `systemd-journald-dev-log.socket`
//!   does), and glibc's `syslog()`, which Dovecot logs through, only ever writes there.
//! - A journal namespace (`systemd-journald NAME`) would keep the files apart but still needs
//!   `/dev/log` pointed at it for syslog, so a private mount namespace is used instead:
//!   `unshare --mount --propagation private` runs a script that mounts fresh tmpfs on `/run`
//!   (journald's sockets and its runtime journal under `/run/log/journal`) and on
//!   `/var/log/journal` (so journalctl inside sees no host journal), binds a journald.conf of
//!   its own over `/etc/systemd/journald.conf`, and gives the namespace a `/dev` of its own
//!   (the few device nodes programs need, bound from the host's, and `log` as a symlink to
//!   journald's `dev-log`), then execs journald. Nothing is created or changed outside.
//! - Every other program of a test (Dovecot, the daemon, logger, systemd-cat, journalctl)
//!   joins that namespace with `setns(2)` between fork and exec ([`Journald::enter`]); the
//!   test holds the namespace open by a file descriptor, so it outlives a journald restart.
//! - Without systemd as PID 1 no process is in a unit's cgroup: entries carry no
//!   `_SYSTEMD_UNIT`, and relaylease's trusted-origin check goes by `_EXE` and `_UID`.
//! - The machine-id must exist (`/etc/machine-id`): journald names its directory after it.
//!
//! Needs root (mounts, setns) and the Debian package `systemd`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::unistd::Pid;

use super::process::{
    self, STARTUP_TIMEOUT, child_exited, find_program, log_tail, report_stop, require_file,
    stop_group,
};

const JOURNALD: &str = "/lib/systemd/systemd-journald";

/// journald's settings in the namespace: the runtime journal only (on the namespace's tmpfs),
/// no rate limit (tests log in bursts), and nothing read from or sent to the host (kernel
/// messages, audit, console, wall).
const CONFIG: &str = "[Journal]
Storage=volatile
RateLimitIntervalSec=0
ReadKMsg=no
Audit=no
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
";

/// The namespace's set-up, run by `unshare` as root; `$1` is the instance directory.
const SETUP: &str = r#"set -eu
d=$1
mount -t tmpfs -o mode=0755 relaylease-test-run /run
mkdir -p /run/systemd/journal /run/log/journal
if [ -d /var/log/journal ]; then mount -t tmpfs -o mode=0755 relaylease-test-journal /var/log/journal; fi
mount --bind "$d/journald.conf" /etc/systemd/journald.conf
mkdir "$d/dev"
mount -t tmpfs -o mode=0755 relaylease-test-dev "$d/dev"
for n in null zero full random urandom tty; do
  touch "$d/dev/$n"
  mount --bind "/dev/$n" "$d/dev/$n"
done
mkdir "$d/dev/pts" "$d/dev/shm"
mount -t tmpfs -o mode=1777 relaylease-test-shm "$d/dev/shm"
ln -s /proc/self/fd "$d/dev/fd"
ln -s /run/systemd/journal/dev-log "$d/dev/log"
mount --move "$d/dev" /dev
exec "$2"
"#;

/// A running private journald; stopped on drop (its namespace goes with the last process
/// in it).
pub struct Journald {
    /// The namespace, held open across journald restarts.
    ns: Option<File>,
    child: Child,
    stderr: PathBuf,
}

impl Journald {
    /// Starts one in a new subdirectory of `dir`; panics with what went wrong if it cannot.
    pub fn start(dir: &Path) -> Journald {
        process::prepare();
        require_file(JOURNALD, "systemd");
        let unshare = find_program("unshare", "util-linux");
        find_program("journalctl", "systemd");
        let machine_id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
        assert!(
            machine_id.trim().len() == 32,
            "/etc/machine-id is missing or empty: journald needs it (systemd-machine-id-setup)"
        );
        let root = process::instance_dir(dir, "journald");
        process::write_file(&root.join("journald.conf"), CONFIG);
        process::write_file(&root.join("setup.sh"), SETUP);
        let stderr = root.join("journald.stderr");
        let child = Command::new(unshare)
            .args(["--mount", "--propagation", "private", "sh"])
            .arg(root.join("setup.sh"))
            .arg(&root)
            .arg(JOURNALD)
            .stdin(Stdio::null())
            .stdout(log_file(&stderr))
            .stderr(log_file(&stderr))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run unshare: {e}"));
        let mut j = Journald {
            ns: None,
            child,
            stderr,
        };
        // Ready once its syslog socket is there, seen through its own root (so inside its
        // namespace); unshare has exec'd journald in the same process by then.
        let pid = j.child.id();
        let socket = PathBuf::from(format!("/proc/{pid}/root/run/systemd/journal/dev-log"));
        let mut exited = false;
        let ready = process::wait_until(STARTUP_TIMEOUT, || {
            exited = child_exited(&mut j.child);
            exited || socket.exists()
        });
        assert!(
            ready && !exited,
            "systemd-journald did not start ({}):\n{}",
            if exited { "exited" } else { "timed out" },
            log_tail(&j.stderr, 20)
        );
        j.ns = Some(
            File::open(format!("/proc/{pid}/ns/mnt"))
                .unwrap_or_else(|e| panic!("cannot open journald's mount namespace: {e}")),
        );
        j
    }

    /// Makes `cmd` run inside the namespace (its working directory becomes `/`).
    pub fn enter(&self, cmd: &mut Command) {
        self.enter_as(cmd, None);
    }

    /// [`Journald::enter`], and then switch to `uid`/`gid` with no other groups.
    pub fn enter_as(&self, cmd: &mut Command, user: Option<(u32, u32)>) {
        let fd = self.ns.as_ref().expect("journald started").as_raw_fd();
        // SAFETY: only async-signal-safe system calls run between fork and exec. std's own
        // `uid()` would switch before this closure runs, and setns needs root.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNS) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some((uid, gid)) = user
                    && (libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0)
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// `program` set to run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.stdin(Stdio::null());
        self.enter(&mut c);
        c
    }

    /// Runs journalctl inside with `args`; its output, or a panic with its complaint.
    pub fn journalctl(&self, args: &[&str]) -> String {
        let out = self
            .command("journalctl")
            .args(["--no-pager", "--quiet"])
            .args(args)
            .output()
            .expect("run journalctl");
        assert!(
            out.status.success(),
            "journalctl {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether some entry's message contains `needle`.
    pub fn has(&self, needle: &str) -> bool {
        self.journalctl(&["--output=cat"])
            .lines()
            .any(|l| l.contains(needle))
    }

    /// Waits for an entry whose message contains `needle`; panics if none comes.
    pub fn wait_for(&self, needle: &str) {
        assert!(
            process::wait_until(STARTUP_TIMEOUT, || self.has(needle)),
            "no journal entry contains {needle:?}; the last ones:\n{}",
            self.journalctl(&["--output=short-precise", "--lines=30"])
        );
    }

    /// `journalctl --rotate`: journald archives its files and starts new ones.
    pub fn rotate(&self) {
        self.journalctl(&["--rotate"]);
    }

    /// Stops journald (SIGTERM) and starts a new one in the same namespace.
    pub fn restart(&mut self) {
        let pgid = Pid::from_raw(self.child.id() as i32);
        report_stop("systemd-journald", stop_group(pgid, Some(&mut self.child)));
        let mut cmd = self.command(JOURNALD);
        cmd.stdout(log_file(&self.stderr))
            .stderr(log_file(&self.stderr))
            .process_group(0);
        self.child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start systemd-journald again: {e}"));
        let pid = self.child.id();
        // The old sockets stay in /run until the new journald binds its own: wait for it
        // to have logged its start.
        let own = format!("_PID={pid}");
        let started = process::wait_until(STARTUP_TIMEOUT, || {
            !child_exited(&mut self.child) && !self.journalctl(&[&own]).trim().is_empty()
        });
        assert!(
            started,
            "systemd-journald did not start again:\n{}",
            log_tail(&self.stderr, 20)
        );
    }

    /// The files of the journal, as journald names them.
    pub fn files(&self) -> Vec<String> {
        let out = self
            .command("sh")
            .args(["-c", "ls /run/log/journal/*/"])
            .output()
            .expect("list the journal files");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        let pgid = Pid::from_raw(self.child.id() as i32);
        report_stop("systemd-journald", stop_group(pgid, Some(&mut self.child)));
    }
}

fn log_file(path: &Path) -> File {
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}
