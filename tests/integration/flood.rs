//! Floods from one local user (issue 16): `nobody` holds 2,000 idle connections and 20 that
//! send one byte a second, on the control socket and on the policy socket. Writers' hook
//! logins are still acknowledged, `check` still answers, and Postfix's own user still gets
//! answers. The latencies seen go to stderr (docs/robustness.md has them).
//!
//! Needs root: the flooding and the other users' connections are made by threads that take
//! those users' credentials (SO_PEERCRED is what the daemon judges).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::daemon_harness::{Daemon, Env};
use crate::faults::read_line;

/// The flood: idle connections, and trickling ones.
const IDLE_CONNS: usize = 2000;
const TRICKLING: usize = 20;
/// The trickling clients stop after this long whatever happens.
const TRICKLE_FOR: Duration = Duration::from_secs(40);

fn user(name: &str) -> (u32, u32) {
    let u = nix::unistd::User::from_name(name)
        .expect("look up a user")
        .unwrap_or_else(|| panic!("user {name} exists"));
    (u.uid.as_raw(), u.gid.as_raw())
}

/// Run `f` on a thread of its own that has taken `uid` and `gid` (and no other group). The
/// raw system calls change that thread's credentials only (glibc's wrappers would change
/// every thread of the test process); what it connects carries them, whoever uses it later.
fn as_user<T: Send + 'static>(uid: u32, gid: u32, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: plain system calls on this thread's own credentials.
        unsafe {
            assert_eq!(
                libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()),
                0
            );
            assert_eq!(libc::syscall(libc::SYS_setresgid, gid, gid, gid), 0);
            assert_eq!(libc::syscall(libc::SYS_setresuid, uid, uid, uid), 0);
        }
        f()
    })
    .join()
    .expect("thread as another user")
}

/// `n` connections to `path` made as `uid`; the daemon may close some at once.
fn connect_many(uid: u32, gid: u32, path: &Path, n: usize) -> Vec<UnixStream> {
    let path = path.to_path_buf();
    as_user(uid, gid, move || {
        (0..n)
            .filter_map(|_| UnixStream::connect(&path).ok())
            .collect()
    })
}

/// The flood as `nobody`: 2,000 idle connections, then 20 that send a byte of `request` a
/// second until `stop` (or [`TRICKLE_FOR`]).
struct Flood {
    _idle: Vec<UnixStream>,
    stop: Arc<AtomicBool>,
    trickle: Option<std::thread::JoinHandle<()>>,
}

impl Flood {
    fn start(path: &Path, request: &[u8]) -> Flood {
        let (uid, gid) = user("nobody");
        let idle = connect_many(uid, gid, path, IDLE_CONNS);
        let mut slow = connect_many(uid, gid, path, TRICKLING);
        let stop = Arc::new(AtomicBool::new(false));
        let request = request.to_vec();
        let stopped = stop.clone();
        let trickle = std::thread::spawn(move || {
            let start = Instant::now();
            let mut i = 0;
            while !stopped.load(Ordering::Relaxed) && start.elapsed() < TRICKLE_FOR {
                for s in &mut slow {
                    let _ = s.write_all(&request[i % request.len()..][..1]);
                }
                i += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        Flood {
            _idle: idle,
            stop,
            trickle: Some(trickle),
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.trickle.take() {
            let _ = t.join();
        }
    }
}

/// One request on a fresh connection made as `uid`: the first reply line (None: closed
/// without one), and how long it took from connecting.
fn ask_as(uid: u32, gid: u32, path: &Path, request: &str) -> (Option<String>, Duration) {
    let path: PathBuf = path.to_path_buf();
    let request = request.to_string();
    as_user(uid, gid, move || {
        let start = Instant::now();
        let Ok(mut s) = UnixStream::connect(&path) else {
            return (None, start.elapsed());
        };
        let _ = s.write_all(request.as_bytes());
        let line = read_line(&mut s);
        (line, start.elapsed())
    })
}

/// Raise (never lower) the test process's open files limit, which the daemon inherits.
fn allow_many_files(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes, and setrlimit reads, the struct we pass.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_cur.max(n);
        lim.rlim_max = lim.rlim_max.max(n);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

fn start(env: &Env, args: &[&str]) -> Daemon {
    allow_many_files(16384);
    // nobody must reach the sockets in the test's directory.
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    env.start(args)
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
#[ignore = "needs root (tests/run.sh runs it): floods as nobody and asks as other users"]
fn nobodys_flood_of_the_control_socket_leaves_hook_logins_and_checks_answered() {
    let env = Env::new();
    // `mail` stands for a login server's user in --writer-group.
    let d = start(&env, &["--socket-mode", "0666", "--writer-group", "mail"]);
    let check = "{\"op\":\"check\",\"addr\":\"192.0.2.90\"}\n";
    let flood = Flood::start(&env.socket(), check.as_bytes());

    // A hook login by root, through the real hook command: acknowledged.
    let start_hook = Instant::now();
    let o = env.run(&["hook", "--ip", "192.0.2.90", "--user", "alice"]);
    let root_hook = start_hook.elapsed();
    assert_eq!(o.code, 0, "root's hook login under the flood: {o:?}");

    // A login from a --writer-group member (user mail), as the hook sends it: acknowledged.
    let (mail_uid, mail_gid) = user("mail");
    let login = "{\"op\":\"login\",\"addr\":\"192.0.2.91\",\"user\":\"bob\"}\n";
    let (reply, writer_login) = ask_as(mail_uid, mail_gid, &env.socket(), login);
    let reply = reply.expect("the writer's login is answered under the flood");
    assert_eq!(json(&reply)["ok"], true, "{reply}");

    // `check` answers root, and another user who may only read (user daemon).
    let (reply, root_check) = ask_as(0, 0, &env.socket(), check);
    let reply = reply.expect("root's check is answered under the flood");
    assert_eq!(json(&reply)["allowed"], true, "{reply}");
    let (daemon_uid, daemon_gid) = user("daemon");
    let (reply, reader_check) = ask_as(daemon_uid, daemon_gid, &env.socket(), check);
    let reply = reply.expect("another reader's check is answered under the flood");
    assert_eq!(json(&reply)["allowed"], true, "{reply}");
    eprintln!(
        "under the flood: root's hook command {root_hook:?} (a process start included), a writer's login {writer_login:?}, root's check {root_check:?}, another reader's check {reader_check:?}"
    );

    // nobody's own flood is turned away past its share, said once, not per connection.
    let refused = d
        .log_text()
        .lines()
        .filter(|l| l.contains("one user holds its share of connections"))
        .count();
    assert!((1..=3).contains(&refused), "{}", d.log_text());
    drop(flood);
    assert!(!d.log_text().contains("ERROR"), "{}", d.log_text());
    assert_eq!(d.stop(), 0);
}

fn policy_request(addr: &str) -> String {
    format!("request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address={addr}\n\n")
}

#[test]
#[ignore = "needs root (tests/run.sh runs it): floods as nobody and asks as Postfix's user"]
fn nobodys_flood_of_the_policy_socket_leaves_postfix_answered() {
    let env = Env::new();
    let policy = env.path("policy.sock");
    let d = start(&env, &["--policy", &format!("unix:{}", policy.display())]);
    assert_eq!(env.run(&["add", "192.0.2.95"]).code, 0);
    let (pf_uid, pf_gid) = user("postfix");
    // Postfix's smtpd processes: some connected before the flood, which keep asking...
    let mut before = connect_many(pf_uid, pf_gid, &policy, 20);
    assert_eq!(before.len(), 20);
    let flood = Flood::start(&policy, policy_request("10.9.0.1").as_bytes());
    for (i, s) in before.iter_mut().enumerate() {
        let (addr, want) = if i % 2 == 0 {
            ("192.0.2.95", "action=OK")
        } else {
            ("10.9.1.1", "action=DUNNO")
        };
        s.write_all(policy_request(addr).as_bytes()).unwrap();
        assert_eq!(read_line(s).as_deref(), Some(want), "connection {i}");
        assert_eq!(read_line(s).as_deref(), Some(""));
    }
    // ... and new ones started under the flood.
    let mut slowest = Duration::ZERO;
    for i in 0..50 {
        let (addr, want) = if i % 2 == 0 {
            ("192.0.2.95", "action=OK")
        } else {
            ("10.9.2.1", "action=DUNNO")
        };
        let (reply, took) = ask_as(pf_uid, pf_gid, &policy, &policy_request(addr));
        assert_eq!(reply.as_deref(), Some(want), "new Postfix connection {i}");
        slowest = slowest.max(took);
    }
    eprintln!("under the flood: 50 new Postfix connections answered, the slowest in {slowest:?}");
    drop(flood);
    assert!(!d.log_text().contains("ERROR"), "{}", d.log_text());
    assert_eq!(d.stop(), 0);
}
