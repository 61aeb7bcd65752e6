//! `parse-log`: the dry run of the log parsers over real logs or the systemd journal,
//! touching no store.

use std::io::Write;

use crate::error::{Error, Result};

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
                let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(us);
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
