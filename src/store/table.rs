//! The in-memory lease index: lookups by key, and deadlines kept in order for the expiry task.

use std::collections::{BTreeSet, HashMap};

use ipnet::IpNet;

use crate::lease::{Lease, Millis};

/// Every lease, by key, plus the same leases ordered by deadline.
///
/// The two maps always hold the same set: an entry's old deadline is removed from the
/// ordered set before its new one goes in, so a renewal never leaves a stale deadline behind.
#[derive(Default, Debug)]
pub struct Table {
    leases: HashMap<IpNet, Lease>,
    by_deadline: BTreeSet<(Millis, IpNet)>,
}

impl Table {
    pub fn get(&self, net: &IpNet) -> Option<&Lease> {
        self.leases.get(net)
    }

    /// Insert or replace a lease; returns the one it replaced.
    pub fn upsert(&mut self, lease: Lease) -> Option<Lease> {
        let old = self.leases.insert(lease.net, lease.clone());
        if let Some(o) = &old {
            self.by_deadline.remove(&(o.deadline, o.net));
        }
        self.by_deadline.insert((lease.deadline, lease.net));
        old
    }

    pub fn remove(&mut self, net: &IpNet) -> Option<Lease> {
        let old = self.leases.remove(net)?;
        self.by_deadline.remove(&(old.deadline, old.net));
        Some(old)
    }

    /// The earliest deadline of all, for the expiry task's next sleep.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.by_deadline.first().map(|(d, _)| *d)
    }

    /// Remove and return every lease whose deadline is at or before `now`.
    pub fn take_expired(&mut self, now: Millis) -> Vec<Lease> {
        let mut out = Vec::new();
        while let Some(&(deadline, net)) = self.by_deadline.first() {
            if deadline > now {
                break;
            }
            self.by_deadline.pop_first();
            if let Some(l) = self.leases.remove(&net) {
                out.push(l);
            }
        }
        out
    }

    /// Leases in deadline order, soonest first.
    pub fn in_deadline_order(&self) -> impl Iterator<Item = &Lease> {
        self.by_deadline
            .iter()
            .filter_map(|(_, net)| self.leases.get(net))
    }

    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    pub fn clear(&mut self) -> usize {
        let n = self.leases.len();
        self.leases.clear();
        self.by_deadline.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::{Login, lease_key, parse_ip};

    fn lease(ip: &str, deadline: Millis) -> Lease {
        let login = Login {
            ip: parse_ip(ip).unwrap(),
            user: None,
            at: 0,
            source: "hook".into(),
        };
        Lease::new(lease_key(login.ip, 64), &login, deadline)
    }

    #[test]
    fn renewal_moves_the_deadline_instead_of_adding_one() {
        let mut t = Table::default();
        t.upsert(lease("192.0.2.1", 100));
        t.upsert(lease("192.0.2.2", 200));
        t.upsert(lease("192.0.2.1", 300));
        assert_eq!(t.next_deadline(), Some(200));
        assert!(t.take_expired(250).iter().all(|l| l.deadline == 200));
        assert_eq!(t.len(), 1);
        assert_eq!(t.next_deadline(), Some(300));
    }

    #[test]
    fn expiry_takes_exactly_the_due_leases() {
        let mut t = Table::default();
        for (i, d) in [50u64, 10, 30, 20, 40].iter().enumerate() {
            t.upsert(lease(&format!("192.0.2.{i}"), *d));
        }
        let gone: Vec<Millis> = t.take_expired(30).iter().map(|l| l.deadline).collect();
        assert_eq!(gone, vec![10, 20, 30]);
        let left: Vec<Millis> = t.in_deadline_order().map(|l| l.deadline).collect();
        assert_eq!(left, vec![40, 50]);
        assert!(t.take_expired(39).is_empty());
    }

    #[test]
    fn remove_and_clear_keep_both_maps_in_step() {
        let mut t = Table::default();
        t.upsert(lease("192.0.2.1", 100));
        t.upsert(lease("2001:db8::1", 50));
        assert!(
            t.remove(&lease_key(parse_ip("2001:db8::9").unwrap(), 64))
                .is_some()
        );
        assert_eq!(t.next_deadline(), Some(100));
        assert_eq!(t.clear(), 1);
        assert_eq!(t.next_deadline(), None);
        assert!(t.is_empty());
    }
}
