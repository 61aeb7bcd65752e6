//! The files in contrib/ that administrators copy must work as shipped: scripts parse, the
//! sample rules are what tcprules accepts, every example in the defaults file is a valid
//! daemon command line, and the Sendmail map asks for what the daemon serves.

use std::process::Command;

use clap::Parser;
use relaylease::cli::{Cli, Command as Sub};

const CONTRIB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib");

#[test]
fn shell_scripts_parse() {
    for script in [
        "qmail/smtpd-cdb.run",
        "qmail/smtpd-wrap.run",
        "qmail/pop3d.run",
        "dovecot/relaylease-postlogin",
    ] {
        let path = format!("{CONTRIB}/{script}");
        let out = Command::new("sh").arg("-n").arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_sample_base_rules_build_the_same_cdb_as_tcprules() {
    let path = format!("{CONTRIB}/qmail/tcp.smtp");
    let rules = relaylease::answers::tcprules_writer::read_base(std::path::Path::new(&path))
        .unwrap_or_else(|e| panic!("{e}"));
    let ours = relaylease::answers::tcprules::build_rules(&rules, &[], &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cdb, tmp) = (dir.path().join("t.cdb"), dir.path().join("t.tmp"));
    let out = Command::new("tcprules")
        .arg(&cdb)
        .arg(&tmp)
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .expect("tcprules (Debian package ucspi-tcp-ipv6) must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ours, std::fs::read(&cdb).unwrap());
}

#[test]
fn every_example_in_the_defaults_file_is_a_valid_daemon_command_line() {
    let text = std::fs::read_to_string(format!("{CONTRIB}/default/relaylease")).unwrap();
    let mut seen = 0;
    for line in text.lines() {
        let line = line.trim_start_matches('#');
        let Some(opts) = line.strip_prefix("RELAYLEASE_OPTS=") else {
            continue;
        };
        seen += 1;
        let opts = opts.trim_matches('"');
        let mut argv = vec!["relaylease", "daemon"];
        argv.extend(opts.split_whitespace());
        let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{opts}: {e}"));
        let Sub::Daemon(args) = cli.command else {
            panic!("{opts}: not the daemon");
        };
        let paths = relaylease::config::Paths::resolve(None, None);
        if let Err(e) = relaylease::config::DaemonConfig::from_args(&args, paths) {
            // Files, users and groups named in examples need not exist on this machine;
            // everything else must be valid.
            let msg = e.to_string();
            assert!(
                msg.contains("cannot read")
                    || msg.contains("unknown group 'relaylease'")
                    || msg.contains("unknown group 'nofiles'"),
                "{opts}: {msg}"
            );
        }
    }
    assert!(seen >= 2, "the defaults file shows examples");
}

#[test]
fn the_sendmail_map_asks_for_the_daemons_default_map_name_on_the_documented_socket() {
    let text = std::fs::read_to_string(format!("{CONTRIB}/sendmail/relaylease.mc")).unwrap();
    let k_lines: Vec<&str> = text.lines().filter(|l| l.starts_with('K')).collect();
    assert_eq!(k_lines.len(), 1, "{text}");
    let words: Vec<&str> = k_lines[0].split_whitespace().collect();
    let cli = Cli::try_parse_from(["relaylease", "daemon"]).unwrap();
    let Sub::Daemon(args) = cli.command else {
        panic!("not the daemon");
    };
    // Sendmail sends the K line's map name in every request.
    assert_eq!(words[0], format!("K{}", args.socketmap_name), "{text}");
    assert_eq!(words[1], "socket", "{text}");
    assert_eq!(
        words.last(),
        Some(&"unix:/run/relaylease/socketmap.sock"),
        "the socket the README and the Postfix snippet use: {text}"
    );
    // The ruleset looks that map up with the client's address.
    let lookup = format!("$({} $&{{client_addr}}", args.socketmap_name);
    assert!(text.contains(&lookup), "{text}");
    assert!(text.contains("\nSLocal_check_rcpt\n"), "{text}");
}
