//! Validated settings built from the command line: durations, networks and groups parsed once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::Uid;

use crate::answers::tcprules_writer::CdbConfig;
use crate::cli::DaemonArgs;
use crate::error::{Error, Result};
use crate::lease::{Rules, parse_duration, parse_net, parse_users};
use crate::listen::{ListenAddr, parse_listen_addr};
use crate::privs::RunAs;
use crate::sources::WatchSpec;
use crate::sources::logparse::{Format, compile_login_pattern};
use crate::store::RedisConfig;

/// The system daemon's control socket.
pub const SYSTEM_SOCKET: &str = "/run/relaylease/relaylease.sock";

/// Where the database and the control socket are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    pub db: PathBuf,
    pub socket: PathBuf,
}

impl Paths {
    /// Explicit paths win; otherwise root gets the system paths and anyone else the XDG ones.
    pub fn resolve(socket: Option<PathBuf>, db: Option<PathBuf>) -> Paths {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self::resolve_with(socket, db, Uid::effective().is_root(), env)
    }

    pub fn resolve_with(
        socket: Option<PathBuf>,
        db: Option<PathBuf>,
        root: bool,
        env: impl Fn(&str) -> Option<PathBuf>,
    ) -> Paths {
        if root {
            return Paths {
                db: db.unwrap_or_else(|| "/var/lib/relaylease".into()),
                socket: socket.unwrap_or_else(|| SYSTEM_SOCKET.into()),
            };
        }
        let state = env("XDG_STATE_HOME")
            .or_else(|| env("HOME").map(|h| h.join(".local/state")))
            .unwrap_or_else(|| PathBuf::from("."))
            .join("relaylease");
        let socket = socket.unwrap_or_else(|| {
            let own = match env("XDG_RUNTIME_DIR") {
                Some(run) => run.join("relaylease.sock"),
                None => state.join("relaylease.sock"),
            };
            // Login chains (hook, smtp-wrap) run as mail users: with no daemon of their own,
            // they reach the system's.
            let system = PathBuf::from(SYSTEM_SOCKET);
            if !own.exists() && system.exists() {
                system
            } else {
                own
            }
        });
        Paths {
            db: db.unwrap_or(state),
            socket,
        }
    }
}

/// Everything the daemon needs, checked.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub paths: Paths,
    pub rules: Rules,
    pub users_file: Option<PathBuf>,
    pub writer_gid: Option<u32>,
    pub socket_mode: u32,
    pub socket_gid: Option<u32>,
    pub watches: Vec<WatchSpec>,
    /// `--watch-insecure`: follow logs that ordinary users can write.
    pub watch_insecure: bool,
    /// `--journal`: the systemd journal as a source of logins.
    pub journal: Option<crate::sources::journal::JournalSpec>,
    pub login_patterns: Vec<regex::Regex>,
    /// `--max-session-hold`: how long an open session may keep its login's lease.
    pub max_session_hold: Duration,
    pub policy: Vec<ListenAddr>,
    pub socketmap: Vec<ListenAddr>,
    pub socketmap_map: crate::answers::socketmap::MapConfig,
    pub policy_mode: u32,
    pub policy_gid: Option<u32>,
    /// `--dovecot-policy`: Dovecot's auth-policy reports as a login source.
    pub dovecot_policy: Option<crate::sources::dovecot_auth_policy::PolicyConfig>,
    pub tcprules: Option<CdbConfig>,
    pub run_as: Option<RunAs>,
    /// `--store redis://...`: leases shared through Redis; `None` keeps them in `--db`.
    pub store: Option<RedisConfig>,
    /// `--log-format`: the audit lines of lease uses are written in it.
    pub log_format: crate::cli::LogFormat,
    /// Recording uses: `--mark-header`, `--mark-token-secret`, `--unleased-action`,
    /// `--usage-retention`.
    pub usage: crate::usage::Settings,
}

/// `--mark-header`, `--mark-token-secret`, `--unleased-action`, `--usage-retention`.
fn usage_settings(a: &DaemonArgs) -> Result<crate::usage::Settings> {
    use crate::usage::mark::{MIN_SECRET, Secret, valid_header_name};
    if let Some(name) = &a.mark_header
        && !valid_header_name(name)
    {
        return Err(Error::invalid(format!(
            "--mark-header '{name}': a header name is printable ASCII without ':' or spaces"
        )));
    }
    let secret = match &a.mark_token_secret {
        None => None,
        Some(path) => {
            let text = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
            Some(Secret::from_file_text(&text).ok_or_else(|| {
                Error::invalid(format!(
                    "--mark-token-secret {}: at least {MIN_SECRET} bytes (e.g. head -c 32 /dev/urandom | base64 > FILE)",
                    path.display()
                ))
            })?)
        }
    };
    Ok(crate::usage::Settings {
        mark_header: a.mark_header.clone(),
        secret,
        unleased: a.unleased_action,
        retention: parse_duration(&a.usage_retention)
            .map_err(|e| Error::invalid(format!("--usage-retention: {e}")))?,
    })
}

/// `--max-session-hold`: a duration, or 0 for off.
fn parse_hold(s: &str) -> Result<Duration> {
    if humantime::parse_duration(s.trim()).is_ok_and(|d| d.is_zero()) || s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    parse_duration(s).map_err(|e| Error::invalid(format!("--max-session-hold: {e}")))
}

/// A map name is one word (requests are `NAME KEY`); a value is one line.
fn socketmap_map(name: &str, value: &str) -> Result<crate::answers::socketmap::MapConfig> {
    if name.is_empty()
        || name
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(Error::invalid(format!(
            "--socketmap-name '{name}': one word without spaces"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "--socketmap-value {value:?}: no control characters"
        )));
    }
    Ok(crate::answers::socketmap::MapConfig {
        name: name.to_string(),
        value: value.to_string(),
    })
}

/// `--dovecot-policy ADDR` on loopback, with the API header from
/// `--dovecot-policy-secret-file`. Whoever reaches the port can report a login, so it is
/// never opened beyond this host, and the secret file must hold a header.
fn dovecot_policy(
    addr: &str,
    secret_file: Option<&Path>,
    no_secret: bool,
) -> Result<crate::sources::dovecot_auth_policy::PolicyConfig> {
    let bad = |why: &str| Error::invalid(format!("--dovecot-policy '{addr}': {why}"));
    let addr = match parse_listen_addr("--dovecot-policy", addr)? {
        ListenAddr::Inet(a) if a.ip().is_loopback() => a,
        ListenAddr::Inet(_) => {
            return Err(bad(
                "only a loopback address (127.0.0.1, ::1): whoever reaches it can grant relay",
            ));
        }
        ListenAddr::Unix(_) => {
            return Err(bad(
                "TCP only, as Dovecot's auth_policy_server_url is an http:// URL: use inet:127.0.0.1:PORT",
            ));
        }
    };
    let secret = match secret_file {
        None if no_secret => None,
        None => {
            return Err(bad(
                "needs --dovecot-policy-secret-file with the auth_policy_server_api_header Dovecot sends (without it any local process can open the relay; --dovecot-policy-no-secret accepts that)",
            ));
        }
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
            let header = crate::sources::dovecot_auth_policy_proto::ApiHeader::parse(&text)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "--dovecot-policy-secret-file {}: expected one line 'Header-Name: value', as in Dovecot's auth_policy_server_api_header",
                        path.display()
                    ))
                })?;
            Some(header)
        }
    };
    Ok(crate::sources::dovecot_auth_policy::PolicyConfig { addr, secret })
}

pub fn parse_mode(s: &str) -> Result<u32> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| Error::invalid(format!("invalid socket mode '{s}' (octal, like 0660)")))
}

pub fn read_users(path: &Path) -> Result<HashSet<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    Ok(parse_users(&text))
}

/// Pair each `--format` with the `--watch` before it.
fn watch_specs(a: &DaemonArgs) -> Result<Vec<WatchSpec>> {
    let mut specs: Vec<WatchSpec> = a
        .watch
        .iter()
        .map(|p| WatchSpec {
            path: p.clone(),
            format: None,
        })
        .collect();
    for (name, after) in a.format.iter().zip(&a.format_after) {
        let format: Format = name.parse()?;
        let Some(spec) = after.checked_sub(1).and_then(|i| specs.get_mut(i)) else {
            return Err(Error::invalid(format!(
                "--format {name} must follow the --watch FILE it applies to"
            )));
        };
        if spec.format.replace(format).is_some() {
            return Err(Error::invalid(format!(
                "--watch {}: more than one --format",
                spec.path.display()
            )));
        }
    }
    let mut seen = HashSet::new();
    for s in &specs {
        if !seen.insert(&s.path) {
            return Err(Error::invalid(format!(
                "--watch {} given twice",
                s.path.display()
            )));
        }
    }
    Ok(specs)
}

impl DaemonConfig {
    pub fn from_args(a: &DaemonArgs, paths: Paths) -> Result<Self> {
        let window =
            parse_duration(&a.expire).map_err(|e| Error::invalid(format!("--expire: {e}")))?;
        let nets = |flag: &str, v: &[String]| {
            v.iter()
                .map(|s| parse_net(s).map_err(|e| Error::invalid(format!("{flag}: {e}"))))
                .collect::<Result<Vec<_>>>()
        };
        let users = match &a.users {
            Some(p) => Some(Arc::new(read_users(p)?)),
            None => None,
        };
        Ok(DaemonConfig {
            paths,
            rules: Rules {
                window,
                v6_prefix: a.ipv6_prefix,
                allow: nets("--allow", &a.allow)?,
                deny: nets("--deny", &a.deny)?,
                users,
            },
            users_file: a.users.clone(),
            writer_gid: a
                .writer_group
                .as_deref()
                .map(crate::privs::group_id)
                .transpose()?,
            socket_mode: parse_mode(&a.socket_mode)?,
            socket_gid: a
                .socket_group
                .as_deref()
                .map(crate::privs::group_id)
                .transpose()?,
            watches: watch_specs(a)?,
            watch_insecure: a.watch_insecure,
            journal: a
                .journal
                .journal
                .then(|| crate::sources::journal::JournalSpec::from_args(&a.journal))
                .transpose()?,
            login_patterns: a
                .login_pattern
                .iter()
                .map(|p| compile_login_pattern(p))
                .collect::<Result<_>>()?,
            max_session_hold: parse_hold(&a.max_session_hold)?,
            policy: a
                .policy
                .iter()
                .map(|p| parse_listen_addr("--policy", p))
                .collect::<Result<_>>()?,
            socketmap: a
                .socketmap
                .iter()
                .map(|p| parse_listen_addr("--socketmap", p))
                .collect::<Result<_>>()?,
            socketmap_map: socketmap_map(&a.socketmap_name, &a.socketmap_value)?,
            dovecot_policy: a
                .dovecot_policy
                .as_deref()
                .map(|addr| {
                    dovecot_policy(
                        addr,
                        a.dovecot_policy_secret_file.as_deref(),
                        a.dovecot_policy_no_secret,
                    )
                })
                .transpose()?,
            policy_mode: parse_mode(&a.policy_mode)?,
            policy_gid: a
                .policy_group
                .as_deref()
                .map(crate::privs::group_id)
                .transpose()?,
            run_as: a
                .user
                .as_deref()
                .map(|u| crate::privs::resolve(u, a.group.as_deref()))
                .transpose()?,
            tcprules: match &a.tcprules {
                Some(path) => Some(CdbConfig {
                    path: path.clone(),
                    base: a.tcprules_base.clone(),
                    env: a
                        .tcprules_env
                        .iter()
                        .map(|e| crate::answers::parse_env("--tcprules-env", e))
                        .collect::<Result<_>>()?,
                }),
                None => None,
            },
            store: a
                .store
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|url| {
                    RedisConfig::parse(url, &a.store_prefix, a.store_no_password)
                        .map(|c| c.with_replicas(a.store_replicas))
                })
                .transpose()?,
            log_format: a.log_format,
            usage: usage_settings(a)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_paths_for_root_and_users() {
        let none = |_: &str| None;
        assert_eq!(
            Paths::resolve_with(None, None, true, none),
            Paths {
                db: "/var/lib/relaylease".into(),
                socket: "/run/relaylease/relaylease.sock".into()
            }
        );
        let xdg = |k: &str| match k {
            "XDG_STATE_HOME" => Some(PathBuf::from("/home/u/.state")),
            "XDG_RUNTIME_DIR" => Some(PathBuf::from("/run/user/1000")),
            _ => None,
        };
        assert_eq!(
            Paths::resolve_with(None, None, false, xdg),
            Paths {
                db: "/home/u/.state/relaylease".into(),
                socket: "/run/user/1000/relaylease.sock".into()
            }
        );
        let home = |k: &str| (k == "HOME").then(|| PathBuf::from("/home/u"));
        assert_eq!(
            Paths::resolve_with(None, None, false, home),
            Paths {
                db: "/home/u/.local/state/relaylease".into(),
                socket: "/home/u/.local/state/relaylease/relaylease.sock".into()
            }
        );
        let p = Paths::resolve_with(Some("/s".into()), Some("/d".into()), true, none);
        assert_eq!((p.db.to_str(), p.socket.to_str()), (Some("/d"), Some("/s")));
    }

    #[test]
    fn the_dovecot_policy_listens_on_loopback_only_and_needs_a_readable_header() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let good = file("good", "X-Relaylease-Secret: s3cr3t\n");
        let c = dovecot_policy("inet:127.0.0.1:10032", Some(&good), false).unwrap();
        assert_eq!(c.addr, "127.0.0.1:10032".parse().unwrap());
        assert_eq!(c.secret.unwrap().name, "X-Relaylease-Secret");
        // No secret: refused, unless the administrator says any local process may report.
        let e = dovecot_policy("inet:[::1]:10032", None, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("needs --dovecot-policy-secret-file")
                && e.contains("--dovecot-policy-no-secret"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(
            dovecot_policy("inet:[::1]:10032", None, true)
                .unwrap()
                .secret
                .is_none()
        );
        for (addr, needle) in [
            ("inet:0.0.0.0:10032", "only a loopback address"),
            ("inet:192.0.2.1:10032", "only a loopback address"),
            ("unix:/run/relaylease/dovecot.sock", "TCP only"),
            ("127.0.0.1:10032", "expected unix:/path or inet:host:port"),
        ] {
            let e = dovecot_policy(addr, None, true).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains(addr), "{e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
        let empty = file("empty", "\n");
        let e = dovecot_policy("inet:127.0.0.1:10032", Some(&empty), false).unwrap_err();
        assert!(e.to_string().contains("expected one line"), "{e}");
        let missing = dir.path().join("missing");
        let e = dovecot_policy("inet:127.0.0.1:10032", Some(&missing), false).unwrap_err();
        assert!(e.to_string().starts_with("cannot read"), "{e}");
    }

    #[test]
    fn modes_and_groups() {
        assert_eq!(parse_mode("0660").unwrap(), 0o660);
        assert_eq!(parse_mode("660").unwrap(), 0o660);
        assert!(
            parse_mode("0999")
                .unwrap_err()
                .to_string()
                .contains("'0999'")
        );
        assert!(parse_mode("7777").is_err());
        assert_eq!(crate::privs::group_id("0").unwrap(), 0);
        assert_eq!(crate::privs::group_id("root").unwrap(), 0);
        assert!(
            crate::privs::group_id("no-such-group-here")
                .unwrap_err()
                .to_string()
                .contains("'no-such-group-here'")
        );
    }
}
