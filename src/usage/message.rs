//! Messages relayed through a lease, put together from Postfix's policy requests (pure).
//!
//! Postfix asks once per recipient, and every request of one message carries the same
//! `instance`. A message is open from its first leased recipient until one of: the DATA (or
//! END-OF-MESSAGE) request of the same instance, where `smtpd_data_restrictions` asks too and
//! `queue_id` is known; a request for another message on the same connection; the connection
//! closing; or [`QUIET`] without another recipient. Then it is finished: one audit line.

use std::collections::HashMap;

use super::{Text, Use};
use crate::lease::Millis;

/// A message with no new recipient for this long is finished (Postfix sends its DATA request
/// right after the last RCPT, when it is configured to ask at DATA at all).
pub const QUIET: Millis = 60_000;
/// Recipients named in one audit line; the count is always exact.
pub const MAX_LISTED: usize = 20;

/// A message relayed through a lease, for its audit line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// Its first leased recipient: client, lease, instance, sender, first recipient.
    pub first: Use,
    /// The next recipients, up to [`MAX_LISTED`] in all.
    pub more: Vec<String>,
    pub count: u64,
    /// The latest queue id Postfix sent, if the first request had none.
    pub queue_id: Option<String>,
}

impl Finished {
    pub fn queue_id(&self) -> &str {
        self.queue_id
            .as_deref()
            .unwrap_or_else(|| self.first.text(Text::QueueId))
    }

    /// The recipients named, in order.
    pub fn recipients(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.first.text(Text::Recipient))
            .chain(self.more.iter().map(String::as_str))
    }
}

#[derive(Debug)]
struct Open {
    msg: Finished,
    last_at: Millis,
}

/// The open messages, at most one per policy connection.
#[derive(Debug, Default)]
pub struct Messages {
    open: HashMap<u64, Open, super::table::Fast>,
}

impl Messages {
    /// Would [`Self::rcpt`] start a new message with `u`?
    pub fn starts_new(&self, u: &Use) -> bool {
        self.open
            .get(&u.conn)
            .is_none_or(|o| o.msg.first.text(Text::Instance) != u.text(Text::Instance))
    }

    /// A leased recipient. Returns whether it starts a new message, and the message it
    /// finished (the connection's previous one).
    pub fn rcpt(&mut self, u: Use) -> (bool, Option<Finished>) {
        if let Some(o) = self.open.get_mut(&u.conn)
            && o.msg.first.text(Text::Instance) == u.text(Text::Instance)
        {
            o.last_at = u.at.max(o.last_at);
            o.msg.count += 1;
            if o.msg.more.len() + 1 < MAX_LISTED {
                o.msg.more.push(u.text(Text::Recipient).to_string());
            }
            let q = u.text(Text::QueueId);
            if !q.is_empty() && q != o.msg.queue_id() {
                o.msg.queue_id = Some(q.to_string());
            }
            return (false, None);
        }
        let open = Open {
            last_at: u.at,
            msg: Finished {
                first: u,
                more: Vec::new(),
                count: 1,
                queue_id: None,
            },
        };
        let finished = self.open.insert(open.msg.first.conn, open).map(|o| o.msg);
        (true, finished)
    }

    /// The DATA or END-OF-MESSAGE request of `instance`: the message is complete, and
    /// `queue_id` is known.
    pub fn data(&mut self, conn: u64, instance: &str, queue_id: &str) -> Option<Finished> {
        if self.open.get(&conn)?.msg.first.text(Text::Instance) != instance {
            return None;
        }
        let mut msg = self.open.remove(&conn)?.msg;
        if !queue_id.is_empty() {
            msg.queue_id = Some(queue_id.to_string());
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
        all.sort_by_key(|m| m.first.at);
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
    use crate::store::LeaseRef;
    use crate::usage::Method;

    const T: Millis = 1_790_000_000_000;

    fn rcpt(at: Millis, conn: u64, instance: &str, to: &str, queue_id: &str) -> Use {
        let l = LeaseRef {
            net: "192.0.2.7/32".parse().unwrap(),
            user: Some("alice"),
            source: "/var/log/mail.log",
            last_login: T - 60_000,
        };
        Use::new(
            &l,
            at,
            "192.0.2.7".parse().unwrap(),
            Method::PostfixPolicy,
            conn,
            [instance, "alice@example.net", to, queue_id],
        )
    }

    #[test]
    fn recipients_of_one_instance_make_one_message_finished_at_data_with_the_queue_id() {
        let mut m = Messages::default();
        assert!(m.starts_new(&rcpt(T, 1, "i1", "a@x.example", "")));
        assert_eq!(m.rcpt(rcpt(T, 1, "i1", "a@x.example", "")), (true, None));
        assert!(!m.starts_new(&rcpt(T, 1, "i1", "a@x.example", "")));
        assert_eq!(
            m.rcpt(rcpt(T + 1, 1, "i1", "b@x.example", "4F1A2B")),
            (false, None)
        );
        // Another connection's message is its own.
        assert!(m.rcpt(rcpt(T + 1, 2, "i9", "c@x.example", "")).0);
        // A DATA request of another instance finishes nothing.
        assert_eq!(m.data(1, "i2", "77"), None);
        let done = m.data(1, "i1", "4F1A2B").expect("finished at DATA");
        assert_eq!(
            done.recipients().collect::<Vec<_>>(),
            ["a@x.example", "b@x.example"]
        );
        assert_eq!((done.count, done.queue_id()), (2, "4F1A2B"));
        assert_eq!(done.first.user(), Some("alice"));
        assert_eq!(done.first.text(Text::Source), "/var/log/mail.log");
        // END-OF-MESSAGE after DATA: already finished.
        assert_eq!(m.data(1, "i1", "4F1A2B"), None);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn without_a_data_request_the_next_message_the_close_or_quiet_finishes_it() {
        let mut m = Messages::default();
        m.rcpt(rcpt(T, 1, "i1", "a@x.example", ""));
        m.rcpt(rcpt(T, 1, "i1", "b@x.example", "Q1"));
        let (new, prev) = m.rcpt(rcpt(T + 5, 1, "i2", "c@x.example", ""));
        assert!(new);
        let prev = prev.expect("the next message finishes the previous one");
        assert_eq!(
            (prev.first.text(Text::Instance), prev.count, prev.queue_id()),
            ("i1", 2, "Q1")
        );
        assert_eq!(
            m.closed(1)
                .map(|f| f.first.text(Text::Instance).to_string()),
            Some("i2".to_string())
        );
        assert_eq!(m.closed(1), None);
        m.rcpt(rcpt(T, 3, "i3", "d@x.example", ""));
        assert!(m.quiet(T + QUIET - 1).is_empty());
        assert_eq!(m.quiet(T + QUIET).len(), 1);
        assert!(m.is_empty());
    }

    #[test]
    fn a_long_list_of_recipients_is_counted_exactly_and_listed_in_part() {
        let mut m = Messages::default();
        for i in 0..100 {
            m.rcpt(rcpt(T, 1, "i1", &format!("r{i}@x.example"), ""));
        }
        let all = m.finish_all();
        assert_eq!(all.len(), 1);
        assert_eq!(
            (all[0].count, all[0].recipients().count()),
            (100, MAX_LISTED)
        );
    }
}
