//! The Debian package and `cargo install`, proven on this machine: the .deb is built with
//! cargo-deb, passes lintian without errors, installs with apt-get, runs the README's quick
//! start against the rig's Postfix and Dovecot (the unit's ExecStart, as its user, since
//! systemd is not PID 1 here), and purges without leaving files behind.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::daemon_harness::{Env, Out, eventually};
use crate::mail_rig::{Dovecot, InfoLog, Journald, PASSWORD, Postfix, pop3_login, relay_allowed};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");
const UNIT: &str = "/usr/lib/systemd/system/relaylease.service";
const DEFAULTS: &str = "/etc/default/relaylease";
const SYSTEM_SOCKET: &str = "/run/relaylease/relaylease.sock";

fn run(cmd: &mut Command) -> Out {
    Out::from(
        cmd.stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}")),
    )
}

fn ok(cmd: &mut Command) -> Out {
    let out = run(cmd);
    assert_eq!(out.code, 0, "{cmd:?}\n{out:?}");
    out
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// `cargo deb` on the binary this test run built (the dev profile: no second build), into
/// `dir`; the package's path.
fn build_deb(dir: &Path) -> PathBuf {
    ok(cargo()
        .current_dir(MANIFEST)
        .args(["deb", "--profile", "dev", "--no-build", "--fast", "-o"])
        .arg(dir));
    let debs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    debs.into_iter().next().unwrap()
}

/// The commands of the README's quick start, in order (comment lines kept: they say what the
/// user does between commands).
fn quick_start() -> Vec<String> {
    let readme = std::fs::read_to_string(format!("{MANIFEST}/README.md")).unwrap();
    let marker = "<!-- Each command below is run, in order, by tests/integration/package.rs. -->";
    let after = &readme[readme.find(marker).expect("the quick start's marker") + marker.len()..];
    let block = after
        .trim_start()
        .strip_prefix("```sh\n")
        .expect("a sh block after the marker");
    let block = &block[..block.find("```").unwrap()];
    block.lines().map(str::to_string).collect()
}

/// The package's runtime directory. The postinst makes it and removal takes it away once it
/// is empty. It may be there before the install: a daemon started by hand as root (the
/// README's first command) makes it and leaves it, empty, when it stops.
const RUN_DIR: &str = "/run/relaylease";

/// Files and directories named after the package under the places a package may touch
/// (its unit's links, helper state, runtime directory), apart from the documented state
/// directory, which purge keeps, and [`RUN_DIR`] itself (checked on its own; what is in it is
/// compared). Only these: other tests run meanwhile and change other files.
fn snapshot() -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack: Vec<PathBuf> = ["/etc", "/usr", "/var/lib", "/run"]
        .iter()
        .map(PathBuf::from)
        .collect();
    while let Some(p) = stack.pop() {
        if p == Path::new("/var/lib/relaylease") || p.starts_with("/var/lib/dpkg") {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir()
            && let Ok(rd) = std::fs::read_dir(&p)
        {
            stack.extend(rd.flatten().map(|e| e.path()));
        }
        if p.to_string_lossy().contains("relaylease") && p != Path::new(RUN_DIR) {
            out.insert(p);
        }
    }
    out
}

/// Every path the package holds, as `dpkg-deb -c` lists it.
fn contents(deb: &Path) -> Vec<PathBuf> {
    let out = ok(Command::new("dpkg-deb").arg("-c").arg(deb));
    out.stdout
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| PathBuf::from(p.trim_start_matches('.').trim_end_matches('/')))
        .filter(|p| p.as_os_str().len() > 1)
        .collect()
}

/// What the unit says: its `KEY=` lines, in order.
fn unit_values(key: &str) -> Vec<String> {
    let text = std::fs::read_to_string(UNIT).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .collect()
}

/// The assignments of an EnvironmentFile, the last one of a name winning.
fn environment_file(path: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut vars: Vec<(String, String)> = Vec::new();
    for l in text.lines().map(str::trim) {
        if l.starts_with('#') || l.is_empty() {
            continue;
        }
        let (k, v) = l.split_once('=').expect("KEY=VALUE");
        vars.retain(|(n, _)| n != k);
        vars.push((k.to_string(), v.trim_matches('"').to_string()));
    }
    vars
}

/// Start what `systemctl start relaylease` would: the unit's ExecStart with its Environment=
/// and EnvironmentFile=, as its User=, Group= and SupplementaryGroups=, inside the rig's
/// journal namespace (whose /run is its own), with `extra` flags appended.
fn start_unit(journald: &Journald, extra: &[&str], log: &Path) -> Child {
    let mut env: Vec<(String, String)> = unit_values("Environment")
        .iter()
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(unit_values("EnvironmentFile"), [format!("-{DEFAULTS}")]);
    env.extend(environment_file(DEFAULTS));
    let exec = unit_values("ExecStart").pop().expect("ExecStart");
    let mut argv: Vec<String> = Vec::new();
    for w in exec.split_whitespace() {
        match w.strip_prefix('$') {
            Some(var) => {
                let v = &env.iter().rev().find(|(k, _)| k == var).expect("set").1;
                argv.extend(v.split_whitespace().map(str::to_string));
            }
            None => argv.push(w.to_string()),
        }
    }
    argv.extend(extra.iter().map(|s| s.to_string()));
    let user = unit_values("User").pop().unwrap();
    let group = unit_values("Group").pop().unwrap();
    let groups = unit_values("SupplementaryGroups").pop().unwrap_or_default();
    // RuntimeDirectory=relaylease, RuntimeDirectoryMode=0755, in the namespace's own /run.
    assert_eq!(unit_values("RuntimeDirectory"), ["relaylease"]);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"install -d -o "$1" -g "$2" -m 0755 /run/relaylease && shift 2 && exec "$@""#)
        .args(["sh", &user, &group])
        .args([
            "setpriv", "--reuid", &user, "--regid", &group, "--groups", &groups, "--",
        ])
        .args(&argv)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    journald.enter(&mut cmd);
    cmd.spawn().expect("start the unit's command")
}

/// A daemon this test started; stopped however the test ends (a leftover one would hold the
/// system database for the next run).
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            stop(c);
        }
    }
}

fn stop(mut child: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    crate::daemon_harness::wait_timeout(&mut child, Duration::from_secs(10));
}

#[test]
#[ignore = "needs root, cargo-deb, lintian, man-db, systemd's tools and Debian's postfix and dovecot; installs a package (tests/run.sh installs and runs them)"]
fn the_deb_installs_runs_the_quick_start_and_purges_cleanly() {
    let env = Env::new();
    let dir = env.dir.path().to_path_buf();
    let deb_dir = env.path("deb");
    std::fs::create_dir(&deb_dir).unwrap();
    let deb = build_deb(&deb_dir);
    let name = deb.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(
        name,
        format!("relaylease_{}-1_amd64.deb", env!("CARGO_PKG_VERSION"))
    );
    let lintian = run(Command::new("lintian").arg(&deb));
    assert!(
        !lintian.stdout.lines().any(|l| l.starts_with("E:")),
        "lintian errors\n{lintian:?}"
    );
    let _ = run(Command::new("apt-get").args(["purge", "-y", "-q", "relaylease"]));
    let before = snapshot();
    let run_dir_before = Path::new(RUN_DIR).exists();
    let new_paths: Vec<PathBuf> = contents(&deb)
        .into_iter()
        .filter(|p| std::fs::symlink_metadata(p).is_err())
        .collect();
    assert!(new_paths.contains(&PathBuf::from("/usr/bin/relaylease")));

    let journald = Journald::start(&dir);
    let dovecot = Dovecot::start_logging(&dir, "", InfoLog::Journal(&journald));
    let postfix = Postfix::start_with_restrictions(
        &dir,
        "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
    );
    let conf = postfix.config_dir().to_str().unwrap().to_string();
    let client = IpAddr::from([127, 0, 0, 73]);
    assert!(
        !relay_allowed(client, postfix.smtp_port()),
        "no relay before"
    );
    let daemon_log = env.path("unit.log");
    let mut daemon = None;
    let mut commands = 0;
    for line in quick_start() {
        if line.starts_with('#') {
            if line.contains("POP3") {
                assert!(pop3_login(client, dovecot.pop3_port(), "alice", PASSWORD));
            }
            continue;
        }
        commands += 1;
        let words: Vec<String> = shell_words(line.strip_prefix("sudo ").unwrap_or(&line));
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        match w.as_slice() {
            ["apt-get", "install", file] => {
                assert_eq!(*file, format!("./{name}"));
                ok(Command::new("apt-get")
                    .current_dir(&deb_dir)
                    .args(["install", "-y", "-q", file])
                    .env("DEBIAN_FRONTEND", "noninteractive"));
            }
            ["postconf", rest @ ..] => {
                ok(Command::new("postconf").args(["-c", &conf]).args(rest));
            }
            ["postfix", "reload"] => {
                ok(Command::new("postfix").args(["-c", &conf, "reload"]));
            }
            ["systemctl", "enable", "--now", "relaylease"] => {
                // systemd is not PID 1 here: enabling works offline, starting is emulated.
                ok(Command::new("systemctl").args(["enable", "relaylease"]));
                // What Debian's boot does for the journal (systemd-tmpfiles-setup): group adm
                // may read it; journal files made from then on inherit that.
                ok(journald.command("systemd-tmpfiles").args([
                    "--create",
                    "--prefix",
                    "/run/log/journal",
                ]));
                journald.rotate();
                // The rig's Dovecot is no dovecot.service: its entries are selected by
                // their identifier.
                let child =
                    start_unit(&journald, &["--journal-identifier", "dovecot"], &daemon_log);
                let socket = format!("/proc/{}/root{SYSTEM_SOCKET}", child.id());
                assert!(
                    eventually(Duration::from_secs(10), || Path::new(&socket).exists()),
                    "the unit's daemon answers\n{}",
                    std::fs::read_to_string(&daemon_log).unwrap_or_default()
                );
                let status =
                    std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
                let uid = nix::unistd::User::from_name("relaylease")
                    .unwrap()
                    .unwrap()
                    .uid;
                assert!(
                    status.lines().any(|l| l.starts_with("Uid:")
                        && l.split_whitespace().nth(1) == Some(&uid.to_string())),
                    "runs as relaylease\n{status}"
                );
                daemon = Some(Running(Some(child)));
            }
            ["relaylease", "doctor", rest @ ..] => {
                let out = run(journald
                    .command("/usr/bin/relaylease")
                    .args(["doctor", "--postfix-config", &conf, "--dovecot-config"])
                    .arg(dovecot.config_path())
                    .args(rest)
                    .args(["--journal-identifier", "dovecot"]));
                assert_eq!(out.code, 0, "{out:?}");
                assert!(!out.stdout.contains("FAIL"), "{out:?}");
            }
            ["relaylease", "check", addr] => {
                assert_eq!(*addr, "192.0.2.7");
                let c = client.to_string();
                let check = || run(journald.command("/usr/bin/relaylease").args(["check", &c]));
                let mut out = check();
                // The login reaches the journal, then the daemon, a moment later.
                for _ in 0..50 {
                    if out.code == 0 {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                    out = check();
                }
                assert_eq!(
                    out.code,
                    0,
                    "{out:?}\n{}",
                    std::fs::read_to_string(&daemon_log).unwrap_or_default()
                );
                assert!(out.stdout.contains("lease until"), "{out:?}");
                assert!(
                    relay_allowed(client, postfix.smtp_port()),
                    "Postfix relays for the client"
                );
            }
            other => panic!("the quick start has a command this test does not run: {other:?}"),
        }
    }
    assert!(commands <= 10, "the quick start has {commands} commands");

    // What the package put in place.
    let version = ok(Command::new("/usr/bin/relaylease").arg("--version"));
    assert!(
        version.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{version:?}"
    );
    let man = ok(Command::new("man")
        .args(["-P", "cat", "relaylease"])
        .env("MANWIDTH", "80")
        .env_remove("MANPAGER"));
    assert!(
        man.stdout.contains("RELAYLEASE(8)") && man.stdout.contains("doctor"),
        "{man:?}"
    );
    for (path, needle) in [
        (
            "/usr/share/bash-completion/completions/relaylease",
            "doctor",
        ),
        ("/usr/share/zsh/vendor-completions/_relaylease", "doctor"),
        (
            "/usr/share/fish/vendor_completions.d/relaylease.fish",
            "doctor",
        ),
        (UNIT, "ExecStart=/usr/bin/relaylease daemon"),
        (DEFAULTS, "RELAYLEASE_OPTS="),
    ] {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(text.contains(needle), "{path}");
    }
    let groups = ok(Command::new("id").args(["-nG", "relaylease"]));
    assert!(
        groups.stdout.split_whitespace().any(|g| g == "adm"),
        "{groups:?}"
    );
    let uid = nix::unistd::User::from_name("relaylease")
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    // Made by the postinst (the daemon's /run was the namespace's own).
    for d in ["/var/lib/relaylease", RUN_DIR] {
        assert_eq!(std::fs::metadata(d).unwrap().uid(), uid, "{d}");
    }
    let verify = run(Command::new("systemd-analyze").args(["verify", UNIT]));
    assert_eq!(verify.code, 0, "{verify:?}");
    assert!(!verify.stderr.contains("relaylease.service"), "{verify:?}");

    // Purge: nothing of the package is left outside its state directory.
    drop(daemon.expect("the quick start started the daemon"));
    ok(Command::new("apt-get")
        .args(["purge", "-y", "-q", "relaylease"])
        .env("DEBIAN_FRONTEND", "noninteractive"));
    let after = snapshot();
    let added: Vec<_> = after.difference(&before).collect();
    let removed: Vec<_> = before.difference(&after).collect();
    assert!(added.is_empty(), "left behind by purge: {added:?}");
    assert!(
        removed.is_empty(),
        "removed by install and purge: {removed:?}"
    );
    assert!(
        run_dir_before || !Path::new(RUN_DIR).exists(),
        "purge left {RUN_DIR}"
    );
    let left: Vec<_> = new_paths
        .iter()
        .filter(|p| std::fs::symlink_metadata(p).is_ok())
        .collect();
    assert!(
        left.is_empty(),
        "the package's files left by purge: {left:?}"
    );
}

/// Split a command line as sh would, for the quoting the quick start uses ('...').
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}
