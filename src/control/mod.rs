//! The daemon's control socket: the protocol (pure), the request handler shared by the
//! daemon and the commands' direct mode, the server and the client.

pub mod client;
pub mod proto;
pub mod server;

use crate::counters::Counters;
use crate::lease::{Login, Millis, SOURCE_HOOK, Verdict, parse_duration, parse_ip, parse_key};
use crate::store::{Answer, Leases, Outcome};
use proto::{Op, Reply};

/// Carry out one operation. The daemon calls it for socket requests and the commands call
/// it on the database directly when no daemon answers, so both behave the same.
pub fn handle(leases: &Leases, counters: &Counters, op: Op, now: Millis) -> Reply {
    match dispatch(leases, counters, op, now) {
        Ok(r) => r,
        Err(e) => Reply::Error {
            error: e.to_string(),
        },
    }
}

/// What a reply says of a change the shared store has not confirmed yet.
fn queued_note(confirmed: bool) -> Option<String> {
    (!confirmed).then(|| {
        "queued on this host: Redis (or --store-replicas of its replicas) has not confirmed it yet; this host answers for it now, and sends it when Redis does".into()
    })
}

/// [`handle`] with the error still typed, for the daemon to log failures of its own.
pub(crate) fn dispatch(
    leases: &Leases,
    counters: &Counters,
    op: Op,
    now: Millis,
) -> crate::Result<Reply> {
    let v6_prefix = leases.rules().v6_prefix;
    Ok(match op {
        Op::Login { addr, user } => {
            let login = Login {
                ip: parse_ip(&addr)?,
                user: user.filter(|u| !u.is_empty()),
                at: now,
                source: SOURCE_HOOK.into(),
            };
            let (outcome, confirmed) = leases.login_confirmed(&login, now, true, None)?;
            let queued = queued_note(confirmed);
            match outcome {
                Outcome::Granted(l) => Reply::Login {
                    outcome: "granted".into(),
                    lease: Some(l),
                    reason: None,
                    queued,
                },
                Outcome::Renewed(l) => Reply::Login {
                    outcome: "renewed".into(),
                    lease: Some(l),
                    reason: None,
                    queued,
                },
                // Always allowed: nothing to store, and nothing refused either.
                Outcome::Refused(v @ Verdict::Static(_)) => Reply::Login {
                    outcome: "static".into(),
                    lease: None,
                    reason: Some(refusal(&v)),
                    queued: None,
                },
                Outcome::Refused(v) => Reply::Login {
                    outcome: "refused".into(),
                    lease: None,
                    reason: Some(refusal(&v)),
                    queued: None,
                },
            }
        }
        Op::Add { addr, duration } => {
            let ip = parse_ip(&addr)?;
            let dur = match duration {
                Some(d) => parse_duration(&d)?,
                None => leases.rules().window,
            };
            let (lease, confirmed) = leases.add_confirmed(ip, dur, now)?;
            Reply::Added {
                lease,
                queued: queued_note(confirmed),
            }
        }
        Op::Del { addr } => Reply::Deleted {
            lease: leases.del(&parse_key(&addr, v6_prefix)?)?,
        },
        Op::Check { addr } => {
            let answer = if addr.contains('/') {
                leases.check_key(&parse_key(&addr, v6_prefix)?, now)
            } else {
                leases.check(parse_ip(&addr)?, now)
            };
            let (lease, static_net) = match &answer {
                Answer::Lease(l) => (Some(l.clone()), None),
                Answer::Static(n) => (None, Some(*n)),
                Answer::No => (None, None),
            };
            Reply::Check {
                addr,
                allowed: answer.allowed(),
                now,
                lease,
                static_net,
                remote_info: None,
            }
        }
        Op::Relay { addr } => crate::answers::lease_use::relay_check(leases, addr, now)?,
        Op::Usage { token } => {
            let usage = leases.usage().ok_or_else(|| {
                crate::Error::invalid("the usage table is read through the daemon")
            })?;
            let rows = match token {
                Some(t) => usage.find_token(&t)?.into_iter().collect(),
                None => usage.report()?,
            };
            Reply::Usage { now, rows }
        }
        Op::Forget { user } => {
            let usage = leases.usage().ok_or_else(|| {
                crate::Error::invalid("the usage table is changed through the daemon")
            })?;
            Reply::Forgotten {
                records: usage.forget(&user)?,
                user,
            }
        }
        Op::List => Reply::List {
            now,
            leases: leases.list(now),
        },
        Op::Flush => Reply::Flushed {
            count: leases.flush()?,
        },
        Op::Stats => {
            let mut stats = leases.stats();
            counters.fill(&mut stats);
            Reply::Stats { stats }
        }
        Op::Window { set } => {
            let mut rules = (*leases.rules()).clone();
            if let Some(d) = set {
                rules.window = parse_duration(&d)?;
                crate::store::save_rules(leases.backend(), &rules)?;
                tracing::info!(expire = %humantime::format_duration(rules.window),
                    "expiry window changed for logins from now on");
                leases.set_rules(rules.clone());
            }
            Reply::Window {
                window_ms: rules.window.as_millis() as u64,
            }
        }
    })
}

fn refusal(v: &Verdict) -> String {
    match v {
        Verdict::DeniedNet(n) => format!("address is in --deny {n}"),
        Verdict::DeniedUser => "user is not in --users".into(),
        Verdict::Stale => "login is older than the expiry window".into(),
        Verdict::Static(n) => format!("address is always allowed by --allow {n}"),
        Verdict::Grant { .. } => "granted".into(),
    }
}
