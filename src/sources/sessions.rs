//! Open POP3/IMAP sessions: a client that stays logged in (IMAP IDLE all day) keeps its
//! lease while its session is open, and its window runs from the session's end.
//!
//! Pure bookkeeping with time as a parameter; the follower's sink turns what it returns
//! into lease extensions. Sessions live in memory only: after a restart the daemon does not
//! know them, and their leases run out a window after their last extension, like a plain
//! login's (that is the safe way to forget).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use super::logparse::SessionKey;
use crate::lease::Millis;

/// How many open sessions are tracked at most. A full table holds no new sessions (their
/// logins still get the ordinary window), so a hostile log cannot grow it.
pub const CAP: usize = 100_000;

/// The open sessions of one daemon, by the server's session name.
#[derive(Debug)]
pub struct Sessions {
    open: HashMap<SessionKey, IpAddr>,
    held: HashMap<IpAddr, Held>,
    cap: usize,
}

/// One address with open sessions.
#[derive(Debug, Clone, Copy)]
struct Held {
    count: u32,
    /// No extension beyond this: the latest of its logins plus `--max-session-hold`.
    ceiling: Millis,
    /// The lease is known to run at least a window past this.
    extended: Millis,
}

fn ms(d: Duration) -> Millis {
    d.as_millis().min(u128::from(Millis::MAX)) as Millis
}

impl Sessions {
    pub fn new(cap: usize) -> Self {
        Sessions {
            open: HashMap::new(),
            held: HashMap::new(),
            cap,
        }
    }

    /// A login at `at` that was granted a lease opened session `key`. A key still open is a
    /// server process reused for a new client (Cyrus): that ends the earlier session, and
    /// its address comes back as [`Sessions::close`] would return it. False when the table
    /// is full and the session is not held.
    pub fn open(
        &mut self,
        key: SessionKey,
        ip: IpAddr,
        at: Millis,
        hold: Duration,
    ) -> (bool, Option<IpAddr>) {
        let ended = self.close(&key);
        if self.open.len() >= self.cap {
            return (false, ended);
        }
        self.open.insert(key, ip);
        let ceiling = at.saturating_add(ms(hold));
        let h = self.held.entry(ip).or_insert(Held {
            count: 0,
            ceiling,
            extended: at,
        });
        h.count += 1;
        h.ceiling = h.ceiling.max(ceiling);
        h.extended = h.extended.max(at);
        (true, ended)
    }

    /// Session `key` ended. Returns its address when that was the address's last open
    /// session: its lease should now run a window from the end. Unknown keys (sessions
    /// opened before a restart, or never granted) are ignored.
    pub fn close(&mut self, key: &SessionKey) -> Option<IpAddr> {
        let ip = self.open.remove(key)?;
        let h = self.held.get_mut(&ip)?;
        h.count = h.count.saturating_sub(1);
        if h.count > 0 {
            return None;
        }
        self.held.remove(&ip);
        Some(ip)
    }

    /// The extensions due at `now`: every held address whose lease was last extended half
    /// a window ago gets `now + window`, capped at its ceiling. Addresses past their
    /// ceiling (a logout line that never came) are let go.
    pub fn due(&mut self, now: Millis, window: Duration) -> Vec<(IpAddr, Millis)> {
        let window = ms(window);
        let mut out = Vec::new();
        let mut let_go = false;
        self.held.retain(|ip, h| {
            if h.ceiling <= now {
                let_go = true;
                return false;
            }
            if now.saturating_sub(h.extended) >= window / 2 {
                h.extended = now;
                out.push((*ip, now.saturating_add(window).min(h.ceiling)));
            }
            true
        });
        if let_go {
            let held = &self.held;
            self.open.retain(|_, ip| held.contains_key(ip));
        }
        out
    }

    /// Open sessions.
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
    use crate::sources::logparse::{Event, LineParser};

    const MIN: Millis = 60_000;
    const WINDOW: Duration = Duration::from_secs(30 * 60);
    const HOLD: Duration = Duration::from_secs(24 * 3600);

    /// Session keys as the parser makes them, from real-looking Dovecot lines.
    fn key(pid: u32) -> SessionKey {
        let mut p = LineParser::new(None, vec![]);
        let line = format!(
            "Nov 22 03:08:41 vm dovecot: imap-login: Login: user=<a>, method=PLAIN, rip=192.0.2.1, lip=192.0.2.2, mpid={pid}, session=<S{pid}>"
        );
        match p.parse(line.as_bytes()) {
            Event::Login(l) => l.session.unwrap(),
            other => panic!("{other:?}"),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_open_session_is_extended_every_half_window_until_it_ends() {
        let mut s = Sessions::new(CAP);
        let a = ip("192.0.2.7");
        assert_eq!(s.open(key(1), a, 0, HOLD), (true, None));
        assert!(
            s.due(10 * MIN, WINDOW).is_empty(),
            "the login's own window still runs"
        );
        assert_eq!(s.due(15 * MIN, WINDOW), vec![(a, 45 * MIN)]);
        assert!(s.due(20 * MIN, WINDOW).is_empty());
        assert_eq!(s.due(31 * MIN, WINDOW), vec![(a, 61 * MIN)]);
        // Hours later it is still held.
        assert_eq!(s.due(300 * MIN, WINDOW), vec![(a, 330 * MIN)]);
        assert_eq!(s.close(&key(1)), Some(a));
        assert!(s.due(400 * MIN, WINDOW).is_empty());
        assert!(s.is_empty());
        assert_eq!(s.close(&key(1)), None, "a second end line changes nothing");
    }

    #[test]
    fn the_address_is_held_until_its_last_session_ends() {
        let mut s = Sessions::new(CAP);
        let a = ip("192.0.2.7");
        s.open(key(1), a, 0, HOLD);
        s.open(key(2), a, MIN, HOLD);
        assert_eq!(s.close(&key(1)), None, "another session is still open");
        assert_eq!(s.due(20 * MIN, WINDOW), vec![(a, 50 * MIN)]);
        assert_eq!(s.close(&key(2)), Some(a));
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn a_missed_logout_is_held_no_longer_than_the_ceiling() {
        let mut s = Sessions::new(CAP);
        let a = ip("192.0.2.7");
        s.open(key(1), a, 0, Duration::from_secs(40 * 60));
        assert_eq!(s.due(15 * MIN, WINDOW), vec![(a, 40 * MIN)], "capped");
        assert_eq!(s.due(31 * MIN, WINDOW), vec![(a, 40 * MIN)]);
        assert!(s.due(40 * MIN, WINDOW).is_empty(), "let go at the ceiling");
        assert!(s.is_empty());
        assert_eq!(s.close(&key(1)), None, "its late logout extends nothing");
        // A new session of the same address starts afresh.
        s.open(key(2), a, 50 * MIN, HOLD);
        assert_eq!(s.due(65 * MIN, WINDOW), vec![(a, 95 * MIN)]);
    }

    #[test]
    fn a_reused_key_ends_the_earlier_session() {
        let mut s = Sessions::new(CAP);
        let (a, b) = (ip("192.0.2.7"), ip("192.0.2.8"));
        s.open(key(1), a, 0, HOLD);
        assert_eq!(s.open(key(1), b, MIN, HOLD), (true, Some(a)));
        assert_eq!(s.close(&key(1)), Some(b));
    }

    #[test]
    fn a_full_table_holds_no_new_session() {
        let mut s = Sessions::new(2);
        s.open(key(1), ip("192.0.2.1"), 0, HOLD);
        s.open(key(2), ip("192.0.2.2"), 0, HOLD);
        assert_eq!(s.open(key(3), ip("192.0.2.3"), 0, HOLD), (false, None));
        assert_eq!(s.len(), 2);
        assert_eq!(s.close(&key(3)), None);
        let due: Vec<IpAddr> = s.due(15 * MIN, WINDOW).into_iter().map(|d| d.0).collect();
        assert!(!due.contains(&ip("192.0.2.3")), "{due:?}");
    }
}
