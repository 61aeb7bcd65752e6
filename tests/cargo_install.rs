//! `cargo install --path .` into a temporary root gives a working relaylease.
//!
//! A test binary of its own, not a module of `integration`: cargo runs test binaries one after
//! another, and `cargo install` builds into target/ again (without the dev-dependencies'
//! features), replacing target/debug/relaylease while other tests would be running it.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

fn ok(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().expect("run");
    assert!(out.status.success(), "{cmd:?}\n{out:?}");
    out
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

#[test]
#[ignore = "builds the crate again with cargo install (tests/run.sh runs it)"]
fn cargo_install_into_a_temporary_root_gives_a_working_binary() {
    let tmp = tempfile::Builder::new()
        .prefix("relaylease-test")
        .tempdir()
        .unwrap();
    let root = tmp.path().join("root");
    ok(cargo()
        .current_dir(MANIFEST)
        .args([
            "install",
            "--path",
            ".",
            "--debug",
            "--offline",
            "--locked",
            "--root",
        ])
        .arg(&root));
    let bin = root.join("bin/relaylease");
    let version = ok(Command::new(&bin).arg("--version"));
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
    let socket = tmp.path().join("relaylease.sock");
    let with_env = |c: &mut Command| {
        c.env("RELAYLEASE_SOCKET", &socket)
            .env("RELAYLEASE_DB", tmp.path().join("db"));
    };
    let mut daemon = Command::new(&bin);
    daemon
        .arg("daemon")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    with_env(&mut daemon);
    let mut child = daemon.spawn().unwrap();
    let start = Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the daemon answers"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut check = Command::new(&bin);
    check.args(["check", "192.0.2.7"]).stdin(Stdio::null());
    with_env(&mut check);
    let out = check.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "192.0.2.7: no lease\n"
    );
    let mut add = Command::new(&bin);
    add.args(["add", "192.0.2.7"]);
    with_env(&mut add);
    ok(&mut add);
    assert_eq!(check.output().unwrap().status.code(), Some(0));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    assert!(child.wait().unwrap().success());
    ok(cargo()
        .args(["uninstall", "--root"])
        .arg(&root)
        .arg("relaylease"));
    assert!(!Path::new(&bin).exists());
}
