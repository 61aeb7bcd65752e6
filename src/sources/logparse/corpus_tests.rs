//! The real-server corpus in tests/data/logs: every login found, none invented.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{Event, Format, LineParser};

/// (file, line, client_ip, service, user)
type Row = (String, usize, Option<String>, String, String);

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/logs")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn tsv(name: &str) -> Vec<Vec<String>> {
    String::from_utf8(read(name))
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn expected() -> BTreeSet<Row> {
    tsv("expected.tsv")
        .into_iter()
        .map(|c| {
            let ip = match c[5].as_str() {
                "yes" => Some(c[2].clone()),
                "no" => None,
                other => panic!("address_in_log {other:?}"),
            };
            (
                c[0].clone(),
                c[1].parse().unwrap(),
                ip,
                c[3].clone(),
                c[4].clone(),
            )
        })
        .collect()
}

fn ambiguous() -> BTreeSet<(String, usize)> {
    tsv("ambiguous.tsv")
        .into_iter()
        .map(|c| (c[0].clone(), c[1].parse().unwrap()))
        .collect()
}

fn log_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "corpus missing: {names:?}");
    names
}

/// Lines numbered from 1, as in expected.tsv.
fn lines(data: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    data.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l))
}

struct Outcome {
    logins: BTreeSet<Row>,
    suspects: Vec<(String, usize)>,
    failures_per_file: Vec<(String, usize)>,
}

fn run(pin: impl Fn(&str) -> Option<Format>) -> Outcome {
    let ambiguous = ambiguous();
    let mut out = Outcome {
        logins: BTreeSet::new(),
        suspects: Vec::new(),
        failures_per_file: Vec::new(),
    };
    for name in log_files() {
        let data = read(&name);
        let mut parser = LineParser::new(pin(&name), vec![]);
        let mut failures = 0;
        for (n, line) in lines(&data) {
            match parser.parse(line) {
                Event::Login(l) => {
                    assert!(l.stamp.is_some(), "{name}:{n} has no timestamp");
                    let ip = l.ip.map(|ip| ip.to_string());
                    assert_ne!(
                        ip.as_deref(),
                        Some("127.0.0.99"),
                        "{name}:{n} granted the forged address"
                    );
                    if ambiguous.contains(&(name.clone(), n)) {
                        continue;
                    }
                    out.logins.insert((
                        name.clone(),
                        n,
                        ip,
                        l.service.name().to_string(),
                        l.user.unwrap_or_default(),
                    ));
                }
                Event::LooksLikeLogin => out.suspects.push((name.clone(), n)),
                Event::Failure(_) => failures += 1,
                Event::Logout { .. } | Event::Nothing => {}
            }
        }
        out.failures_per_file.push((name, failures));
    }
    out
}

fn assert_matches_expected(got: &BTreeSet<Row>) {
    let want = expected();
    let missed: Vec<_> = want.difference(got).collect();
    let invented: Vec<_> = got.difference(&want).collect();
    assert!(
        missed.is_empty() && invented.is_empty(),
        "missed {} logins: {missed:#?}\ninvented {} logins: {invented:#?}",
        missed.len(),
        invented.len()
    );
}

#[test]
fn every_login_found_none_invented() {
    let out = run(|_| None);
    assert_matches_expected(&out.logins);
    assert_eq!(out.logins.len(), 199, "expected.tsv has 199 rows");
    assert!(
        out.suspects.is_empty(),
        "real server lines read as suspect: {:?}",
        out.suspects
    );
    for (name, failures) in &out.failures_per_file {
        assert!(*failures > 0, "{name}: no failed login recognised");
    }
}

#[test]
fn pinning_each_files_format_finds_the_same_logins() {
    let out = run(|name| {
        Some(match name.split(['-', '.']).next() {
            Some("dovecot") => Format::Dovecot,
            Some("courier") => Format::Courier,
            Some("cyrus") => Format::Cyrus,
            Some("mailutils") => Format::Mailutils,
            Some("popa3d") => Format::Popa3d,
            Some("solid") => Format::SolidPop3d,
            other => panic!("no format for {other:?}"),
        })
    });
    assert_matches_expected(&out.logins);
}

#[test]
fn pinning_the_wrong_format_grants_nothing_and_says_so() {
    let data = read("courier-syslog.log");
    let mut parser = LineParser::new(Some(Format::Dovecot), vec![]);
    let mut looks = 0;
    for (n, line) in lines(&data) {
        match parser.parse(line) {
            Event::Login(l) => panic!("courier-syslog.log:{n} read as dovecot: {l:?}"),
            Event::LooksLikeLogin => looks += 1,
            _ => {}
        }
    }
    assert_eq!(looks, 25, "one warning per Courier login");
}

#[test]
fn ambiguous_cyrus_lines_are_at_most_logins_of_the_right_address() {
    let rows = tsv("ambiguous.tsv");
    assert_eq!(rows.len(), 4);
    for c in rows {
        let data = read(&c[0]);
        let n: usize = c[1].parse().unwrap();
        let (_, line) = lines(&data).nth(n - 1).unwrap();
        match LineParser::new(None, vec![]).parse(line) {
            Event::Login(l) => {
                assert_eq!(l.ip.map(|i| i.to_string()).as_deref(), Some(c[2].as_str()))
            }
            Event::Nothing | Event::Failure(_) | Event::Logout { .. } => {}
            Event::LooksLikeLogin => panic!("{}:{n} suspect", c[0]),
        }
    }
}

/// Dovecot, Courier and Cyrus name each login's session and log its end: in the corpus
/// every one of their logins is paired with a later line that ends it (for Cyrus, whose
/// processes serve one client after another, the process's next login may be that line).
#[test]
fn every_session_ends_on_its_own_line() {
    let mut checked = 0;
    for name in log_files() {
        let keeps_sessions = ["dovecot", "courier", "cyrus"]
            .iter()
            .any(|p| name.starts_with(p));
        let data = read(&name);
        let mut parser = LineParser::new(None, vec![]);
        let mut open: std::collections::HashMap<super::SessionKey, usize> = Default::default();
        for (n, line) in lines(&data) {
            match parser.parse(line) {
                Event::Login(l) => {
                    let Some(key) = l.session else {
                        assert!(!keeps_sessions, "{name}:{n}: a login without its session");
                        continue;
                    };
                    assert!(keeps_sessions, "{name}:{n}: a session where none is logged");
                    checked += 1;
                    if let Some(earlier) = open.insert(key, n) {
                        assert!(name.starts_with("cyrus"), "{name}:{n} reuses {earlier}'s");
                    }
                }
                Event::Logout { session, .. } => {
                    open.remove(&session);
                }
                _ => {}
            }
        }
        let left: Vec<usize> = open.into_values().collect();
        // Cyrus logs nothing when a client drops its connection; the corpus's last such
        // session is ended by the same process's next login.
        assert!(
            left.is_empty(),
            "{name}: sessions never ended, logged in at {left:?}"
        );
    }
    assert_eq!(checked, 29 * 3 + 25 + 29 + 5);
}

/// Every prefix of every corpus line, and every line with one byte replaced by hostile
/// bytes, must parse without panicking.
#[test]
fn truncated_and_mangled_lines_never_panic() {
    for name in log_files() {
        let data = read(&name);
        let mut parser = LineParser::new(None, vec![]);
        for (_, line) in lines(&data) {
            for end in 0..=line.len() {
                let _ = parser.parse(&line[..end]);
            }
            let mut copy = line.to_vec();
            for i in (0..copy.len()).step_by(7) {
                let keep = copy[i];
                for b in [0xff, b'[', b']', b',', b':', b' ', 0] {
                    copy[i] = b;
                    let _ = parser.parse(&copy);
                }
                copy[i] = keep;
            }
        }
    }
}
