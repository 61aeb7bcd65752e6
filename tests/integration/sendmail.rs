//! Sendmail asking relaylease's socketmap with contrib/sendmail/relaylease.mc: Debian's real
//! sendmail (sendmail-bin, sendmail-base and sendmail-cf, unpacked by tests/run.sh beside the
//! tests, since sendmail conflicts with Postfix as the system MTA) runs as a daemon on a
//! loopback port with a sendmail.cf that m4 builds from the unpacked sendmail-cf files and
//! contrib's snippet, and swaks asks it to relay from distinct loopback addresses.
//!
//! Nothing leaves the machine: swaks stops after RCPT, so no message is ever queued, and the
//! configuration would only queue one anyway (DeliveryMode=queue, no queue runner).

use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::daemon_harness::Env;
use crate::mail_rig::{Dovecot, REMOTE_RCPT, SmtpDaemon, relay_follows_leases, swaks_rcpt};

/// A local recipient: $j (rig.test) is a local domain, and root exists on every system, so
/// sendmail accepts it from anyone (and would only queue it).
const LOCAL_RCPT: &str = "root@rig.test";

/// Where tests/run.sh unpacks Debian's sendmail packages (or `RELAYLEASE_TEST_SENDMAIL`).
fn sendmail_root() -> PathBuf {
    let root = std::env::var_os("RELAYLEASE_TEST_SENDMAIL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-programs/sendmail")
        });
    for part in [
        "usr/libexec/sendmail/sendmail",
        "usr/share/sendmail/cf/m4/cf.m4",
    ] {
        assert!(
            root.join(part).exists(),
            "{} is missing: ./tests/run.sh unpacks Debian's sendmail-bin and sendmail-cf there",
            root.join(part).display()
        );
    }
    root
}

/// sendmail.cf for a daemon on 127.0.0.1:`port`, built by m4 from the unpacked sendmail-cf
/// files, with contrib's snippet (pointed at `socket`) included last.
///
/// - `confDOMAIN_NAME`: $j, the name in the greeting, and so a local domain.
/// - queue directory and pid file in `dir`; `DeliveryMode=queue` and no `-q`: a message
///   would stay in the queue.
/// - a service switch with files only, `nocanonify` and `accept_unresolvable_domains`:
///   no DNS lookup decides (or delays) anything.
/// - `DontBlameSendmail=TrustStickyBit`: the test's socket lies below /tmp, world-writable
///   but sticky, and sendmail refuses such a socket path otherwise.
/// - no aliases file: root@rig.test needs none.
fn sendmail_cf(root: &Path, dir: &Path, socket: &Path, port: u16) -> PathBuf {
    let snippet = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/sendmail/relaylease.mc"
    ))
    .unwrap();
    assert!(snippet.contains("socket"), "{snippet}");
    let snippet = snippet.replace(
        "unix:/run/relaylease/socketmap.sock",
        &format!("unix:{}", socket.display()),
    );
    std::fs::write(dir.join("relaylease.mc"), snippet).unwrap();
    std::fs::write(dir.join("service.switch"), "hosts files\naliases files\n").unwrap();
    let d = dir.display();
    let mc = format!(
        "divert(-1)
Written by tests/sendmail.rs; the settings are explained there.
divert(0)dnl
include(`{cf}/m4/cf.m4')dnl
VERSIONID(`relaylease test rig')dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `rig.test')dnl
define(`QUEUE_DIR', `{d}/queue')dnl
define(`confPID_FILE', `{d}/sendmail.pid')dnl
define(`confDELIVERY_MODE', `queue')dnl
define(`confSERVICE_SWITCH_FILE', `{d}/service.switch')dnl
define(`confDONT_BLAME_SENDMAIL', `TrustStickyBit')dnl
define(`ALIAS_FILE', `')dnl
FEATURE(`nocanonify')dnl
FEATURE(`accept_unresolvable_domains')dnl
DAEMON_OPTIONS(`Port={port},Addr=127.0.0.1,Name=MTA')dnl
MAILER(`local')dnl
MAILER(`smtp')dnl
include(`{d}/relaylease.mc')dnl
",
        cf = root.join("usr/share/sendmail/cf").display(),
    );
    let mc_path = dir.join("sendmail.mc");
    std::fs::write(&mc_path, mc).unwrap();
    let out = Command::new("m4")
        .arg(&mc_path)
        .output()
        .expect("run m4 (Debian package m4; ./tests/run.sh installs it)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "m4 {}: {}",
        mc_path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let cf = dir.join("sendmail.cf");
    std::fs::write(&cf, &out.stdout).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\nKrelaylease socket ") && text.contains("\nSLocal_check_rcpt\nR"),
        "contrib's map and ruleset are in {}",
        cf.display()
    );
    cf
}

/// `sendmail -bD` (a daemon in the foreground) with the test's sendmail.cf.
///
/// Its own UTS namespace with a qualified host name: sendmail qualifies the host name before
/// it reads any configuration, and when it cannot (this machine is plain `vm`) it sleeps a
/// minute ("My unqualified host name ... sleeping for retry"). The namespace changes the
/// name for sendmail alone.
fn start_sendmail(env: &Env, socket: &Path) -> SmtpDaemon {
    let root = sendmail_root();
    let dir = env.path("sendmail");
    std::fs::create_dir_all(dir.join("queue")).unwrap();
    std::fs::set_permissions(
        dir.join("queue"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let binary = root.join("usr/libexec/sendmail/sendmail");
    SmtpDaemon::start("sendmail", "ESMTP Sendmail", &dir.join("output"), |port| {
        let cf = sendmail_cf(&root, &dir, socket, port);
        let mut cmd = Command::new(&binary);
        cmd.arg("-C").arg(cf).arg("-bD");
        // SAFETY: only async-signal-safe system calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                const NAME: &[u8] = b"sendmail.rig.test";
                if libc::unshare(libc::CLONE_NEWUTS) != 0
                    || libc::sethostname(NAME.as_ptr().cast(), NAME.len()) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    })
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

#[test]
#[ignore = "needs root and Debian's sendmail-bin, dovecot, swaks (tests/run.sh installs and runs them)"]
fn sendmail_relays_after_a_real_login_and_fails_closed_without_relaylease() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test runs sendmail as a daemon and must run as root"
    );
    sendmail_root();
    let env = Env::new();
    let dovecot = Dovecot::start(env.dir.path());
    let sock = env.path("socketmap.sock");
    let socketmap = format!("unix:{}", sock.display());
    let watch = dovecot.log_path().to_str().unwrap();
    let d = env.start(&[
        "--watch",
        watch,
        "--socketmap",
        &socketmap,
        "--expire",
        "3s",
    ]);
    let sendmail = start_sendmail(&env, &sock);
    let (who, failed) = (ip(101), ip(102));
    // With relaylease stopped, the lookup fails (a TMPF tag): no relay.
    relay_follows_leases(&sendmail, &dovecot, LOCAL_RCPT, (who, failed), || {
        assert_eq!(d.stop(), 0)
    });
    let port = sendmail.port();
    let relay = |from| swaks_rcpt(from, port, REMOTE_RCPT);
    let local = |from| swaks_rcpt(from, port, LOCAL_RCPT);

    // A map the daemon does not serve (PERM replies) is no relay either, lease or not.
    let other = env.start(&["--socketmap", &socketmap, "--socketmap-name", "other"]);
    assert_eq!(env.run(&["add", &who.to_string()]).code, 0);
    assert_eq!(relay(who), 550, "relay open on a PERM reply");
    assert_eq!(local(who), 250);
    assert_eq!(other.stop(), 0);

    // And sendmail asks again once relaylease is back: the refusals above were the outage.
    let _d = env.start(&["--socketmap", &socketmap]);
    assert_eq!(env.run(&["add", &who.to_string()]).code, 0);
    assert_eq!(relay(who), 250);
}
