//! Postfix's side, read from `postconf`: is relaylease asked where relaying is decided, does
//! a stopped daemon defer mail, can smtpd (chrooted or not) reach the socket, are the
//! policy client's timeouts sane.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use super::{Check, parse_seconds};
use crate::listen::ListenAddr;

/// The parameters doctor asks `postconf` for.
pub const PARAMS: [&str; 6] = [
    "smtpd_relay_restrictions",
    "smtpd_recipient_restrictions",
    "smtpd_policy_service_timeout",
    "smtpd_policy_service_max_idle",
    "smtpd_policy_service_default_action",
    "queue_directory",
];

/// How long the daemon keeps an idle policy connection (`answers::postfix_policy::IDLE`).
const DAEMON_IDLE: u64 = crate::answers::postfix_policy::IDLE.as_secs();

/// `name = value` lines of `postconf` into a map.
pub fn parse_postconf(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// One service of master.cf as `postconf -M` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub kind: String,
    /// The chroot column: `y`, `n` or `-` (no since Postfix 3.0).
    pub chroot: bool,
    pub command: String,
}

/// `postconf -M` output: `name type private unpriv chroot wakeup maxproc command args`.
pub fn parse_master(text: &str) -> Vec<Service> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8).then(|| Service {
                name: f[0].to_string(),
                kind: f[1].to_string(),
                chroot: f[4] == "y",
                command: f[7].to_string(),
            })
        })
        .collect()
}

/// One item of a restriction list: a word, or a `{ ... }` group split into its items.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Word(String),
    Group(Vec<String>),
}

fn split_items(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn tokenize(list: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut rest = list;
    while let Some(open) = rest.find('{') {
        items.extend(split_items(&rest[..open]).into_iter().map(Item::Word));
        let after = &rest[open + 1..];
        let close = after.find('}').unwrap_or(after.len());
        items.push(Item::Group(split_items(&after[..close])));
        rest = after.get(close + 1..).unwrap_or("");
    }
    items.extend(split_items(rest).into_iter().map(Item::Word));
    items
}

/// Which of the daemon's services a reference in main.cf names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Policy,
    Socketmap,
}

/// A place in a restriction list where Postfix asks relaylease.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ref {
    list: &'static str,
    pos: usize,
    kind: Kind,
    /// As main.cf writes it: `unix:private/x`, `inet:127.0.0.1:10031`.
    endpoint: String,
    attrs: Vec<(String, String)>,
}

/// The restriction lists in the order smtpd applies them at RCPT.
const LISTS: [&str; 2] = ["smtpd_relay_restrictions", "smtpd_recipient_restrictions"];

fn refs(list: &'static str, items: &[Item]) -> Vec<Ref> {
    let mut out = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let Item::Word(w) = it else { continue };
        let kind = if w == "check_policy_service" {
            Kind::Policy
        } else if w.starts_with("check_") && w.ends_with("_access") {
            Kind::Socketmap
        } else {
            continue;
        };
        let (endpoint, attrs) = match items.get(i + 1) {
            Some(Item::Word(e)) => (e.clone(), Vec::new()),
            Some(Item::Group(g)) if !g.is_empty() => (
                g[0].clone(),
                g[1..]
                    .iter()
                    .filter_map(|a| a.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            _ => continue,
        };
        if kind == Kind::Socketmap && !endpoint.starts_with("socketmap:") {
            continue;
        }
        out.push(Ref {
            list,
            pos: i,
            kind,
            endpoint,
            attrs,
        });
    }
    out
}

fn position(items: &[Item], words: &[&str]) -> Option<usize> {
    items
        .iter()
        .position(|it| matches!(it, Item::Word(w) if words.contains(&w.as_str())))
}

/// A daemon endpoint (`--policy` or `--socketmap`) and the map name of socketmap lookups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub kind: Kind,
    pub addr: ListenAddr,
    /// `--socketmap-name`, for a socketmap endpoint.
    pub map: Option<String>,
}

/// Where a unix endpoint of main.cf is looked up by an smtpd: relative paths under the queue
/// directory, absolute ones under it too when smtpd is chrooted (there, it is `/`).
pub fn resolve(path: &str, queue: &Path, chroot: bool) -> PathBuf {
    let p = Path::new(path);
    if p.is_relative() {
        queue.join(p)
    } else if chroot {
        queue.join(p.strip_prefix("/").unwrap_or(p))
    } else {
        p.to_path_buf()
    }
}

/// The unix path or inet address a main.cf endpoint names (without the socketmap prefix and
/// map name).
enum Target {
    Unix(String),
    Inet(String, u16),
}

fn target(kind: Kind, endpoint: &str) -> Option<Target> {
    let e = match kind {
        Kind::Policy => endpoint,
        // socketmap:unix:/path:name, socketmap:inet:host:port:name
        Kind::Socketmap => endpoint
            .strip_prefix("socketmap:")?
            .rsplit_once(':')
            .map(|(a, _)| a)?,
    };
    if let Some(hp) = e.strip_prefix("inet:") {
        let (h, p) = hp.rsplit_once(':')?;
        let h = h.trim_start_matches('[').trim_end_matches(']');
        Some(Target::Inet(h.to_string(), p.parse().ok()?))
    } else {
        Some(Target::Unix(
            e.strip_prefix("unix:").unwrap_or(e).to_string(),
        ))
    }
}

fn inet_matches(host: &str, port: u16, a: &SocketAddr) -> bool {
    if port != a.port() {
        return false;
    }
    match host.parse::<IpAddr>() {
        Ok(ip) => ip == a.ip() || (a.ip().is_unspecified() && ip.is_loopback()),
        Err(_) => host == "localhost" && (a.ip().is_loopback() || a.ip().is_unspecified()),
    }
}

/// Does this reference name this daemon endpoint, literally or once resolved by any smtpd?
fn names(r: &Ref, ep: &Endpoint, queue: &Path) -> bool {
    if r.kind != ep.kind {
        return false;
    }
    match (target(r.kind, &r.endpoint), &ep.addr) {
        (Some(Target::Inet(h, p)), ListenAddr::Inet(a)) => inet_matches(&h, p, a),
        (Some(Target::Unix(p)), ListenAddr::Unix(d)) => {
            Path::new(&p) == d.as_path()
                || resolve(&p, queue, false) == *d
                || resolve(&p, queue, true) == *d
        }
        _ => false,
    }
}

/// What postconf said, gathered: parameters and master.cf.
pub struct Facts<'a> {
    pub params: &'a HashMap<String, String>,
    pub services: &'a [Service],
}

impl Facts<'_> {
    fn param(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or("")
    }
    fn queue(&self) -> PathBuf {
        PathBuf::from(match self.param("queue_directory") {
            "" => "/var/spool/postfix",
            q => q,
        })
    }
}

/// Every Postfix check for the daemon's `endpoints`.
pub fn check(f: &Facts<'_>, endpoints: &[Endpoint]) -> Vec<Check> {
    let queue = f.queue();
    let lists: Vec<(&'static str, Vec<Item>)> =
        LISTS.iter().map(|l| (*l, tokenize(f.param(l)))).collect();
    let ours: Vec<(Ref, &Endpoint)> = lists
        .iter()
        .flat_map(|(l, items)| refs(l, items))
        .filter_map(|r| {
            endpoints
                .iter()
                .find(|e| names(&r, e, &queue))
                .map(|e| (r, e))
        })
        .collect();
    let mut out = vec![placement(&lists, &ours, endpoints)];
    let Some((r, ep)) = ours.first() else {
        return out;
    };
    let items = &lists.iter().find(|(l, _)| *l == r.list).expect("a list").1;
    out.push(default_action(f, r, items));
    out.push(chroot(f, r, ep, &queue));
    match r.kind {
        Kind::Policy => out.push(timeouts(f, r)),
        Kind::Socketmap => out.push(map_name(r, ep)),
    }
    out
}

fn map_name(r: &Ref, ep: &Endpoint) -> Check {
    const NAME: &str = "postfix.socketmap_name";
    let asked = r.endpoint.rsplit_once(':').map(|(_, n)| n).unwrap_or("");
    let answered = ep.map.as_deref().unwrap_or("relaylease");
    if asked == answered {
        Check::ok(
            NAME,
            format!("the lookup asks for map {asked}, which the daemon serves."),
        )
    } else {
        Check::fail(
            NAME,
            format!(
                "{} asks for map '{asked}', but the daemon serves '{answered}': every lookup fails.",
                r.endpoint
            ),
            format!("start the daemon with --socketmap-name {asked}."),
        )
    }
}

fn show(endpoints: &[Endpoint]) -> String {
    endpoints
        .iter()
        .map(|e| e.addr.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn suggestion(ep: &Endpoint) -> String {
    match ep.kind {
        Kind::Policy => format!(
            "check_policy_service {{ {}, timeout=10s, default_action=DUNNO }}",
            ep.addr
        ),
        Kind::Socketmap => format!("check_client_access socketmap:{}:relaylease", ep.addr),
    }
}

fn placement(
    lists: &[(&'static str, Vec<Item>)],
    ours: &[(Ref, &Endpoint)],
    endpoints: &[Endpoint],
) -> Check {
    const NAME: &str = "postfix.placement";
    let reject = ["reject_unauth_destination", "defer_unauth_destination"];
    let Some(first) = endpoints.first() else {
        return Check::warn(
            NAME,
            "the daemon is given no --policy or --socketmap, so Postfix cannot ask it.",
            "give the daemon --policy ADDR and name ADDR in main.cf.",
        );
    };
    let Some((r, _)) = ours.first() else {
        return Check::fail(
            NAME,
            format!(
                "neither smtpd_relay_restrictions nor smtpd_recipient_restrictions asks relaylease at {}, so no lease lets anyone relay.",
                show(endpoints)
            ),
            format!(
                "add `{}` to smtpd_relay_restrictions just before reject_unauth_destination.",
                suggestion(first)
            ),
        );
    };
    let items = &lists.iter().find(|(l, _)| *l == r.list).expect("a list").1;
    match position(items, &reject) {
        Some(rej) if rej < r.pos => {
            return Check::fail(
                NAME,
                format!(
                    "{} asks relaylease ({}) after reject_unauth_destination, which has already refused every relay.",
                    r.list, r.endpoint
                ),
                format!(
                    "move the relaylease check before reject_unauth_destination in {}.",
                    r.list
                ),
            );
        }
        Some(_) => {}
        None => {
            return Check::fail(
                NAME,
                format!(
                    "{} asks relaylease ({}) but has no reject_unauth_destination, so its OK is not what decides relaying there.",
                    r.list, r.endpoint
                ),
                "put the relaylease check in the list that ends with reject_unauth_destination (smtpd_relay_restrictions).",
            );
        }
    }
    // smtpd applies the relay list first: a reject there comes before a check in the
    // recipient list.
    if r.list == "smtpd_recipient_restrictions"
        && let Some((_, relay)) = lists.iter().find(|(l, _)| *l == "smtpd_relay_restrictions")
        && position(relay, &reject).is_some()
    {
        return Check::fail(
            NAME,
            format!(
                "relaylease ({}) is asked in smtpd_recipient_restrictions, but smtpd_relay_restrictions, applied first, already refuses relaying with reject_unauth_destination.",
                r.endpoint
            ),
            "move the relaylease check into smtpd_relay_restrictions before reject_unauth_destination.",
        );
    }
    Check::ok(
        NAME,
        format!(
            "{} asks relaylease ({}) before reject_unauth_destination.",
            r.list, r.endpoint
        ),
    )
}

fn attr<'a>(r: &'a Ref, name: &str) -> Option<&'a str> {
    r.attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn default_action(f: &Facts<'_>, r: &Ref, items: &[Item]) -> Check {
    const NAME: &str = "postfix.default_action";
    let harmless = position(items, &["permit_auth_destination"]).is_some_and(|p| p < r.pos);
    if r.kind == Kind::Socketmap {
        return if harmless {
            Check::ok(
                NAME,
                "permit_auth_destination comes first, so a lookup failure while the daemon is down defers only relay attempts.",
            )
        } else {
            Check::warn(
                NAME,
                "while the daemon is down the socketmap lookup fails and Postfix defers every recipient (451), local mail included.",
                "put permit_auth_destination before the relaylease lookup.",
            )
        };
    }
    let action =
        attr(r, "default_action").unwrap_or_else(|| f.param("smtpd_policy_service_default_action"));
    if action.eq_ignore_ascii_case("dunno") {
        return Check::ok(
            NAME,
            "default_action=DUNNO: while the daemon is down the rest of the list decides.",
        );
    }
    if harmless {
        return Check::ok(
            NAME,
            format!(
                "default action '{action}', but permit_auth_destination comes first, so only relay attempts are deferred while the daemon is down."
            ),
        );
    }
    Check::fail(
        NAME,
        format!(
            "the policy check has default action '{action}': while the daemon is down Postfix defers every recipient, local mail included."
        ),
        format!(
            "write it as check_policy_service {{ {}, default_action=DUNNO }}.",
            r.endpoint
        ),
    )
}

fn chroot(f: &Facts<'_>, r: &Ref, ep: &Endpoint, queue: &Path) -> Check {
    const NAME: &str = "postfix.chroot";
    let (ListenAddr::Unix(daemon), Some(Target::Unix(p))) = (&ep.addr, target(r.kind, &r.endpoint))
    else {
        return Check::ok(
            NAME,
            format!("{} is a TCP endpoint: no chroot matters.", r.endpoint),
        );
    };
    let smtpds = f
        .services
        .iter()
        .filter(|s| s.command == "smtpd" && s.kind == "inet");
    for s in smtpds {
        let seen = resolve(&p, queue, s.chroot);
        if seen != *daemon {
            let how = if s.chroot {
                format!("chrooted in {}", queue.display())
            } else {
                "not chrooted".to_string()
            };
            return Check::fail(
                NAME,
                format!(
                    "smtpd (master.cf service {}, {how}) looks for {}, but the daemon listens on {}.",
                    s.name,
                    seen.display(),
                    daemon.display()
                ),
                if s.chroot {
                    format!(
                        "listen inside the chroot (--policy unix:{}/private/relaylease, main.cf unix:private/relaylease), or use --policy inet:127.0.0.1:10031.",
                        queue.display()
                    )
                } else {
                    format!("name unix:{} in main.cf.", daemon.display())
                },
            );
        }
    }
    Check::ok(
        NAME,
        format!("every smtpd finds the socket at {}.", daemon.display()),
    )
}

fn timeouts(f: &Facts<'_>, r: &Ref) -> Check {
    const NAME: &str = "postfix.timeouts";
    let timeout_v = attr(r, "timeout").unwrap_or_else(|| f.param("smtpd_policy_service_timeout"));
    let idle_v = attr(r, "max_idle").unwrap_or_else(|| f.param("smtpd_policy_service_max_idle"));
    let (Some(timeout), Some(idle)) = (parse_seconds(timeout_v), parse_seconds(idle_v)) else {
        return Check::fail(
            NAME,
            format!(
                "cannot read the policy timeouts (timeout '{timeout_v}', max_idle '{idle_v}')."
            ),
            "set timeout=10s in the check_policy_service group.",
        );
    };
    if timeout == 0 {
        return Check::fail(
            NAME,
            "the policy check's timeout is 0: every request times out.",
            "set timeout=10s in the check_policy_service group.",
        );
    }
    if idle >= DAEMON_IDLE {
        return Check::warn(
            NAME,
            format!(
                "max_idle is {idle}s, but the daemon closes idle policy connections after {DAEMON_IDLE}s, so Postfix may write to a closed connection."
            ),
            "leave smtpd_policy_service_max_idle at its 300s default.",
        );
    }
    if timeout > 30 {
        return Check::warn(
            NAME,
            format!(
                "the policy check waits up to {timeout}s: a daemon that hangs holds every SMTP session that long."
            ),
            "set timeout=10s in the check_policy_service group.",
        );
    }
    Check::ok(NAME, format!("timeout {timeout}s, max_idle {idle}s."))
}

/// Can user postfix connect to the daemon's unix socket (`probe`: the result of really
/// connecting as postfix)?
pub fn socket_access(path: &Path, probe: Result<(), nix::errno::Errno>) -> Check {
    const NAME: &str = "postfix.socket_access";
    use nix::errno::Errno;
    match probe {
        Ok(()) => Check::ok(
            NAME,
            format!("user postfix can connect to {}.", path.display()),
        ),
        Err(Errno::EACCES | Errno::EPERM) => Check::fail(
            NAME,
            format!(
                "user postfix may not connect to {} (its mode, group or a directory above it), so smtpd's check fails.",
                path.display()
            ),
            "start the daemon with --policy-mode 0666, or --policy-group postfix --policy-mode 0660.",
        ),
        Err(Errno::ENOENT | Errno::ECONNREFUSED) => Check::warn(
            NAME,
            format!("nothing listens on {} to check.", path.display()),
            "start the daemon, then run doctor again.",
        ),
        Err(e) => Check::warn(
            NAME,
            format!("connecting to {} as postfix: {}.", path.display(), e.desc()),
            "start the daemon, then run doctor again.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    fn run(
        relay: &str,
        recipient: &str,
        extra: &[(&str, &str)],
        master: &str,
        ep: &str,
    ) -> Vec<Check> {
        let mut params: HashMap<String, String> = [
            ("smtpd_relay_restrictions", relay),
            ("smtpd_recipient_restrictions", recipient),
            ("smtpd_policy_service_timeout", "100s"),
            ("smtpd_policy_service_max_idle", "300s"),
            (
                "smtpd_policy_service_default_action",
                "451 4.3.5 Server configuration problem",
            ),
            ("queue_directory", "/var/spool/postfix"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            params.insert(k.to_string(), v.to_string());
        }
        let services = parse_master(master);
        let (kind, addr) = match ep.strip_prefix("socketmap ") {
            Some(a) => (Kind::Socketmap, a),
            None => (Kind::Policy, ep),
        };
        let addr = crate::listen::parse_listen_addr("--policy", addr).unwrap();
        let map = (kind == Kind::Socketmap).then(|| "relaylease".to_string());
        check(
            &Facts {
                params: &params,
                services: &services,
            },
            &[Endpoint { kind, addr, map }],
        )
    }

    const SMTPD_N: &str = "smtp inet n - n - - smtpd\n";
    const SMTPD_Y: &str = "smtp inet n - y - - smtpd\npickup unix n - y 60 1 pickup\n";
    const GOOD: &str = "permit_mynetworks, permit_sasl_authenticated, check_policy_service { unix:/run/relaylease/policy.sock, timeout=10s, default_action=DUNNO }, reject_unauth_destination";

    fn status(cs: &[Check], name: &str) -> Status {
        cs.iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} in {cs:?}"))
            .status
    }

    #[test]
    fn the_contrib_recipe_is_fine_without_chroot() {
        let cs = run(GOOD, "", &[], SMTPD_N, "unix:/run/relaylease/policy.sock");
        assert!(cs.iter().all(|c| c.status == Status::Ok), "{cs:?}");
        assert_eq!(cs.len(), 4);
    }

    #[test]
    fn after_reject_unauth_destination_fails() {
        let l = "permit_mynetworks reject_unauth_destination check_policy_service unix:/run/relaylease/policy.sock";
        let cs = run(l, "", &[], SMTPD_N, "unix:/run/relaylease/policy.sock");
        assert_eq!(status(&cs, "postfix.placement"), Status::Fail);
        assert!(cs[0].fix.contains("before reject_unauth_destination"));
    }

    #[test]
    fn absent_or_another_socket_fails() {
        let cs = run(
            "permit_mynetworks reject_unauth_destination",
            "",
            &[],
            SMTPD_N,
            "inet:127.0.0.1:10031",
        );
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].status, Status::Fail);
        assert!(cs[0].fix.contains("inet:127.0.0.1:10031"), "{}", cs[0].fix);
        let cs = run(GOOD, "", &[], SMTPD_N, "unix:/run/other.sock");
        assert_eq!(cs[0].status, Status::Fail);
    }

    #[test]
    fn in_the_recipient_list_behind_a_rejecting_relay_list_fails() {
        let cs = run(
            "permit_mynetworks reject_unauth_destination",
            "check_policy_service inet:127.0.0.1:10031, reject_unauth_destination",
            &[("smtpd_policy_service_default_action", "DUNNO")],
            SMTPD_N,
            "inet:127.0.0.1:10031",
        );
        assert_eq!(status(&cs, "postfix.placement"), Status::Fail);
        let cs = run(
            "",
            "check_policy_service inet:127.0.0.1:10031, reject_unauth_destination",
            &[("smtpd_policy_service_default_action", "DUNNO")],
            SMTPD_N,
            "inet:127.0.0.1:10031",
        );
        assert_eq!(status(&cs, "postfix.placement"), Status::Ok);
        assert_eq!(status(&cs, "postfix.chroot"), Status::Ok);
    }

    #[test]
    fn no_default_action_fails_unless_permit_auth_destination_comes_first() {
        let l = "permit_mynetworks check_policy_service unix:/run/relaylease/policy.sock reject_unauth_destination";
        let cs = run(l, "", &[], SMTPD_N, "unix:/run/relaylease/policy.sock");
        assert_eq!(status(&cs, "postfix.default_action"), Status::Fail);
        let l = "permit_auth_destination check_policy_service unix:/run/relaylease/policy.sock reject_unauth_destination";
        let cs = run(l, "", &[], SMTPD_N, "unix:/run/relaylease/policy.sock");
        assert_eq!(status(&cs, "postfix.default_action"), Status::Ok);
    }

    #[test]
    fn a_chrooted_smtpd_looks_under_the_queue_directory() {
        let cs = run(GOOD, "", &[], SMTPD_Y, "unix:/run/relaylease/policy.sock");
        assert_eq!(status(&cs, "postfix.placement"), Status::Ok);
        assert_eq!(status(&cs, "postfix.chroot"), Status::Fail);
        let c = cs.iter().find(|c| c.name == "postfix.chroot").unwrap();
        assert!(
            c.found
                .contains("/var/spool/postfix/run/relaylease/policy.sock"),
            "{c:?}"
        );
        let l = GOOD.replace(
            "unix:/run/relaylease/policy.sock",
            "unix:private/relaylease",
        );
        let cs = run(
            &l,
            "",
            &[],
            SMTPD_Y,
            "unix:/var/spool/postfix/private/relaylease",
        );
        assert!(cs.iter().all(|c| c.status == Status::Ok), "{cs:?}");
    }

    #[test]
    fn timeouts() {
        let l = GOOD.replace(", timeout=10s", "");
        let cs = run(&l, "", &[], SMTPD_N, "unix:/run/relaylease/policy.sock");
        assert_eq!(status(&cs, "postfix.timeouts"), Status::Warn);
        let cs = run(
            GOOD,
            "",
            &[("smtpd_policy_service_max_idle", "900s")],
            SMTPD_N,
            "unix:/run/relaylease/policy.sock",
        );
        assert_eq!(status(&cs, "postfix.timeouts"), Status::Warn);
        let l = GOOD.replace("timeout=10s", "timeout=0");
        let cs = run(&l, "", &[], SMTPD_N, "unix:/run/relaylease/policy.sock");
        assert_eq!(status(&cs, "postfix.timeouts"), Status::Fail);
    }

    #[test]
    fn socketmap_lookups_count() {
        let l = "permit_mynetworks permit_auth_destination check_client_access socketmap:inet:127.0.0.1:10033:relaylease reject_unauth_destination";
        let cs = run(l, "", &[], SMTPD_Y, "socketmap inet:127.0.0.1:10033");
        assert!(cs.iter().all(|c| c.status == Status::Ok), "{cs:?}");
        let other = l.replace(":relaylease ", ":pbs ");
        let cs = run(&other, "", &[], SMTPD_Y, "socketmap inet:127.0.0.1:10033");
        assert_eq!(status(&cs, "postfix.socketmap_name"), Status::Fail);
        let l = l.replace("permit_auth_destination ", "");
        let cs = run(&l, "", &[], SMTPD_Y, "socketmap inet:127.0.0.1:10033");
        assert_eq!(status(&cs, "postfix.default_action"), Status::Warn);
    }

    #[test]
    fn socket_access_names_the_flags() {
        let p = Path::new("/run/relaylease/policy.sock");
        assert_eq!(socket_access(p, Ok(())).status, Status::Ok);
        let c = socket_access(p, Err(nix::errno::Errno::EACCES));
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.contains("--policy-mode 0666"));
    }
}
