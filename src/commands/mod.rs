//! The shell commands: each sends one request to the daemon, or carries it out on the
//! database directly when no daemon is running, and prints the reply for a person.

pub mod chain;
pub mod doctor;
pub mod parse_log;
pub mod render;

use std::io::Write;
use std::time::Duration;

use crate::config::Paths;
use crate::control::client::{CallError, call};
use crate::control::handle;
use crate::control::proto::{Op, Reply};
use crate::error::{Error, Result};
use crate::lease::{now_ms, parse_duration, parse_ip, parse_key, show_key};
use crate::store::Leases;
use crate::store::open_store;
use render::{describe_lease, lease_table, prometheus, show_stats};

/// How long a command waits for the daemon.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Refuse bad addresses and durations before touching the daemon or the database.
fn validate(op: &Op) -> Result<()> {
    match op {
        Op::Check { addr } | Op::Del { addr } => parse_key(addr, 128).map(|_| ()),
        Op::Relay { addr } => parse_ip(addr).map(|_| ()),
        Op::Usage { .. } | Op::Forget { .. } => Ok(()),
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
            // No daemon: nothing has been answered, and no session is held.
            let reply = handle(&leases, &Default::default(), op, now);
            leases.sync()?;
            Ok(reply)
        }
    }
}

/// A host whose daemon keeps leases in Redis has none in its database: working there
/// would show nothing, and change nothing any host answers from.
fn refuse_shared(backend: &dyn crate::store::Backend) -> Result<()> {
    match backend.get_meta(crate::store::STORE_META)? {
        Some(v) if v != crate::store::LOCAL_STORE => Err(Error::invalid(format!(
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

/// `check`: exit 0 allowed, 1 not.
pub fn check(paths: &Paths, addr: String) -> Result<i32> {
    match execute(paths, Op::Check { addr })? {
        Reply::Check {
            addr,
            allowed,
            now,
            lease,
            static_net,
            ..
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
    let _ = out.write_all(lease_table(&leases, now).as_bytes());
    Ok(0)
}

pub fn add(paths: &Paths, addr: String, duration: Option<String>) -> Result<i32> {
    match execute(paths, Op::Add { addr, duration })? {
        Reply::Added { lease, queued } => {
            println!(
                "{}",
                describe_lease(&show_key(&lease.net), &lease, now_ms())
            );
            if let Some(note) = queued {
                println!("{}: {note}", show_key(&lease.net));
            }
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
