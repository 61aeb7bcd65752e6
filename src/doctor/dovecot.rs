//! Dovecot's side, read from `doveconf`: does it log logins where the daemon looks, with the
//! fields the daemon needs, and do its post-login script and auth-policy settings match the
//! daemon's flags.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::Check;

/// The settings doctor asks `doveconf` for (defaults included).
pub const SETTINGS: [&str; 5] = [
    "log_path",
    "info_log_path",
    "login_log_format_elements",
    "auth_policy_server_url",
    "auth_policy_report_after_auth",
];

/// `name = value` lines of `doveconf NAME...` into a map.
pub fn parse_settings(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| {
            l.split_once(" = ")
                .or_else(|| l.strip_suffix(" =").map(|k| (k, "")))
        })
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The value `doveconf -x auth_policy_server_api_header` prints, with what a `<file` include
/// added (a final newline stays in it): None when unset.
pub fn parse_expanded(text: &str, name: &str) -> Option<String> {
    let v = text.strip_prefix(name)?.strip_prefix(" =")?;
    let v = v.strip_prefix(' ').unwrap_or(v);
    // doveconf ends its line with one newline of its own.
    let v = v.strip_suffix('\n').unwrap_or(v);
    (!v.is_empty()).then(|| v.to_string())
}

/// A post-login script service of `doveconf -n`: `executable = script-login PATH` and the
/// `user =` it runs as (`$default_internal_user` unresolved; none: root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostLogin {
    pub script: PathBuf,
    pub user: Option<String>,
}

pub fn post_login_scripts(n: &str) -> Vec<PostLogin> {
    let mut out = Vec::new();
    let mut current: Option<(Option<PathBuf>, Option<String>)> = None;
    for l in n.lines() {
        if l.starts_with("service ") && l.ends_with('{') {
            current = Some((None, None));
        } else if l == "}" {
            if let Some((Some(script), user)) = current.take() {
                out.push(PostLogin { script, user });
            }
        } else if let (Some((script, user)), Some(setting)) =
            (current.as_mut(), l.strip_prefix("  "))
        {
            if let Some(e) = setting.strip_prefix("executable = ") {
                let mut w = e.split_whitespace();
                if w.next() == Some("script-login") {
                    *script = w.next().map(PathBuf::from);
                }
            } else if let Some(u) = setting.strip_prefix("user = ") {
                *user = Some(u.trim().to_string());
            }
        }
    }
    out
}

/// A post-login script that calls relaylease, and whether the user it runs as is in the
/// daemon's `--writer-group` (None: no such group given, or it could not be told).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub path: PathBuf,
    pub user: String,
    pub in_writer_group: Option<bool>,
}

/// The daemon's flags that concern Dovecot.
pub struct Daemon<'a> {
    pub watches: &'a [PathBuf],
    pub journal: bool,
    /// `--max-session-hold` is not 0: sessions are held.
    pub holds_sessions: bool,
    pub writer_group: Option<&'a str>,
    pub dovecot_policy: Option<SocketAddr>,
    /// The `--dovecot-policy-secret-file` line, as the daemon reads it.
    pub secret: Option<&'a str>,
}

/// What doveconf said.
pub struct Facts<'a> {
    pub settings: &'a HashMap<String, String>,
    pub api_header: Option<&'a str>,
    /// The post-login scripts that call relaylease.
    pub scripts: &'a [Script],
}

/// Syslog files Debian's rsyslog writes mail-facility lines to.
const SYSLOG_FILES: [&str; 4] = [
    "/var/log/mail.log",
    "/var/log/syslog",
    "/var/log/maillog",
    "/var/log/messages",
];

pub fn check(f: &Facts<'_>, d: &Daemon<'_>) -> Vec<Check> {
    let mut out = Vec::new();
    if !d.watches.is_empty() || d.journal {
        out.push(log_destination(f, d));
        out.push(login_format(f, d));
    }
    if let Some(c) = post_login(f, d) {
        out.push(c);
    }
    if let Some(addr) = d.dovecot_policy {
        out.push(auth_policy(f, d, addr));
    }
    out
}

fn setting<'a>(f: &'a Facts<'_>, name: &str) -> &'a str {
    f.settings.get(name).map(String::as_str).unwrap_or("")
}

fn log_destination(f: &Facts<'_>, d: &Daemon<'_>) -> Check {
    const NAME: &str = "dovecot.log";
    let dest = match setting(f, "info_log_path") {
        "" => setting(f, "log_path"),
        p => p,
    };
    let followed = d
        .watches
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    match dest {
        "syslog" => {
            if d.journal {
                Check::ok(
                    NAME,
                    "Dovecot logs logins to syslog, which the journal keeps, and the daemon reads the journal.",
                )
            } else if let Some(w) = d
                .watches
                .iter()
                .find(|w| SYSLOG_FILES.iter().any(|s| Path::new(s) == w.as_path()))
            {
                Check::ok(
                    NAME,
                    format!(
                        "Dovecot logs logins to syslog and the daemon follows {}.",
                        w.display()
                    ),
                )
            } else {
                Check::fail(
                    NAME,
                    format!(
                        "Dovecot logs logins to syslog, but the daemon follows only {followed}."
                    ),
                    "follow the syslog file (--watch /var/log/mail.log) or read the journal (--journal).",
                )
            }
        }
        "/dev/stderr" | "" if d.journal => Check::ok(
            NAME,
            "Dovecot logs to its standard error, which systemd keeps in the journal the daemon reads.",
        ),
        path => {
            if d.watches.iter().any(|w| w.as_path() == Path::new(path)) {
                Check::ok(
                    NAME,
                    format!("Dovecot writes logins to {path}, which the daemon follows."),
                )
            } else {
                Check::fail(
                    NAME,
                    format!(
                        "Dovecot writes logins to {path}, but the daemon {}.",
                        if d.watches.is_empty() {
                            "reads only the journal".to_string()
                        } else {
                            format!("follows {followed}")
                        }
                    ),
                    format!("follow Dovecot's log: --watch {path}."),
                )
            }
        }
    }
}

fn login_format(f: &Facts<'_>, d: &Daemon<'_>) -> Check {
    const NAME: &str = "dovecot.login_format";
    let e = setting(f, "login_log_format_elements");
    if !e.contains("rip=") {
        return Check::fail(
            NAME,
            format!(
                "login_log_format_elements ({e}) has no rip=: login lines carry no client address, so no login grants a lease."
            ),
            "add rip=%r back to login_log_format_elements.",
        );
    }
    if d.holds_sessions && !(e.contains("mpid=") && e.contains("session=")) {
        return Check::fail(
            NAME,
            format!(
                "login_log_format_elements ({e}) lacks mpid= or session=: logins cannot be paired with their logouts, so a lease runs out during a long IMAP session."
            ),
            "add mpid=%e and session=<%{session}> back to login_log_format_elements, or give the daemon --max-session-hold 0.",
        );
    }
    Check::ok(
        NAME,
        "login lines carry rip= (and mpid= and session= for held sessions).",
    )
}

fn post_login(f: &Facts<'_>, d: &Daemon<'_>) -> Option<Check> {
    const NAME: &str = "dovecot.post_login";
    let s = f.scripts.first()?;
    let script = s.path.display();
    let user = &s.user;
    Some(match (d.writer_group, s.in_writer_group) {
        (None, _) if user != "root" => Check::fail(
            NAME,
            format!(
                "Dovecot runs the post-login script {script} as {user}, but the daemon lets no group report logins, so every report is refused."
            ),
            format!(
                "start the daemon with --writer-group relaylease and run `adduser {user} relaylease`."
            ),
        ),
        (Some(g), Some(false)) => Check::fail(
            NAME,
            format!(
                "Dovecot runs the post-login script {script} as {user}, who is not in group {g}, so every report is refused."
            ),
            format!("adduser {user} {g}, then restart Dovecot."),
        ),
        _ => Check::ok(
            NAME,
            format!("the post-login script {script} reports logins as {user}, who may."),
        ),
    })
}

fn auth_policy(f: &Facts<'_>, d: &Daemon<'_>, addr: SocketAddr) -> Check {
    const NAME: &str = "dovecot.auth_policy";
    let url = setting(f, "auth_policy_server_url");
    let want = format!("http://{addr}/");
    let host_port = url
        .strip_prefix("http://")
        .map(|r| r.split('/').next().unwrap_or(""))
        .unwrap_or("");
    let same = host_port.parse::<SocketAddr>().ok() == Some(addr)
        || host_port == format!("localhost:{}", addr.port()) && addr.ip().is_loopback();
    if !same {
        return Check::fail(
            NAME,
            format!("auth_policy_server_url is '{url}', but the daemon takes reports at {addr}."),
            format!("set auth_policy_server_url = {want}"),
        );
    }
    if !setting(f, "auth_policy_report_after_auth").eq_ignore_ascii_case("yes") {
        return Check::fail(
            NAME,
            "auth_policy_report_after_auth is not yes: Dovecot never reports a login.",
            "set auth_policy_report_after_auth = yes.",
        );
    }
    let header = f.api_header.unwrap_or("");
    if header.ends_with('\n') || header.ends_with('\r') {
        return Check::fail(
            NAME,
            "auth_policy_server_api_header ends with a newline (a `<file` include keeps the file's last one): Dovecot's auth process aborts at every login.",
            "write the header's value in the setting itself, not as <file.",
        );
    }
    if let Some(secret) = d.secret {
        let secret = secret.trim_end_matches(['\r', '\n']);
        let want = if secret.contains(':') {
            secret.to_string()
        } else {
            format!("X-API-Key: {secret}")
        };
        let norm = |s: &str| {
            s.split_once(':')
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        };
        if norm(header) != norm(&want) {
            return Check::fail(
                NAME,
                "auth_policy_server_api_header is not the header of --dovecot-policy-secret-file: the daemon refuses every report (403).",
                "copy the secret file's line into auth_policy_server_api_header.",
            );
        }
    }
    Check::ok(
        NAME,
        format!("Dovecot reports logins to {want} with the daemon's header."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    fn settings(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m = parse_settings(
            "log_path = /var/log/dovecot.log\ninfo_log_path =\nlogin_log_format_elements = user=<%u> method=%m rip=%r lip=%l mpid=%e %c session=<%{session}>\nauth_policy_server_url =\nauth_policy_report_after_auth = yes\n",
        );
        for (k, v) in pairs {
            m.insert(k.to_string(), v.to_string());
        }
        m
    }

    fn daemon(watches: &[PathBuf]) -> Daemon<'_> {
        Daemon {
            watches,
            journal: false,
            holds_sessions: true,
            writer_group: None,
            dovecot_policy: None,
            secret: None,
        }
    }

    fn one(s: &HashMap<String, String>, d: &Daemon<'_>, name: &str) -> Check {
        let f = Facts {
            settings: s,
            api_header: None,
            scripts: &[],
        };
        check(&f, d).into_iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn the_followed_log_must_be_dovecots() {
        let w = [PathBuf::from("/var/log/dovecot.log")];
        assert_eq!(
            one(&settings(&[]), &daemon(&w), "dovecot.log").status,
            Status::Ok
        );
        let s = settings(&[("info_log_path", "/var/log/dovecot-info.log")]);
        let c = one(&s, &daemon(&w), "dovecot.log");
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.contains("--watch /var/log/dovecot-info.log"));
        let s = settings(&[("log_path", "syslog")]);
        assert_eq!(one(&s, &daemon(&w), "dovecot.log").status, Status::Fail);
        let m = [PathBuf::from("/var/log/mail.log")];
        assert_eq!(one(&s, &daemon(&m), "dovecot.log").status, Status::Ok);
        let mut j = daemon(&[]);
        j.journal = true;
        assert_eq!(one(&s, &j, "dovecot.log").status, Status::Ok);
    }

    #[test]
    fn login_elements() {
        let w = [PathBuf::from("/var/log/dovecot.log")];
        let s = settings(&[("login_log_format_elements", "user=<%u> lip=%l")]);
        assert_eq!(
            one(&s, &daemon(&w), "dovecot.login_format").status,
            Status::Fail
        );
        let s = settings(&[("login_log_format_elements", "user=<%u> rip=%r lip=%l")]);
        let c = one(&s, &daemon(&w), "dovecot.login_format");
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.contains("--max-session-hold 0"));
        let mut d = daemon(&w);
        d.holds_sessions = false;
        assert_eq!(one(&s, &d, "dovecot.login_format").status, Status::Ok);
    }

    #[test]
    fn auth_policy_and_the_newline_trap() {
        let addr: SocketAddr = "127.0.0.1:10032".parse().unwrap();
        let s = settings(&[("auth_policy_server_url", "http://127.0.0.1:10032/")]);
        let mut d = daemon(&[]);
        d.dovecot_policy = Some(addr);
        d.secret = Some("X-Relaylease-Secret: abc\n");
        let run = |h: &str, s: &HashMap<String, String>, d: &Daemon<'_>| {
            let f = Facts {
                settings: s,
                api_header: Some(h),
                scripts: &[],
            };
            check(&f, d).remove(0)
        };
        assert_eq!(run("X-Relaylease-Secret: abc", &s, &d).status, Status::Ok);
        let c = run("X-Relaylease-Secret: abc\n", &s, &d);
        assert_eq!(c.status, Status::Fail);
        assert!(c.found.contains("newline"));
        assert_eq!(run("X-Relaylease-Secret: abd", &s, &d).status, Status::Fail);
        let other = settings(&[("auth_policy_server_url", "http://127.0.0.1:9/")]);
        assert_eq!(
            run("X-Relaylease-Secret: abc", &other, &d).status,
            Status::Fail
        );
        let noreport = settings(&[
            ("auth_policy_server_url", "http://127.0.0.1:10032/"),
            ("auth_policy_report_after_auth", "no"),
        ]);
        assert_eq!(
            run("X-Relaylease-Secret: abc", &noreport, &d).status,
            Status::Fail
        );
    }

    #[test]
    fn post_login_needs_a_writer_group_with_the_scripts_user_in_it() {
        let scripts = [Script {
            path: PathBuf::from("/usr/local/lib/relaylease/relaylease-postlogin"),
            user: "dovecot".into(),
            in_writer_group: None,
        }];
        let s = settings(&[]);
        let run = |scripts: &[Script], group: Option<&str>| {
            let f = Facts {
                settings: &s,
                api_header: None,
                scripts,
            };
            let mut d = daemon(&[]);
            d.writer_group = group;
            check(&f, &d).remove(0)
        };
        let c = run(&scripts, None);
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.contains("adduser dovecot relaylease"), "{c:?}");
        let mut not_member = scripts.clone();
        not_member[0].in_writer_group = Some(false);
        assert_eq!(run(&not_member, Some("relaylease")).status, Status::Fail);
        let mut member = scripts.clone();
        member[0].in_writer_group = Some(true);
        assert_eq!(run(&member, Some("relaylease")).status, Status::Ok);
        assert!(
            check(
                &Facts {
                    settings: &s,
                    api_header: None,
                    scripts: &[]
                },
                &daemon(&[])
            )
            .is_empty()
        );
    }

    #[test]
    fn doveconf_output() {
        assert_eq!(
            parse_expanded(
                "auth_policy_server_api_header = X: y\n\n",
                "auth_policy_server_api_header"
            )
            .as_deref(),
            Some("X: y\n")
        );
        assert_eq!(
            parse_expanded(
                "auth_policy_server_api_header = \n",
                "auth_policy_server_api_header"
            ),
            None
        );
        let n = "service imap {\n  executable = imap x\n}\nservice x {\n  executable = script-login /usr/local/lib/relaylease/relaylease-postlogin\n  user = $default_internal_user\n  unix_listener x {\n  }\n}\n";
        assert_eq!(
            post_login_scripts(n),
            vec![PostLogin {
                script: PathBuf::from("/usr/local/lib/relaylease/relaylease-postlogin"),
                user: Some("$default_internal_user".into()),
            }]
        );
        assert_eq!(parse_settings("info_log_path =\n")["info_log_path"], "");
    }
}
