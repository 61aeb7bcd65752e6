//! `relaylease doctor`: gather the facts (run `postconf` and `doveconf`, try files and
//! sockets as the users who will use them, ask the daemon) and print the judgements of
//! [`crate::doctor`].

mod probe;

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::cli::{DaemonArgs, DoctorArgs};
use crate::config::Paths;
use crate::control::client::call;
use crate::control::proto::Op;
use crate::doctor::{self, Check, dovecot, host, postfix};
use crate::error::{Error, Result};
use crate::listen::{ListenAddr, parse_listen_addr};
use probe::{Try, as_user};

/// Run every check that applies to the flags given; exit 0, 1 when something failed.
pub fn run(paths: &Paths, a: &DoctorArgs) -> Result<i32> {
    let d = &a.daemon;
    let mut checks = vec![daemon_answers(paths)];
    checks.extend(postfix_checks(a, d)?);
    checks.extend(dovecot_checks(a, d)?);
    checks.extend(host_checks(paths, d)?);
    checks.extend(qmail_checks(a, d)?);
    if a.json {
        println!("{}", doctor::render_json(&checks));
    } else {
        print!("{}", doctor::render_text(&checks));
    }
    Ok(doctor::exit_code(&checks))
}

fn daemon_answers(paths: &Paths) -> Check {
    let r = call(&paths.socket, Op::Stats, Duration::from_secs(5))
        .map(|_| ())
        .map_err(|e| match e {
            crate::control::client::CallError::NoDaemon(e)
            | crate::control::client::CallError::Failed(e) => e.to_string(),
        });
    host::daemon_answers(&paths.socket, r)
}

/// Run a configuration reader; its failure stops doctor (exit 2) with its own words.
fn read_config(program: &str, config: Option<&Path>, rest: &[&str]) -> Result<String> {
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    if let Some(c) = config {
        args.push("-c".into());
        args.push(c.into());
    }
    args.extend(rest.iter().map(Into::into));
    let out = Command::new(find(program).unwrap_or_else(|| program.into()))
        .args(args)
        .output()
        .map_err(|e| Error::net(format!("cannot run {program}"), e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let hint = if nix::unistd::Uid::effective().is_root() {
            ""
        } else {
            " (run doctor as root)"
        };
        return Err(Error::invalid(format!(
            "{program} failed: {}{hint}",
            err.trim().lines().last().unwrap_or("no message")
        )));
    }
    String::from_utf8(out.stdout)
        .map_err(|_| Error::invalid(format!("{program}: output is not UTF-8")))
}

/// Where `program` is: on PATH, or in /usr/sbin and /usr/bin (a user's PATH often lacks
/// /usr/sbin, where postconf is).
fn find(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn on_path(program: &str) -> bool {
    find(program).is_some()
}

fn endpoints(d: &DaemonArgs) -> Result<Vec<postfix::Endpoint>> {
    let mut out = Vec::new();
    for p in &d.policy {
        out.push(postfix::Endpoint {
            kind: postfix::Kind::Policy,
            addr: parse_listen_addr("--policy", p)?,
            map: None,
        });
    }
    for p in &d.socketmap {
        out.push(postfix::Endpoint {
            kind: postfix::Kind::Socketmap,
            addr: parse_listen_addr("--socketmap", p)?,
            map: Some(d.socketmap_name.clone()),
        });
    }
    Ok(out)
}

fn postfix_checks(a: &DoctorArgs, d: &DaemonArgs) -> Result<Vec<Check>> {
    let eps = endpoints(d)?;
    if a.postfix_config.is_none() && (eps.is_empty() || !on_path("postconf")) {
        return Ok(Vec::new());
    }
    let dir = a.postfix_config.as_deref();
    let params = postfix::parse_postconf(&read_config("postconf", dir, &postfix::PARAMS)?);
    let services = postfix::parse_master(&read_config("postconf", dir, &["-M"])?);
    let mut out = postfix::check(
        &postfix::Facts {
            params: &params,
            services: &services,
        },
        &eps,
    );
    for ep in &eps {
        if let ListenAddr::Unix(p) = &ep.addr {
            out.push(postfix::socket_access(
                p,
                as_user("postfix", Try::Connect(p))?,
            ));
        }
    }
    Ok(out)
}

fn dovecot_checks(a: &DoctorArgs, d: &DaemonArgs) -> Result<Vec<Check>> {
    let uses_dovecot = !d.watch.is_empty() || d.journal.journal || d.dovecot_policy.is_some();
    if a.dovecot_config.is_none()
        && (!uses_dovecot
            || !on_path("doveconf")
            || !Path::new("/etc/dovecot/dovecot.conf").exists())
    {
        return Ok(Vec::new());
    }
    let conf = a.dovecot_config.as_deref();
    let settings = dovecot::parse_settings(&read_config("doveconf", conf, &dovecot::SETTINGS)?);
    const HEADER: &str = "auth_policy_server_api_header";
    let header = dovecot::parse_expanded(&read_config("doveconf", conf, &["-x", HEADER])?, HEADER);
    let mut scripts = Vec::new();
    for p in dovecot::post_login_scripts(&read_config("doveconf", conf, &["-n"])?) {
        // Only a script that hands the login to relaylease (contrib/dovecot's does).
        let text = std::fs::read_to_string(&p.script).unwrap_or_default();
        if !text.contains("relaylease") {
            continue;
        }
        let user = match p.user.as_deref() {
            None => "root".to_string(),
            Some(u) if u.starts_with('$') => {
                let name = u.trim_start_matches('$');
                dovecot::parse_settings(&read_config("doveconf", conf, &[name])?)
                    .remove(name)
                    .unwrap_or_default()
            }
            Some(u) => u.to_string(),
        };
        let in_writer_group = match &d.writer_group {
            Some(g) => Some(member_of(&user, crate::privs::group_id(g)?)),
            None => None,
        };
        scripts.push(dovecot::Script {
            path: p.script,
            user,
            in_writer_group,
        });
    }
    let policy = match &d.dovecot_policy {
        Some(p) => match parse_listen_addr("--dovecot-policy", p)? {
            ListenAddr::Inet(a) => Some(a),
            ListenAddr::Unix(_) => None,
        },
        None => None,
    };
    let secret = match &d.dovecot_policy_secret_file {
        Some(f) => Some(std::fs::read_to_string(f).map_err(|e| Error::io("read", f, e))?),
        None => None,
    };
    Ok(dovecot::check(
        &dovecot::Facts {
            settings: &settings,
            api_header: header.as_deref(),
            scripts: &scripts,
        },
        &dovecot::Daemon {
            watches: &d.watch,
            journal: d.journal.journal,
            holds_sessions: hold_secs(d)? > 0,
            writer_group: d.writer_group.as_deref(),
            dovecot_policy: policy,
            secret: secret.as_deref(),
        },
    ))
}

/// Is `user` (root always may) in group `gid`, as its primary or a supplementary group?
fn member_of(user: &str, gid: u32) -> bool {
    use nix::unistd::{Gid, User, getgrouplist};
    let Ok(Some(u)) = User::from_name(user) else {
        return false;
    };
    let Ok(name) = std::ffi::CString::new(user) else {
        return false;
    };
    u.uid.is_root()
        || getgrouplist(&name, u.gid)
            .map(|gs| gs.contains(&Gid::from_raw(gid)))
            .unwrap_or(false)
}

fn hold_secs(d: &DaemonArgs) -> Result<u64> {
    if d.max_session_hold.trim() == "0" {
        return Ok(0);
    }
    humantime::parse_duration(d.max_session_hold.trim())
        .map(|d| d.as_secs())
        .map_err(|e| Error::invalid(format!("--max-session-hold '{}': {e}", d.max_session_hold)))
}

/// Who the daemon runs as: `--user`, else whoever runs doctor.
fn daemon_user(d: &DaemonArgs) -> Result<(String, u32)> {
    match &d.user {
        Some(u) => {
            let r = crate::privs::resolve(u, d.group.as_deref())?;
            Ok((r.name, r.uid))
        }
        None => {
            let uid = nix::unistd::Uid::effective();
            let name = nix::unistd::User::from_uid(uid)
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| uid.to_string());
            Ok((name, uid.as_raw()))
        }
    }
}

fn host_checks(paths: &Paths, d: &DaemonArgs) -> Result<Vec<Check>> {
    let (user, uid) = daemon_user(d)?;
    let mut out = Vec::new();
    for w in &d.watch {
        out.push(host::watch_readable(
            w,
            &user,
            as_user(&user, Try::Read(w))?,
        ));
    }
    let db = std::fs::metadata(&paths.db)
        .ok()
        .map(|m| (m.uid(), m.mode()));
    out.push(host::db_owner(&paths.db, db, uid, &user));
    let hold = hold_secs(d)?;
    for w in &d.watch {
        let Ok(meta) = std::fs::metadata(w) else {
            continue;
        };
        let mtime = meta.mtime() * 1000 + meta.mtime_nsec() / 1_000_000;
        let stamp = last_line(w)
            .and_then(|l| crate::sources::logparse::local_stamp(&l))
            .and_then(|s| crate::sources::logparse::resolve_stamp(&s, crate::lease::now_ms() as _))
            .map(|ms| ms as i64);
        out.push(host::clock_zone(w, stamp, mtime));
        out.push(host::session_hold(w, others_write(w, &meta), hold));
    }
    Ok(out)
}

/// The file, or the directory it is in, writable by users other than its owner's group.
fn others_write(path: &Path, meta: &std::fs::Metadata) -> bool {
    let dir_open = path
        .parent()
        .and_then(|p| std::fs::metadata(p).ok())
        .is_some_and(|m| m.mode() & 0o002 != 0 && m.mode() & 0o1000 == 0);
    meta.mode() & 0o002 != 0 || dir_open
}

/// The last complete line of a file (at most its last 64 KiB are read).
fn last_line(path: &Path) -> Option<Vec<u8>> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let start = len.saturating_sub(64 * 1024);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    let body = buf.strip_suffix(b"\n")?;
    let from = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    Some(body[from..].to_vec())
}

fn qmail_checks(a: &DoctorArgs, d: &DaemonArgs) -> Result<Vec<Check>> {
    let mut out = Vec::new();
    let Some(cdb) = &d.tcprules else {
        return Ok(out);
    };
    out.push(host::cdb_readable(
        cdb,
        &a.tcprules_user,
        as_user(&a.tcprules_user, Try::Read(cdb))?,
    ));
    if let Some(base) = &d.tcprules_base {
        let r = crate::answers::tcprules_writer::read_base(base)
            .map(|rules| rules.len())
            .map_err(|e| e.to_string());
        out.push(host::base_rules(base, r));
    }
    Ok(out)
}
