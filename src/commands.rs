//! The shell commands: each sends one request to the daemon, or carries it out on the
//! database directly when no daemon is running, and prints the reply for a person.

use std::io::Write;
use std::time::Duration;

use crate::config::Paths;
use crate::control::client::{CallError, call};
use crate::control::handle;
use crate::control::proto::{Op, Reply};
use crate::daemon::open_store;
use crate::error::{Error, Result};
use crate::lease::{
    Lease, Millis, now_ms, parse_duration, parse_ip, parse_key, show_key, show_remaining,
};
use crate::store::{Leases, StatsSnapshot};

/// How long a command waits for the daemon.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Refuse bad addresses and durations before touching the daemon or the database.
fn validate(op: &Op) -> Result<()> {
    match op {
        Op::Check { addr } | Op::Del { addr } => parse_key(addr, 128).map(|_| ()),
        Op::Login { addr, .. } => parse_ip(addr).map(|_| ()),
        Op::Add { addr, duration } => {
            parse_ip(addr)?;
            duration
                .as_deref()
                .map(parse_duration)
                .transpose()
                .map(|_| ())
        }
        Op::Window { set } => set.as_deref().map(parse_duration).transpose().map(|_| ()),
        Op::List | Op::Flush | Op::Stats => Ok(()),
    }
}

/// Send `op` to the daemon; with none running, carry it out on the database.
pub fn execute(paths: &Paths, op: Op) -> Result<Reply> {
    validate(&op)?;
    match call(&paths.socket, op.clone(), TIMEOUT) {
        Ok(resp) => Ok(resp.reply),
        Err(CallError::Failed(e)) => Err(e),
        Err(CallError::NoDaemon(_)) => {
            eprintln!(
                "relaylease: no daemon on {}; working on the database {} directly",
                paths.socket.display(),
                paths.db.display()
            );
            let backend = open_store(&paths.db)?;
            refuse_shared(&backend)?;
            let rules = crate::store::load_rules(&backend);
            let now = now_ms();
            let leases = Leases::open(Box::new(backend), rules, now)?;
            let reply = handle(&leases, op, now);
            leases.sync()?;
            Ok(reply)
        }
    }
}

/// A host whose daemon keeps leases in Redis has none in its database: working there
/// would show nothing, and change nothing any host answers from.
fn refuse_shared(backend: &dyn crate::store::Backend) -> Result<()> {
    match backend.get_meta(crate::store::STORE_META)? {
        Some(v) if v != crate::daemon::LOCAL_STORE => Err(Error::invalid(format!(
            "the daemon keeps leases in Redis ({}): start it (or use a host where it runs)",
            String::from_utf8_lossy(&v)
        ))),
        _ => Ok(()),
    }
}

fn fail(reply: Reply) -> Error {
    match reply {
        Reply::Error { error } => Error::Remote(error),
        other => Error::Remote(format!("unexpected reply from the daemon: {other:?}")),
    }
}

/// `HH:MM:SS` in local time.
fn local_time(ms: Millis) -> String {
    let t = (ms / 1000) as libc::time_t;
    // SAFETY: localtime_r only writes into the tm we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok {
        format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
    } else {
        format!("@{}", ms / 1000)
    }
}

fn show_source(s: &str) -> String {
    match s {
        crate::lease::SOURCE_MANUAL => "manual add".into(),
        other => other.to_string(),
    }
}

pub fn describe_lease(addr: &str, l: &Lease, now: Millis) -> String {
    let who = match &l.user {
        Some(u) => format!("last login {u} via {}", show_source(&l.source)),
        None => format!("via {}", show_source(&l.source)),
    };
    format!(
        "{addr}: lease until {} ({} left), {who}",
        local_time(l.deadline),
        show_remaining(l.deadline, now)
    )
}

/// `check`: exit 0 allowed, 1 not.
pub fn check(paths: &Paths, addr: String) -> Result<i32> {
    match execute(paths, Op::Check { addr })? {
        Reply::Check {
            addr,
            allowed,
            now,
            lease,
            static_net,
        } => {
            let line = match (lease, static_net) {
                (Some(l), _) => describe_lease(&addr, &l, now),
                (None, Some(n)) => format!("{addr}: static --allow {n}"),
                (None, None) => format!("{addr}: no lease"),
            };
            println!("{line}");
            Ok(if allowed { 0 } else { 1 })
        }
        other => Err(fail(other)),
    }
}

pub fn list(paths: &Paths, json: bool) -> Result<i32> {
    let (now, leases) = match execute(paths, Op::List)? {
        Reply::List { now, leases } => (now, leases),
        other => return Err(fail(other)),
    };
    let mut out = std::io::stdout().lock();
    if json {
        let v = serde_json::json!({ "now": now, "leases": leases });
        let _ = writeln!(out, "{v}");
        return Ok(0);
    }
    let rows: Vec<[String; 5]> = leases
        .iter()
        .map(|l| {
            [
                show_key(&l.net),
                show_remaining(l.deadline, now),
                l.user.clone().unwrap_or_else(|| "-".into()),
                show_source(&l.source),
                l.logins.to_string(),
            ]
        })
        .collect();
    let head = ["ADDRESS", "EXPIRES IN", "USER", "SOURCE", "LOGINS"].map(String::from);
    let mut width = head.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&head).chain(rows.iter()) {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3]
        );
    }
    if rows.is_empty() {
        let _ = writeln!(out, "(no leases)");
    }
    Ok(0)
}

pub fn add(paths: &Paths, addr: String, duration: Option<String>) -> Result<i32> {
    match execute(paths, Op::Add { addr, duration })? {
        Reply::Added { lease } => {
            println!(
                "{}",
                describe_lease(&show_key(&lease.net), &lease, now_ms())
            );
            Ok(0)
        }
        other => Err(fail(other)),
    }
}

/// `del`: exit 0 when a lease was removed, 1 when there was none.
pub fn del(paths: &Paths, addr: String) -> Result<i32> {
    match execute(paths, Op::Del { addr: addr.clone() })? {
        Reply::Deleted { lease: Some(l) } => {
            println!("{}: lease deleted", show_key(&l.net));
            Ok(0)
        }
        Reply::Deleted { lease: None } => {
            println!("{addr}: no lease");
            Ok(1)
        }
        other => Err(fail(other)),
    }
}

/// `window [DURATION]`: show or change the expiry window of the running daemon.
pub fn window(paths: &Paths, set: Option<String>) -> Result<i32> {
    let changed = set.is_some();
    match execute(paths, Op::Window { set })? {
        Reply::Window { window_ms } => {
            let w = humantime::format_duration(std::time::Duration::from_millis(window_ms));
            if changed {
                println!(
                    "expiry window now {w} for new logins (existing leases keep their deadlines)"
                );
            } else {
                println!("expiry window {w}");
            }
            Ok(0)
        }
        other => Err(fail(other)),
    }
}

pub fn flush(paths: &Paths) -> Result<i32> {
    match execute(paths, Op::Flush)? {
        Reply::Flushed { count } => {
            println!("{count} leases deleted");
            Ok(0)
        }
        other => Err(fail(other)),
    }
}

pub fn show_stats(s: &StatsSnapshot) -> String {
    let mut out = format!(
        "leases active: {}\nsessions open: {}\ngranted: {}\nrenewed: {}\nrefused: {}\nexpired: {}\ndeleted: {}\npolicy OK: {}\npolicy DUNNO: {}\nerrors: {}\nforged logins refused: {}\n",
        s.leases_active,
        s.sessions_open,
        s.granted,
        s.renewed,
        s.refused,
        s.expired,
        s.deleted,
        s.policy_ok,
        s.policy_dunno,
        s.errors,
        s.forged
    );
    for (src, n) in &s.logins_by_source {
        out.push_str(&format!("logins from {src}: {n}\n"));
    }
    out
}

/// Prometheus text exposition format (for node_exporter's textfile collector).
pub fn prometheus(s: &StatsSnapshot) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, u64)>| {
        out.push_str(&format!(
            "# HELP relaylease_{name} {help}\n# TYPE relaylease_{name} {kind}\n"
        ));
        for (labels, v) in lines {
            out.push_str(&format!("relaylease_{name}{labels} {v}\n"));
        }
    };
    let one = |v: u64| vec![(String::new(), v)];
    metric(
        "leases_active",
        "gauge",
        "Leases that currently allow relaying.",
        one(s.leases_active),
    );
    metric(
        "sessions_open",
        "gauge",
        "Open POP3/IMAP sessions keeping their leases.",
        one(s.sessions_open),
    );
    let logins = s
        .logins_by_source
        .iter()
        .map(|(src, n)| {
            let src = src
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            (format!("{{source=\"{src}\"}}"), *n)
        })
        .collect();
    metric(
        "logins_total",
        "counter",
        "Successful logins seen, by source.",
        logins,
    );
    metric(
        "lease_events_total",
        "counter",
        "Leases granted, renewed, refused, expired and deleted.",
        vec![
            ("{event=\"granted\"}".into(), s.granted),
            ("{event=\"renewed\"}".into(), s.renewed),
            ("{event=\"refused\"}".into(), s.refused),
            ("{event=\"expired\"}".into(), s.expired),
            ("{event=\"deleted\"}".into(), s.deleted),
        ],
    );
    metric(
        "policy_answers_total",
        "counter",
        "Postfix policy answers.",
        vec![
            ("{action=\"OK\"}".into(), s.policy_ok),
            ("{action=\"DUNNO\"}".into(), s.policy_dunno),
        ],
    );
    metric(
        "errors_total",
        "counter",
        "Errors (store, log, protocol).",
        one(s.errors),
    );
    metric(
        "forged_logins_total",
        "counter",
        "Journal login lines refused because the mail server did not write them.",
        one(s.forged),
    );
    out
}

pub fn stats(paths: &Paths, json: bool, prom: bool) -> Result<i32> {
    match execute(paths, Op::Stats)? {
        Reply::Stats { stats } => {
            if prom {
                print!("{}", prometheus(&stats));
            } else if json {
                println!("{}", serde_json::to_string(&stats).unwrap_or_default());
            } else {
                print!("{}", show_stats(&stats));
            }
            Ok(0)
        }
        other => Err(fail(other)),
    }
}

/// `parse-log`: a dry run over real logs. Prints each login and a summary; touches nothing.
pub fn parse_log(
    files: &[std::path::PathBuf],
    format: Option<&str>,
    patterns: &[String],
    json: bool,
) -> Result<i32> {
    use crate::sources::logparse::{Event, Format, LineParser, compile_login_pattern};
    use std::io::BufRead;

    let pinned: Option<Format> = format.map(str::parse).transpose()?;
    let patterns = patterns
        .iter()
        .map(|p| compile_login_pattern(p))
        .collect::<Result<Vec<_>>>()?;
    let stdin = [std::path::PathBuf::from("-")];
    let files = if files.is_empty() { &stdin[..] } else { files };
    let (mut lines, mut logins, mut no_addr, mut failures, mut unmatched, mut ends) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut out = std::io::stdout().lock();
    for file in files {
        let name = file.display().to_string();
        let reader: Box<dyn BufRead> = if name == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::io::BufReader::new(
                std::fs::File::open(file).map_err(|e| Error::io("open", file, e))?,
            ))
        };
        let mut parser = LineParser::new(pinned, patterns.clone());
        for (i, line) in reader.split(b'\n').enumerate() {
            let line = line.map_err(|e| Error::io("read", file, e))?;
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            lines += 1;
            match parser.parse(line) {
                Event::Login(ev) => {
                    logins += 1;
                    let addr = ev.ip.map(|ip| ip.to_string());
                    if addr.is_none() {
                        no_addr += 1;
                    }
                    let place = format!("{name}:{}", i + 1);
                    let _ = if json {
                        writeln!(
                            out,
                            "{}",
                            serde_json::json!({
                                "type": "login",
                                "address": addr,
                                "user": ev.user,
                                "service": ev.service.name(),
                                "format": ev.format.name(),
                                "session": ev.session.map(|s| s.to_string()),
                                "file": name,
                                "line": i + 1,
                            })
                        )
                    } else {
                        writeln!(
                            out,
                            "{}\t{}\t{}\t{}\t{place}",
                            addr.as_deref().unwrap_or("(no address)"),
                            ev.user.as_deref().unwrap_or("-"),
                            ev.service.name(),
                            ev.format.name()
                        )
                    };
                }
                Event::Failure(_) => failures += 1,
                Event::LooksLikeLogin => unmatched += 1,
                Event::Logout { session, .. } => {
                    ends += 1;
                    if json {
                        let _ = writeln!(
                            out,
                            "{}",
                            serde_json::json!({
                                "type": "logout", "session": session.to_string(),
                                "file": name, "line": i + 1,
                            })
                        );
                    }
                }
                Event::Nothing => {}
            }
        }
    }
    let _ = if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({
                "type": "summary", "lines": lines, "logins": logins,
                "logins_without_address": no_addr, "failures": failures,
                "unrecognised": unmatched, "session_ends": ends,
            })
        )
    } else {
        writeln!(
            out,
            "summary: {lines} lines, {logins} logins ({no_addr} without an address), {failures} failures, {unmatched} login-like lines in no known format, {ends} session ends"
        )
    };
    if no_addr > 0 {
        eprintln!(
            "relaylease: {no_addr} logins name no client address and would grant nothing (GNU Mailutils: enable `acl {{ log from any; }}`, or use the hook)"
        );
    }
    Ok(0)
}

/// `parse-log --journal`: the dry run over the journal. Prints each login with whether its
/// writer is believed, and a summary; touches nothing.
pub fn parse_journal(
    args: &crate::cli::JournalArgs,
    since: Option<&str>,
    patterns: &[String],
    json: bool,
) -> Result<i32> {
    use crate::sources::journal::{JournalSpec, Seen, read_once};
    use crate::sources::logparse::{Event, compile_login_pattern};

    let spec = JournalSpec::from_args(args)?;
    let since = since
        .map(|s| crate::sources::journal::parse_since(s, crate::lease::now_ms()))
        .transpose()?;
    let patterns = patterns
        .iter()
        .map(|p| compile_login_pattern(p))
        .collect::<Result<Vec<_>>>()?;
    let (mut entries, mut logins, mut no_addr, mut untrusted, mut failures, mut unmatched) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut ends = 0u64;
    let mut out = std::io::stdout().lock();
    read_once(&spec, since, &patterns, |seen: Seen<'_>| {
        entries += 1;
        let e = seen.entry;
        let time = e.realtime_us.map_or_else(
            || "-".to_string(),
            |us| {
                let t = std::time::UNIX_EPOCH + Duration::from_micros(us);
                humantime::format_rfc3339_millis(t).to_string()
            },
        );
        let trusted = seen.refused.is_none();
        match seen.event {
            Event::Login(ev) => {
                let addr = ev.ip.map(|ip| ip.to_string());
                if !trusted {
                    untrusted += 1;
                } else if addr.is_none() {
                    logins += 1;
                    no_addr += 1;
                } else {
                    logins += 1;
                }
                let why = seen.refused.as_ref().map(|r| r.to_string());
                let _ = if json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({
                            "type": "login",
                            "address": addr,
                            "user": ev.user,
                            "service": ev.service.name(),
                            "format": ev.format.name(),
                            "session": ev.session.map(|s| s.to_string()),
                            "time": time,
                            "cursor": e.cursor,
                            "trusted": trusted,
                            "untrusted_because": why,
                            "uid": e.uid,
                            "comm": e.comm,
                            "exe": e.exe,
                            "unit": e.unit,
                        })
                    )
                } else {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\tjournal {time}\t{}",
                        addr.as_deref().unwrap_or("(no address)"),
                        ev.user.as_deref().unwrap_or("-"),
                        ev.service.name(),
                        ev.format.name(),
                        why.map_or_else(|| "trusted".to_string(), |w| format!("UNTRUSTED: {w}")),
                    )
                };
            }
            _ if !trusted => {}
            Event::Failure(_) => failures += 1,
            Event::LooksLikeLogin => unmatched += 1,
            Event::Logout { session, .. } => {
                ends += 1;
                if json {
                    let _ = writeln!(
                        out,
                        "{}",
                        serde_json::json!({
                            "type": "logout", "session": session.to_string(),
                            "time": time, "cursor": e.cursor,
                        })
                    );
                }
            }
            Event::Nothing => {}
        }
    })?;
    let _ = if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({
                "type": "summary", "entries": entries, "logins": logins,
                "logins_without_address": no_addr, "untrusted": untrusted,
                "failures": failures, "unrecognised": unmatched, "session_ends": ends,
            })
        )
    } else {
        writeln!(
            out,
            "summary: {entries} entries, {logins} logins ({no_addr} without an address), {untrusted} untrusted logins refused, {failures} failures, {unmatched} login-like entries in no known format, {ends} session ends"
        )
    };
    if untrusted > 0 {
        eprintln!(
            "relaylease: {untrusted} login lines were not written by the mail server and would grant nothing (see README: the journal's trusted origin)"
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_is_well_formed_and_escapes_labels() {
        let mut s = StatsSnapshot {
            leases_active: 3,
            policy_ok: 7,
            ..Default::default()
        };
        s.logins_by_source.insert("/var/log/a \"b\".log".into(), 2);
        let text = prometheus(&s);
        assert!(text.contains("relaylease_leases_active 3\n"), "{text}");
        assert!(text.contains("relaylease_policy_answers_total{action=\"OK\"} 7\n"));
        assert!(
            text.contains("relaylease_logins_total{source=\"/var/log/a \\\"b\\\".log\"} 2\n"),
            "{text}"
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            value.parse::<u64>().unwrap();
        }
    }
}
