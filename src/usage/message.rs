//! Messages relayed through a lease, put together from Postfix's policy requests (pure).
//!
//! Postfix asks once per recipient, and every request of one message carries the same
//! `instance`. A message is open from its first leased recipient until one of: the DATA (or
//! END-OF-MESSAGE) request of the same instance, where `smtpd_data_restrictions` asks too and
//! `queue_id` is known; a request for another message on the same connection; the connection
//! closing; or [`QUIET`] without another recipient. Then it is finished: one audit line.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::lease::{Lease, Millis};

/// A message with no new recipient for this long is finished (Postfix sends its DATA request
/// right after the last RCPT, when it is configured to ask at DATA at all).
pub const QUIET: Millis = 60_000;
/// Recipients named in one audit line; the count is always exact.
pub const MAX_LISTED: usize = 20;

/// The lease an answer granted relay by, as the audit line shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Granted {
    pub net: IpNet,
    pub user: Option<String>,
    /// Where the login that granted (or last renewed) it came from.
    pub source: String,
    pub login_at: Millis,
}

impl From<Lease> for Granted {
    fn from(l: Lease) -> Granted {
        Granted {
            net: l.net,
            user: l.user,
            source: l.source,
            login_at: l.last_login,
        }
    }
}

/// What a Postfix policy request says about the message a leased recipient belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyUse {
    /// The policy connection it came on (one per smtpd process).
    pub conn: u64,
    pub instance: String,
    pub sender: String,
    pub recipient: String,
    /// Empty until Postfix has opened the queue file (after the first accepted recipient).
    pub queue_id: String,
}

/// A message relayed through a lease, for its audit line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    pub client: IpAddr,
    pub lease: Granted,
    pub instance: String,
    pub sender: String,
    /// The first [`MAX_LISTED`] recipients.
    pub recipients: Vec<String>,
    pub count: u64,
    pub queue_id: String,
    pub first_at: Millis,
}

#[derive(Debug)]
struct Open {
    msg: Finished,
    last_at: Millis,
}

/// The open messages, at most one per policy connection.
#[derive(Debug, Default)]
pub struct Messages {
    open: HashMap<u64, Open>,
}

impl Messages {
    /// A leased recipient. Returns whether it starts a new message, and the message it
    /// finished (the connection's previous one).
    pub fn rcpt(
        &mut self,
        at: Millis,
        client: IpAddr,
        lease: &Granted,
        u: PolicyUse,
    ) -> (bool, Option<Finished>) {
        let mut finished = None;
        if let Some(o) = self.open.get_mut(&u.conn) {
            if o.msg.instance == u.instance {
                o.last_at = at.max(o.last_at);
                o.msg.count += 1;
                if o.msg.recipients.len() < MAX_LISTED {
                    o.msg.recipients.push(u.recipient);
                }
                if !u.queue_id.is_empty() {
                    o.msg.queue_id = u.queue_id;
                }
                return (false, None);
            }
            finished = self.open.remove(&u.conn).map(|o| o.msg);
        }
        self.open.insert(
            u.conn,
            Open {
                msg: Finished {
                    client,
                    lease: lease.clone(),
                    instance: u.instance,
                    sender: u.sender,
                    recipients: vec![u.recipient],
                    count: 1,
                    queue_id: u.queue_id,
                    first_at: at,
                },
                last_at: at,
            },
        );
        (true, finished)
    }

    /// The DATA or END-OF-MESSAGE request of `instance`: the message is complete, and
    /// `queue_id` is known.
    pub fn data(&mut self, conn: u64, instance: &str, queue_id: &str) -> Option<Finished> {
        if self.open.get(&conn)?.msg.instance != instance {
            return None;
        }
        let mut msg = self.open.remove(&conn)?.msg;
        if !queue_id.is_empty() {
            msg.queue_id = queue_id.to_string();
        }
        Some(msg)
    }

    /// The connection closed: its message is as complete as it gets.
    pub fn closed(&mut self, conn: u64) -> Option<Finished> {
        self.open.remove(&conn).map(|o| o.msg)
    }

    /// Messages without a new recipient for [`QUIET`].
    pub fn quiet(&mut self, now: Millis) -> Vec<Finished> {
        let due: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, o)| now.saturating_sub(o.last_at) >= QUIET)
            .map(|(c, _)| *c)
            .collect();
        due.iter()
            .filter_map(|c| self.open.remove(c).map(|o| o.msg))
            .collect()
    }

    /// Every open message (at shutdown).
    pub fn finish_all(&mut self) -> Vec<Finished> {
        let mut all: Vec<Finished> = self.open.drain().map(|(_, o)| o.msg).collect();
        all.sort_by_key(|m| m.first_at);
        all
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Millis = 1_790_000_000_000;

    fn lease() -> Granted {
        Granted {
            net: "192.0.2.7/32".parse().unwrap(),
            user: Some("alice".into()),
            source: "/var/log/mail.log".into(),
            login_at: T - 60_000,
        }
    }

    fn rcpt(conn: u64, instance: &str, to: &str, queue_id: &str) -> PolicyUse {
        PolicyUse {
            conn,
            instance: instance.into(),
            sender: "alice@example.net".into(),
            recipient: to.into(),
            queue_id: queue_id.into(),
        }
    }

    fn client() -> IpAddr {
        "192.0.2.7".parse().unwrap()
    }

    #[test]
    fn recipients_of_one_instance_make_one_message_finished_at_data_with_the_queue_id() {
        let mut m = Messages::default();
        let l = lease();
        assert_eq!(
            m.rcpt(T, client(), &l, rcpt(1, "i1", "a@x.example", "")),
            (true, None)
        );
        assert_eq!(
            m.rcpt(T + 1, client(), &l, rcpt(1, "i1", "b@x.example", "4F1A2B")),
            (false, None)
        );
        // Another connection's message is its own.
        assert!(
            m.rcpt(T + 1, client(), &l, rcpt(2, "i9", "c@x.example", ""))
                .0
        );
        // A DATA request of another instance finishes nothing.
        assert_eq!(m.data(1, "i2", "77"), None);
        let done = m.data(1, "i1", "4F1A2B").expect("finished at DATA");
        assert_eq!(done.recipients, ["a@x.example", "b@x.example"]);
        assert_eq!((done.count, done.queue_id.as_str()), (2, "4F1A2B"));
        assert_eq!(done.lease, l);
        // END-OF-MESSAGE after DATA: already finished.
        assert_eq!(m.data(1, "i1", "4F1A2B"), None);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn without_a_data_request_the_next_message_the_close_or_quiet_finishes_it() {
        let mut m = Messages::default();
        let l = lease();
        m.rcpt(T, client(), &l, rcpt(1, "i1", "a@x.example", ""));
        m.rcpt(T, client(), &l, rcpt(1, "i1", "b@x.example", "Q1"));
        let (new, prev) = m.rcpt(T + 5, client(), &l, rcpt(1, "i2", "c@x.example", ""));
        assert!(new);
        let prev = prev.expect("the next message finishes the previous one");
        assert_eq!(
            (prev.instance.as_str(), prev.count, prev.queue_id.as_str()),
            ("i1", 2, "Q1")
        );
        assert_eq!(m.closed(1).map(|f| f.instance), Some("i2".to_string()));
        assert_eq!(m.closed(1), None);
        m.rcpt(T, client(), &l, rcpt(3, "i3", "d@x.example", ""));
        assert!(m.quiet(T + QUIET - 1).is_empty());
        assert_eq!(m.quiet(T + QUIET).len(), 1);
        assert!(m.is_empty());
    }

    #[test]
    fn a_long_list_of_recipients_is_counted_exactly_and_listed_in_part() {
        let mut m = Messages::default();
        let l = lease();
        for i in 0..100 {
            m.rcpt(
                T,
                client(),
                &l,
                rcpt(1, "i1", &format!("r{i}@x.example"), ""),
            );
        }
        let all = m.finish_all();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].count, all[0].recipients.len()), (100, MAX_LISTED));
    }
}
