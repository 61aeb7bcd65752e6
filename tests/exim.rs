//! Exim asking relaylease through `${readsocket}` with contrib/exim/relaylease.acl: Debian's
//! real exim4-daemon-light (unpacked by tests/run.sh beside the tests, since it conflicts
//! with Postfix as the system MTA) runs the ACL in host-checking mode (`exim -bh ADDR`), a
//! whole SMTP session from that client address, with nothing delivered.

mod common;
mod support;

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Env, eventually};
use support::{Dovecot, PASSWORD, pop3_login};

/// Where tests/run.sh unpacks Debian's exim4-daemon-light (or `RELAYLEASE_TEST_EXIM`).
fn exim_binary() -> PathBuf {
    let path = std::env::var_os("RELAYLEASE_TEST_EXIM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-programs/exim4/usr/sbin/exim4")
        });
    assert!(
        path.exists(),
        "{} is missing: ./tests/run.sh unpacks Debian's exim4-daemon-light there",
        path.display()
    );
    assert!(
        nix::unistd::User::from_name("Debian-exim")
            .ok()
            .flatten()
            .is_some(),
        "user Debian-exim is missing (Debian's exim binary runs as it): ./tests/run.sh creates it"
    );
    path
}

/// A minimal Exim configuration whose RCPT ACL is contrib's clause, then a refusal.
fn exim_config(env: &Env, socket: &Path) -> PathBuf {
    let clause = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/exim/relaylease.acl"
    ))
    .unwrap()
    .replace(
        "/run/relaylease/relaylease.sock",
        &socket.display().to_string(),
    );
    assert!(clause.contains("readsocket"), "{clause}");
    let dir = env.path("exim");
    for sub in ["spool", "log"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let exim = nix::unistd::User::from_name("Debian-exim")
        .unwrap()
        .unwrap();
    for sub in ["", "spool", "log"] {
        nix::unistd::chown(&dir.join(sub), Some(exim.uid), Some(exim.gid)).unwrap();
    }
    let conf = dir.join("exim.conf");
    std::fs::write(
        &conf,
        format!(
            "primary_hostname = rig.test
domainlist local_domains = rig.test
acl_smtp_rcpt = acl_check_rcpt
exim_user = Debian-exim
exim_group = Debian-exim
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
begin acl
acl_check_rcpt:
  accept domains = +local_domains
{clause}
  deny message = relay not permitted
begin routers
begin transports
",
            d = dir.display()
        ),
    )
    .unwrap();
    conf
}

/// One SMTP session from `from` in Exim's host-checking mode; the code of each RCPT reply.
fn rcpt_codes(exim: &Path, conf: &Path, from: IpAddr) -> (u16, u16) {
    let mut child = Command::new(exim)
        .args(["-C", conf.to_str().unwrap(), "-bh", &from.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run exim4");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"EHLO client.rig.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@remote.example>\r\nRCPT TO:<c@rig.test>\r\nQUIT\r\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let codes: Vec<u16> = text
        .lines()
        .filter(|l| l.len() >= 4 && l.as_bytes()[3] == b' ')
        .filter_map(|l| l[..3].parse().ok())
        .collect();
    // 220 greeting, 250 EHLO, 250 MAIL, then the two RCPTs, then 221.
    assert!(
        codes.len() >= 6,
        "exim -bh said:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (codes[3], codes[4])
}

#[test]
fn exim_relays_after_a_real_login_and_fails_closed_without_relaylease() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test runs Exim and must run as root"
    );
    let exim = exim_binary();
    let env = Env::new();
    let dovecot = Dovecot::start(env.dir.path());
    let d = env.start(&[
        "--watch",
        dovecot.log_path().to_str().unwrap(),
        "--socket-group",
        "Debian-exim",
        "--expire",
        "3s",
    ]);
    let conf = exim_config(&env, &env.socket());
    let who = IpAddr::from([127, 0, 0, 91]);
    let failed = IpAddr::from([127, 0, 0, 92]);

    // Before a login: relay refused, local mail accepted.
    assert_eq!(rcpt_codes(&exim, &conf, who), (550, 250));
    // After a real POP3 login to Dovecot: relay accepted.
    assert!(pop3_login(who, dovecot.pop3_port(), "alice", PASSWORD));
    assert!(eventually(Duration::from_secs(3), || rcpt_codes(
        &exim, &conf, who
    )
    .0 == 250));
    // A failed login opens nothing.
    assert!(!pop3_login(failed, dovecot.pop3_port(), "alice", "wrong"));
    assert_eq!(rcpt_codes(&exim, &conf, failed), (550, 250));
    // After the window the relay closes again.
    assert!(
        eventually(Duration::from_secs(10), || rcpt_codes(&exim, &conf, who).0
            == 550),
        "relay still open after expiry"
    );

    // relaylease stopped: readsocket fails, the clause says NO, relay refused, local mail flows.
    assert!(pop3_login(who, dovecot.pop3_port(), "alice", PASSWORD));
    assert!(eventually(Duration::from_secs(3), || rcpt_codes(
        &exim, &conf, who
    )
    .0 == 250));
    assert_eq!(d.stop(), 0);
    assert_eq!(rcpt_codes(&exim, &conf, who), (550, 250));
}
