//! Exim asking relaylease through `${readsocket}` with contrib/exim/relaylease.acl: Debian's
//! real exim4-daemon-light (unpacked by tests/run.sh beside the tests, since it conflicts
//! with Postfix as the system MTA) runs as a daemon on a loopback port (`exim -bdf`), and
//! swaks asks it to relay from distinct loopback addresses. Nothing is delivered: swaks
//! stops after RCPT, and the configuration has no routers.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::daemon_harness::Env;
use crate::mail_rig::{Dovecot, SmtpDaemon, relay_follows_leases};

/// A recipient in the local domain, which the ACL accepts before contrib's clause.
const LOCAL_RCPT: &str = "c@rig.test";

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
local_interfaces = 127.0.0.1
keep_environment =
tls_advertise_hosts =
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

/// `exim -bdf` (a daemon in the foreground) with the test's configuration on 127.0.0.1:PORT.
fn start_exim(env: &Env, exim: &Path, conf: &Path) -> SmtpDaemon {
    let pid = env.path("exim/exim.pid");
    SmtpDaemon::start("exim", "ESMTP Exim", &env.path("exim/output"), |port| {
        let mut cmd = Command::new(exim);
        cmd.arg("-C").arg(conf).arg("-bdf");
        cmd.arg("-oX").arg(port.to_string()).arg("-oP").arg(&pid);
        cmd
    })
}

#[test]
#[ignore = "needs root and Debian's exim4-daemon-light, dovecot, swaks (tests/run.sh installs and runs them)"]
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
    let exim = start_exim(&env, &exim, &conf);
    // With relaylease stopped, readsocket fails and the clause says NO: relay refused.
    relay_follows_leases(
        &exim,
        &dovecot,
        LOCAL_RCPT,
        (IpAddr::from([127, 0, 0, 91]), IpAddr::from([127, 0, 0, 92])),
        || assert_eq!(d.stop(), 0),
    );
}
