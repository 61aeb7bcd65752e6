//! `relaylease usage`: the report, the `--users` file of a freeze, `--forget` and `--token`.
//! It asks the daemon; with none running it reads the local database directly.

use std::io::Write;
use std::time::Duration;

use super::table::{
    Row, active_since, render_csv, render_json, render_text, render_users_file, sort,
};
use crate::cli::UsageArgs;
use crate::config::Paths;
use crate::control::client::{CallError, call};
use crate::control::proto::{Op, Reply};
use crate::error::{Error, Result};
use crate::lease::{Millis, now_ms, parse_duration};
use crate::store::{
    Backend, RedisConfig, STORE_META, SledBackend, UsageRedis, UsageSled, UsageStore,
};

const TIMEOUT: Duration = Duration::from_secs(15);

/// The usage table for a daemon keeping its leases in `db`, or in Redis.
pub fn store_for(sled: &SledBackend, redis: Option<&RedisConfig>) -> Result<UsageStore> {
    Ok(match redis {
        Some(rc) => UsageStore::Redis(std::sync::Arc::new(UsageRedis::new(rc.clone()))),
        None => UsageStore::Sled(std::sync::Arc::new(UsageSled::open(sled))),
    })
}

/// The local database's usage table, for when no daemon runs (never for a Redis site).
fn local(paths: &Paths) -> Result<UsageSled> {
    eprintln!(
        "relaylease: no daemon on {}; reading the database {} directly",
        paths.socket.display(),
        paths.db.display()
    );
    let sled = crate::store::open_store(&paths.db)?;
    if let Some(v) = sled.get_meta(STORE_META)?
        && v != crate::store::LOCAL_STORE
    {
        return Err(Error::invalid(format!(
            "the daemon keeps its usage table in Redis ({}): start it (or use a host where it runs)",
            String::from_utf8_lossy(&v)
        )));
    }
    let table = UsageSled::open(&sled);
    // What the daemon left in its journal belongs in the answer (and in a `--forget`).
    table.recover()?;
    Ok(table)
}

fn unexpected(reply: Reply) -> Error {
    match reply {
        Reply::Error { error } => Error::Remote(error),
        other => Error::Remote(format!("unexpected reply from the daemon: {other:?}")),
    }
}

/// Every record, from the daemon or the database.
fn fetch(paths: &Paths) -> Result<(Millis, Vec<Row>)> {
    match call(&paths.socket, Op::Usage { token: None }, TIMEOUT) {
        Ok(resp) => match resp.reply {
            Reply::Usage { now, rows } => Ok((now, rows)),
            other => Err(unexpected(other)),
        },
        Err(CallError::Failed(e)) => Err(e),
        Err(CallError::NoDaemon(_)) => {
            let rows = local(paths)?
                .load()?
                .into_iter()
                .map(|(s, r)| Row::new(s, r))
                .collect();
            Ok((now_ms(), rows))
        }
    }
}

/// `HH:MM` today, else `YYYY-MM-DD HH:MM`, in local time; `-` for never.
fn local_time(ms: Option<Millis>, now: Millis) -> String {
    let Some(ms) = ms else {
        return "-".into();
    };
    let tm = |ms: Millis| {
        let t = (ms / 1000) as libc::time_t;
        // SAFETY: localtime_r only writes into the tm we own.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
        ok.then_some(tm)
    };
    match (tm(ms), tm(now)) {
        (Some(a), Some(b)) if (a.tm_year, a.tm_yday) == (b.tm_year, b.tm_yday) => {
            format!("{:02}:{:02}", a.tm_hour, a.tm_min)
        }
        (Some(a), _) => format!(
            "{}-{:02}-{:02} {:02}:{:02}",
            a.tm_year + 1900,
            a.tm_mon + 1,
            a.tm_mday,
            a.tm_hour,
            a.tm_min
        ),
        (None, _) => format!("@{}", ms / 1000),
    }
}

/// The command line as the users file's comment repeats it.
fn how(a: &UsageArgs) -> String {
    match &a.since {
        Some(s) => format!("relaylease usage --since {s} --users-file"),
        None => "relaylease usage --users-file".into(),
    }
}

pub fn run(paths: &Paths, a: &UsageArgs) -> Result<i32> {
    let since = a
        .since
        .as_deref()
        .map(|s| parse_duration(s).map_err(|e| Error::invalid(format!("--since: {e}"))))
        .transpose()?;
    if let Some(user) = &a.forget {
        return forget(paths, user);
    }
    if let Some(token) = &a.token {
        return token_owner(paths, token, a.json);
    }
    let (now, rows) = fetch(paths)?;
    let since_ms = since.map(|d| now.saturating_sub(d.as_millis().min(u64::MAX as u128) as u64));
    let mut out = std::io::stdout().lock();
    if a.users_file {
        let _ = write!(out, "{}", render_users_file(&rows, now, since_ms, &how(a)));
        return Ok(0);
    }
    let mut rows = active_since(rows, since_ms, 0);
    sort(&mut rows);
    let text = if a.json {
        render_json(&rows, now, since_ms) + "\n"
    } else if a.csv {
        render_csv(&rows)
    } else {
        render_text(&rows, &|t| local_time(t, now))
    };
    let _ = out.write_all(text.as_bytes());
    Ok(0)
}

/// `--forget USER`: exit 0 when a record was removed, 1 when there was none.
fn forget(paths: &Paths, user: &str) -> Result<i32> {
    let n = match call(
        &paths.socket,
        Op::Forget {
            user: user.to_string(),
        },
        TIMEOUT,
    ) {
        Ok(resp) => match resp.reply {
            Reply::Forgotten { records, .. } => records,
            other => return Err(unexpected(other)),
        },
        Err(CallError::Failed(e)) => return Err(e),
        Err(CallError::NoDaemon(_)) => {
            let u = local(paths)?;
            let mut n = 0;
            for s in [
                super::table::Subject::User(user.to_string()),
                super::table::Subject::Addr(user.to_string()),
            ] {
                n += u.forget(&s)? as usize;
            }
            n
        }
    };
    if n == 0 {
        println!("{user}: no usage record");
        return Ok(1);
    }
    println!("{user}: usage record removed");
    Ok(0)
}

/// `--token TOKEN`: the user it stands for (exit 0), or none (exit 1).
fn token_owner(paths: &Paths, token: &str, json: bool) -> Result<i32> {
    let op = Op::Usage {
        token: Some(token.to_string()),
    };
    let rows = match call(&paths.socket, op, TIMEOUT) {
        Ok(resp) => match resp.reply {
            Reply::Usage { rows, .. } => rows,
            other => return Err(unexpected(other)),
        },
        Err(CallError::Failed(e)) => return Err(e),
        Err(CallError::NoDaemon(e)) => {
            return Err(Error::invalid(format!(
                "--token needs the running daemon, which holds --mark-token-secret ({e})"
            )));
        }
    };
    match rows.first() {
        Some(r) if json => {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
            Ok(0)
        }
        Some(r) => {
            println!("{token}: {}", r.shown());
            Ok(0)
        }
        None => {
            println!(
                "{token}: no record has this token (unknown, forgotten, or idle for longer than --usage-retention)"
            );
            Ok(1)
        }
    }
}
