//! Answers that let a client relay because of a lease record the use (see [`crate::usage`]):
//! the Postfix policy service per connection ([`PolicySession`]: messages, the
//! `--mark-header` PREPEND at DATA, `--unleased-action defer`), the socketmap and Exim's
//! `CHECK` ([`grants`]), smtp-wrap ([`relay_check`]) and the cdb's `TCPREMOTEINFO`
//! ([`cdb_marks`]). A grant by `--allow` is not a lease use and is not recorded.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::postfix_policy_proto::{Action, RequestRef, client_ip_bytes, reply, write_prepend};
use crate::cli::UnleasedAction;
use crate::control::proto::Reply;
use crate::counters::Counters;
use crate::lease::{Lease, Millis, parse_ip};
use crate::store::{Answer, Grant, LeaseRef, Leases};
use crate::usage::policy_log::PolicyEvent;
use crate::usage::{Event, Method, Use};

/// May `ip` relay? Records the use when a lease says yes. The answer is the one
/// [`Leases::allowed`] gives; recording copies the lease's user and source, nothing more.
pub fn grants(leases: &Leases, ip: IpAddr, now: Millis, method: Method) -> bool {
    let Some(usage) = leases.usage() else {
        return leases.allowed(ip, now);
    };
    match leases.grant(ip, now, |l| Use::new(l, now, ip, method, 0, [""; 4])) {
        Grant::Lease(u) => {
            usage.send(Event::Use(u), &leases.stats);
            true
        }
        Grant::Static => true,
        Grant::No => false,
    }
}

/// smtp-wrap's `relay` request: the `check` reply, recorded as a use when a lease grants
/// it, with the user (or token) for `TCPREMOTEINFO` when `--mark-header` is set.
pub fn relay_check(leases: &Leases, addr: String, now: Millis) -> crate::Result<Reply> {
    let ip = parse_ip(&addr)?;
    let answer = leases.check(ip, now);
    let (lease, static_net, remote_info) = match &answer {
        Answer::Lease(l) => {
            let usage = leases.usage();
            let info = usage.and_then(|u| u.mark_who(l.user.as_deref(), &l.net));
            if let Some(u) = usage {
                let r = LeaseRef {
                    net: l.net,
                    user: l.user.as_deref(),
                    source: &l.source,
                    last_login: l.last_login,
                };
                let used = Use::new(&r, now, ip, Method::SmtpWrap, 0, [""; 4]);
                u.send(Event::Use(used), &leases.stats);
            }
            (Some(l.clone()), None, info)
        }
        Answer::Static(n) => (None, Some(*n), None),
        Answer::No => (None, None, None),
    };
    Ok(Reply::Check {
        addr,
        allowed: answer.allowed(),
        now,
        lease,
        static_net,
        remote_info,
    })
}

/// With `--mark-header`: each lease's `TCPREMOTEINFO` for the tcprules cdb (the user or
/// token qmail-smtpd writes into its Received header); empty otherwise.
pub fn cdb_marks(leases: &Leases, list: &[Lease]) -> Vec<Option<String>> {
    match leases.usage() {
        Some(u) if u.settings.mark_header.is_some() => list
            .iter()
            .map(|l| u.mark_who(l.user.as_deref(), &l.net))
            .collect(),
        _ => Vec::new(),
    }
}

/// The message the connection's last leased recipient belongs to.
struct Leased {
    instance: Vec<u8>,
    /// Its DATA (or END-OF-MESSAGE) request was seen.
    data_seen: bool,
    /// With `--mark-header`: the lease's user, key and login time, for the header.
    mark: Option<(Option<String>, IpNet, Millis)>,
}

/// One Postfix policy connection (one smtpd process): what it needs to remember between
/// requests, which is the message that relayed through a lease last.
pub struct PolicySession {
    leases: Arc<Leases>,
    counters: Arc<Counters>,
    conn: u64,
    leased: Option<Leased>,
}

impl PolicySession {
    pub fn new(leases: &Arc<Leases>, counters: &Arc<Counters>) -> PolicySession {
        PolicySession {
            leases: leases.clone(),
            counters: counters.clone(),
            conn: leases.usage().map_or(0, |u| u.next_conn()),
            leased: None,
        }
    }

    /// Answer one request into `out`. At RCPT (and any stage but DATA and END-OF-MESSAGE):
    /// OK for a leased or `--allow`ed client, else DUNNO (DEFER_IF_REJECT at RCPT with
    /// `--unleased-action defer`); only an OK at RCPT is recorded as a use. At DATA and END-OF-MESSAGE never OK: PREPEND of the mark
    /// header at DATA for a message that relayed through a lease, else DUNNO.
    pub fn answer(&mut self, req: &RequestRef<'_>, now: Millis, out: &mut Vec<u8>) {
        let leases = &*self.leases;
        let counters = &*self.counters;
        let state = req.protocol_state();
        if let Some(s @ (b"DATA" | b"END-OF-MESSAGE")) = state {
            self.data_stage(req, s == b"DATA", out);
            return;
        }
        let raw = req.client_address();
        let Some(ip) = client_ip_bytes(raw) else {
            Counters::bump(&counters.policy_dunno);
            let shown = raw.map(String::from_utf8_lossy);
            tracing::warn!(
                client_address = shown.as_deref().unwrap_or(""),
                "policy request without a usable client_address: DUNNO"
            );
            out.extend_from_slice(reply(Action::Dunno));
            return;
        };
        // Relay is decided at RCPT: an OK at another stage (a policy asked from
        // smtpd_client_restrictions, say) is no use of the lease.
        let usage = leases.usage().filter(|_| state == Some(b"RCPT"));
        let Some(usage) = usage else {
            if leases.allowed(ip, now) {
                return ok(counters, ip, out);
            }
            return dunno(counters, out);
        };
        let instance = req.instance().unwrap_or_default();
        let mark = usage.settings.mark_header.is_some();
        let granted = leases.grant(ip, now, |l| {
            let request = [
                Some(instance),
                req.sender(),
                req.recipient(),
                req.queue_id(),
            ];
            let e = PolicyEvent::Use {
                lease: l,
                at: now,
                client: ip,
                conn: self.conn,
                request: request.map(Option::unwrap_or_default),
            };
            usage.policy(&e, &leases.stats);
            mark.then(|| (l.user.map(str::to_string), l.net, l.last_login))
        });
        match granted {
            Grant::Lease(m) => {
                let leased = self.leased.get_or_insert_with(|| Leased {
                    instance: Vec::new(),
                    data_seen: false,
                    mark: None,
                });
                if leased.instance != instance || leased.data_seen {
                    leased.instance.clear();
                    leased.instance.extend_from_slice(instance);
                    leased.data_seen = false;
                }
                leased.mark = m;
                ok(counters, ip, out)
            }
            Grant::Static => ok(counters, ip, out),
            Grant::No
                if state == Some(b"RCPT") && usage.settings.unleased == UnleasedAction::Defer =>
            {
                Counters::bump(&counters.policy_defer);
                out.extend_from_slice(reply(Action::DeferIfReject));
            }
            Grant::No => dunno(counters, out),
        }
    }

    fn data_stage(&mut self, req: &RequestRef<'_>, at_data: bool, out: &mut Vec<u8>) {
        let leases = &*self.leases;
        let instance = req.instance().unwrap_or_default();
        if let (Some(usage), Some(l)) = (leases.usage(), self.leased.as_mut())
            && l.instance == instance
        {
            if !l.data_seen {
                l.data_seen = true;
                let e = PolicyEvent::Data {
                    conn: self.conn,
                    instance,
                    queue_id: req.queue_id().unwrap_or_default(),
                };
                usage.policy(&e, &leases.stats);
            }
            if at_data
                && let Some((user, net, login_at)) = &l.mark
                && let Some((name, value)) = usage.header(user.as_deref(), net, *login_at)
            {
                Counters::bump(&self.counters.policy_prepend);
                write_prepend(out, name, &value);
                return;
            }
        }
        dunno(&self.counters, out);
    }
}

fn ok(counters: &Counters, ip: IpAddr, out: &mut Vec<u8>) {
    Counters::bump(&counters.policy_ok);
    tracing::debug!(addr = %ip, "policy: OK");
    out.extend_from_slice(reply(Action::Ok));
}

fn dunno(counters: &Counters, out: &mut Vec<u8>) {
    Counters::bump(&counters.policy_dunno);
    out.extend_from_slice(reply(Action::Dunno));
}

impl Drop for PolicySession {
    fn drop(&mut self) {
        if self.leased.is_some()
            && let Some(u) = self.leases.usage()
        {
            u.policy(&PolicyEvent::Closed { conn: self.conn }, &self.leases.stats);
        }
    }
}
