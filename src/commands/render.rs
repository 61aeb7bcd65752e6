//! How the commands show what the daemon answered: tables and lines for people, JSON and
//! Prometheus text for programs.

use crate::lease::{Lease, Millis, local_tm, show_key, show_remaining};
use crate::store::StatsSnapshot;

/// `HH:MM:SS` in local time.
fn local_time(ms: Millis) -> String {
    match local_tm(ms) {
        Some(tm) => format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec),
        None => format!("@{}", ms / 1000),
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

/// `list`'s table: one row per lease, columns as wide as their widest cell.
pub fn lease_table(leases: &[Lease], now: Millis) -> String {
    use std::fmt::Write;
    let mut text = String::new();
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
            text,
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
        text.push_str("(no leases)\n");
    }
    text
}

pub fn show_stats(s: &StatsSnapshot) -> String {
    let mut out = format!(
        "leases active: {}\nsessions open: {}\ngranted: {}\nrenewed: {}\nrefused: {}\nexpired: {}\ndeleted: {}\npolicy OK: {}\npolicy DUNNO: {}\npolicy DEFER_IF_REJECT: {}\npolicy PREPEND: {}\nrelayed messages: {}\nrelayed recipients: {}\nrelay checks: {}\nusage lost: {}\nerrors: {}\nforged logins refused: {}\n",
        s.leases_active,
        s.sessions_open,
        s.granted,
        s.renewed,
        s.refused,
        s.expired,
        s.deleted,
        s.policy_ok,
        s.policy_dunno,
        s.policy_defer,
        s.policy_prepend,
        s.relayed_messages,
        s.relayed_recipients,
        s.relay_checks,
        s.usage_lost,
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
            ("{action=\"DEFER_IF_REJECT\"}".into(), s.policy_defer),
            ("{action=\"PREPEND\"}".into(), s.policy_prepend),
        ],
    );
    metric(
        "relayed_messages_total",
        "counter",
        "Messages relayed through a lease (Postfix policy service).",
        one(s.relayed_messages),
    );
    metric(
        "relayed_recipients_total",
        "counter",
        "Recipients relayed through a lease (Postfix policy service).",
        one(s.relayed_recipients),
    );
    metric(
        "relay_checks_total",
        "counter",
        "Relay checks answered yes through a lease (socketmap, Exim CHECK, smtp-wrap).",
        one(s.relay_checks),
    );
    metric(
        "usage_lost_total",
        "counter",
        "Lease uses and logins not recorded in the usage table (queue full or store failing).",
        one(s.usage_lost),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_is_well_formed_and_escapes_labels() {
        let mut s = StatsSnapshot {
            leases_active: 3,
            policy_ok: 7,
            relayed_messages: 4,
            relayed_recipients: 9,
            usage_lost: 1,
            ..Default::default()
        };
        s.logins_by_source.insert("/var/log/a \"b\".log".into(), 2);
        let text = prometheus(&s);
        assert!(text.contains("relaylease_leases_active 3\n"), "{text}");
        assert!(text.contains("relaylease_policy_answers_total{action=\"OK\"} 7\n"));
        assert!(
            text.contains("relaylease_relayed_messages_total 4\n"),
            "{text}"
        );
        assert!(
            text.contains("relaylease_relayed_recipients_total 9\n"),
            "{text}"
        );
        assert!(text.contains("relaylease_usage_lost_total 1\n"), "{text}");
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
