//! The `--tcprules-base` parser and the cdb built from it.
//!
//! Invariants: every accepted rule set builds; each key reads back from the cdb as the data of
//! its first rule (tcpserver's first-record-wins); a lease never replaces a static rule for the
//! same key; a rule's own tcprules line parses back to that rule; and reading the raw input as
//! a (damaged) cdb never panics.

#![no_main]

use std::collections::HashSet;

use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use relaylease::answers::cdb;
use relaylease::answers::tcprules::{build_rules, lookup, parse_rules};

fn leases() -> Vec<IpNet> {
    [
        "192.0.2.7/32",
        "10.1.0.0/23",
        "2001:db8:1:2::/64",
        "2001:db8::7/128",
    ]
    .iter()
    .map(|s| s.parse().expect("a valid lease"))
    .collect()
}

fuzz_target!(|data: &[u8]| {
    let _ = cdb::get(data, b"192.0.2.7");
    let _ = lookup(data, "2001:db8:1:2::5");

    let Ok(rules) = parse_rules(data) else {
        return;
    };
    for with_leases in [false, true] {
        let nets = if with_leases { leases() } else { Vec::new() };
        let built = build_rules(&rules, &nets, &[]).expect("accepted rules build");
        let mut seen = HashSet::new();
        for rule in &rules {
            if seen.insert(rule.key.clone()) {
                assert_eq!(
                    cdb::get(&built, &rule.key),
                    Some(rule.data().as_slice()),
                    "key {:?} does not read back as its first rule",
                    String::from_utf8_lossy(&rule.key)
                );
            }
        }
        if with_leases {
            // Every lease key is in the cdb, as the static rule when one has that key.
            for key in [
                "192.0.2.7",
                "10.1.0.",
                "10.1.1.",
                "2001:db8:1:2:",
                "2001:db8::7",
            ] {
                let got = cdb::get(&built, key.as_bytes()).expect("each lease key is written");
                if !seen.contains(key.as_bytes()) {
                    assert_eq!(got, b"+RELAYCLIENT=\0", "{key}");
                }
            }
        }
    }
    for rule in &rules {
        if let Ok(line) = rule.to_line() {
            let back = parse_rules(&line).expect("a rule's own line parses");
            assert_eq!(
                back,
                vec![rule.clone()],
                "{:?}",
                String::from_utf8_lossy(&line)
            );
        }
    }
});
