//! Log-line parsers: every built-in format, pinned or detected, plus `--login-pattern`s.
//!
//! Input: one byte of settings, then log lines separated by `\n` fed to one parser in order
//! (popa3d, solid-pop3d and Mailutils join a login to an earlier line).
//! - settings & 0x0f: 0 (or 11..15) detects the format; 1..=10 pins `Format::ALL[n - 1]`;
//! - settings & 0x10: add the site patterns below.
//!
//! Beyond "no panic, no hang", every login's address must stand literally in the log: in its
//! own line, or for the formats that log it on an earlier line, somewhere before.

#![no_main]

use std::net::IpAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use regex::Regex;
use relaylease::lease::canonical;
use relaylease::sources::logparse::{
    Event, Format, LineParser, compile_login_pattern, resolve_stamp,
};

/// Compiled once: compiling per input would be most of the work.
fn patterns() -> &'static [Regex] {
    static P: OnceLock<Vec<Regex>> = OnceLock::new();
    P.get_or_init(|| {
        [
            // Anchored the way the README asks administrators to anchor theirs.
            r"^\S+ \S+ \S+ \S+ teapop\[\d+\]: Successful login for (?P<user>\S+) .* \[(?P<ip>[^]]+)\]$",
            // A sloppy one: the invariant must hold for whatever a site writes.
            r"(?:rip|ip|from)=\[?(?P<ip>[^],\s]*)\]?(?:.*user=(?P<user>\S*))?",
        ]
        .iter()
        .map(|p| compile_login_pattern(p).expect("the fuzz target's own patterns compile"))
        .collect()
    })
}

fn addr_byte(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':' || b == b'.'
}

/// Some run of address characters in `hay` is a textual form of `ip`.
fn appears(hay: &[u8], ip: IpAddr) -> bool {
    (0..hay.len()).any(|i| {
        let run = hay[i..]
            .iter()
            .take(45)
            .take_while(|&&b| addr_byte(b))
            .count();
        (2..=run).any(|len| {
            std::str::from_utf8(&hay[i..i + len])
                .ok()
                .and_then(|s| s.parse::<IpAddr>().ok())
                .is_some_and(|a| canonical(a) == ip)
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&settings, log)) = data.split_first() else {
        return;
    };
    let pinned = match usize::from(settings & 0x0f) {
        n @ 1..=10 => Some(Format::ALL[n - 1]),
        _ => None,
    };
    let custom = settings & 0x10 != 0;
    let mut parser = LineParser::new(
        pinned,
        if custom {
            patterns().to_vec()
        } else {
            Vec::new()
        },
    );
    let mut start = 0;
    for line in log.split(|&b| b == b'\n') {
        let end = start + line.len();
        let event = parser.parse(line);
        if let Event::Login(login) = &event {
            match login.format {
                Format::Custom => assert!(custom, "a custom login without patterns: {login:?}"),
                f => assert!(
                    pinned.is_none_or(|p| p == f),
                    "{f} login in a log pinned to {pinned:?}"
                ),
            }
            if let Some(user) = &login.user {
                assert!(!user.is_empty(), "an empty user is no user: {login:?}");
            }
            if let Some(ip) = login.ip {
                assert_eq!(ip, canonical(ip), "not canonical: {login:?}");
                // Only these formats take the address from an earlier line.
                let joined = matches!(
                    login.format,
                    Format::Popa3d | Format::SolidPop3d | Format::Mailutils
                );
                let seen = if joined { &log[..end] } else { line };
                assert!(
                    appears(seen, ip),
                    "{ip} is nowhere in {:?}: {login:?}",
                    String::from_utf8_lossy(seen)
                );
            }
            if let Some(stamp) = &login.stamp {
                // Clock readings from 1970 to the end of year 9999: `now` is the wall clock.
                for now in [0, 1_795_321_822_937, 253_402_300_799_999] {
                    let _ = resolve_stamp(stamp, now);
                }
            }
        }
        start = end + 1;
    }
});
