//! The lease table's in-memory index in compact form: what a daemon with a million leases
//! holds, so every byte per lease counts (see docs/performance.md).
//!
//! Leases are kept as fixed-size records in one vector: the source name (a log path,
//! `hook`, `manual`) is stored once and referred to by number, the address map holds only a
//! record number, and the deadline order holds `(deadline, record number)`. A [`Lease`] is made on demand for the callers
//! that want one; the policy check ([`Index::allows`]) makes none.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};

use ipnet::IpNet;

use crate::lease::{Lease, Millis, NO_BOUND, bounded_deadline};

/// A live lease as [`Index::view`] lends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseRef<'a> {
    pub net: IpNet,
    pub user: Option<&'a str>,
    pub source: &'a str,
    /// The login that granted or last renewed it.
    pub last_login: Millis,
}

/// One lease without its source name (which is `sources[source]`).
#[derive(Debug)]
struct Rec {
    net: IpNet,
    source: u32,
    deadline: Millis,
    /// On the monotonic clock, when written in this process ([`crate::lease::mono_bound`]);
    /// [`NO_BOUND`] for a lease loaded at start.
    bound: Millis,
    first_login: Millis,
    last_login: Millis,
    logins: u64,
    user: Option<Box<str>>,
}

impl Rec {
    /// Relays at wall time `now`, monotonic `mono` (asked only when the wall clock says yes).
    fn live(&self, now: Millis, mono: impl FnOnce() -> Millis) -> bool {
        self.deadline > now && (self.bound == NO_BOUND || self.bound > mono())
    }
}

#[derive(Default, Debug)]
pub(crate) struct Index {
    recs: Vec<Rec>,
    /// Record numbers whose record is not in use (removed leases), reused first.
    free: Vec<u32>,
    by_net: Slots,
    by_deadline: BTreeSet<(Millis, u32)>,
    sources: Vec<Box<str>>,
    source_ids: HashMap<Box<str>, u32>,
    /// The last source looked up, as (length, number): most lookups are for it.
    last_source: Option<(usize, u32)>,
}

impl Index {
    fn find(&self, net: &IpNet) -> Option<u32> {
        self.by_net.find(net, &self.recs).map(|(_, i)| i)
    }

    fn lease(&self, r: &Rec) -> Lease {
        Lease {
            net: r.net,
            deadline: r.deadline,
            first_login: r.first_login,
            last_login: r.last_login,
            user: r.user.as_deref().map(str::to_string),
            source: self
                .sources
                .get(r.source as usize)
                .map(|s| s.to_string())
                .unwrap_or_default(),
            logins: r.logins,
        }
    }

    fn source_id(&mut self, name: &str) -> u32 {
        // Leases come in runs from one source (a log file's logins, a database's load).
        if let Some(&(len, id)) = self.last_source.as_ref()
            && len == name.len()
            && *self.sources[id as usize] == *name
        {
            return id;
        }
        if let Some(&id) = self.source_ids.get(name) {
            self.last_source = Some((name.len(), id));
            return id;
        }
        let id = self.sources.len() as u32;
        self.sources.push(name.into());
        self.source_ids.insert(name.into(), id);
        self.last_source = Some((name.len(), id));
        id
    }

    fn rec(&mut self, lease: Lease, bound: Millis) -> Rec {
        Rec {
            net: lease.net,
            source: self.source_id(&lease.source),
            deadline: lease.deadline,
            bound,
            first_login: lease.first_login,
            last_login: lease.last_login,
            logins: lease.logins,
            user: lease.user.map(String::into_boxed_str),
        }
    }

    /// Build an index of `leases` all at once (opening a database): the records first, then
    /// the address table at its final size and the deadline order from one sort, where
    /// inserting one by one would grow and rehash the one and rebalance the other a
    /// million times. A later lease for an address replaces an earlier one, as with
    /// [`Index::upsert`].
    pub(crate) fn build(leases: impl FnOnce(&mut dyn FnMut(Lease))) -> Index {
        let mut t = Index::default();
        leases(&mut |lease| {
            let r = t.rec(lease, NO_BOUND);
            t.recs.push(r);
        });
        t.by_net = Slots::with_capacity(t.recs.len());
        let mut replaced = Vec::new();
        for i in 0..t.recs.len() as u32 {
            match t.by_net.find(&t.recs[i as usize].net, &t.recs) {
                Some((_, earlier)) => {
                    t.recs.swap(earlier as usize, i as usize);
                    replaced.push(i);
                }
                None => t.by_net.insert(i, &t.recs),
            }
        }
        let mut order: Vec<(Millis, u32)> = Vec::with_capacity(t.recs.len());
        let mut skip = replaced.iter().peekable();
        for (i, r) in t.recs.iter().enumerate() {
            if skip.peek() == Some(&&(i as u32)) {
                skip.next();
                continue;
            }
            order.push((r.deadline, i as u32));
        }
        order.sort_unstable();
        t.by_deadline = order.into_iter().collect();
        for i in replaced {
            t.recs[i as usize].user = None;
            t.free.push(i);
        }
        t
    }

    pub(crate) fn get(&self, net: &IpNet) -> Option<Lease> {
        let i = self.find(net)?;
        Some(self.lease(&self.recs[i as usize]))
    }

    /// The lease on `net` if it is live at (`now`, `mono`).
    pub(crate) fn get_live(&self, net: &IpNet, now: Millis, mono: Millis) -> Option<Lease> {
        let r = &self.recs[self.find(net)? as usize];
        r.live(now, || mono).then(|| self.lease(r))
    }

    /// The lease on `net` live at `now` (monotonic `mono`), borrowed: what an answer that
    /// records its use needs, without copying the lease.
    pub(crate) fn view(
        &self,
        net: &IpNet,
        now: Millis,
        mono: impl FnOnce() -> Millis,
    ) -> Option<LeaseRef<'_>> {
        let r = &self.recs[self.find(net)? as usize];
        r.live(now, mono).then(|| LeaseRef {
            net: r.net,
            user: r.user.as_deref(),
            source: self.sources.get(r.source as usize).map_or("", |s| s),
            last_login: r.last_login,
        })
    }

    /// Is there a lease on `net` that is live at `now`? `mono` (the monotonic clock) is read
    /// only for a lease the wall clock says is live.
    pub(crate) fn allows(&self, net: &IpNet, now: Millis, mono: impl FnOnce() -> Millis) -> bool {
        self.find(net)
            .is_some_and(|i| self.recs[i as usize].live(now, mono))
    }

    /// Insert or replace a lease, with its monotonic `bound`; true when it replaced one. A
    /// write that leaves the deadline where it was (a renewal by an older login) keeps the
    /// bound it had: only a later deadline, from a login now, starts a new one.
    pub(crate) fn upsert(&mut self, lease: Lease, bound: Millis) -> bool {
        let net = lease.net;
        let mut rec = self.rec(lease, bound);
        if let Some(i) = self.find(&net) {
            let old = &mut self.recs[i as usize];
            if old.deadline == rec.deadline {
                rec.bound = old.bound;
            }
            self.by_deadline.remove(&(old.deadline, i));
            self.by_deadline.insert((rec.deadline, i));
            *old = rec;
            return true;
        }
        let i = match self.free.pop() {
            Some(i) => {
                self.recs[i as usize] = rec;
                i
            }
            None => {
                self.recs.push(rec);
                (self.recs.len() - 1) as u32
            }
        };
        self.by_net.insert(i, &self.recs);
        self.by_deadline.insert((self.recs[i as usize].deadline, i));
        false
    }

    fn release(&mut self, i: u32) -> Lease {
        let r = &self.recs[i as usize];
        let lease = self.lease(r);
        self.by_net.remove(&r.net, &self.recs);
        self.by_deadline.remove(&(r.deadline, i));
        self.recs[i as usize].user = None;
        self.free.push(i);
        lease
    }

    pub(crate) fn remove(&mut self, net: &IpNet) -> Option<Lease> {
        let i = self.find(net)?;
        Some(self.release(i))
    }

    pub(crate) fn next_deadline(&self) -> Option<Millis> {
        self.by_deadline.first().map(|(d, _)| *d)
    }

    /// Remove and return every lease whose deadline is at or before `now`.
    pub(crate) fn take_expired(&mut self, now: Millis) -> Vec<Lease> {
        let mut out = Vec::new();
        while let Some(&(deadline, i)) = self.by_deadline.first() {
            if deadline > now {
                break;
            }
            out.push(self.release(i));
        }
        out
    }

    /// After the clock was stepped back: every deadline that now lies beyond its lease's
    /// monotonic bound is brought forward to it, so that the expiry task (and the answers
    /// that rebuild a file when it runs) end those leases on time. One pass, once per step.
    pub(crate) fn clamp_to_bounds(&mut self, now: Millis, mono: Millis) -> usize {
        let mut moved = 0;
        for (i, r) in self.recs.iter_mut().enumerate() {
            let d = bounded_deadline(r.deadline, r.bound, now, mono);
            if d < r.deadline && self.by_deadline.remove(&(r.deadline, i as u32)) {
                self.by_deadline.insert((d, i as u32));
                r.deadline = d;
                moved += 1;
            }
        }
        moved
    }

    /// The leases live at `now` (monotonic `mono`), soonest deadline first.
    pub(crate) fn live(&self, now: Millis, mono: Millis) -> Vec<Lease> {
        self.by_deadline
            .range((now.saturating_add(1), 0)..)
            .map(|&(_, i)| &self.recs[i as usize])
            .filter(|r| r.live(now, || mono))
            .map(|r| self.lease(r))
            .collect()
    }

    /// Every lease held, due or not, with its monotonic bound.
    pub(crate) fn all(&self) -> Vec<(Lease, Millis)> {
        self.by_deadline
            .iter()
            .map(|&(_, i)| {
                let r = &self.recs[i as usize];
                (self.lease(r), r.bound)
            })
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_net.len
    }

    pub(crate) fn clear(&mut self) -> usize {
        let n = self.len();
        let sources = std::mem::take(&mut self.sources);
        let source_ids = std::mem::take(&mut self.source_ids);
        *self = Index {
            sources,
            source_ids,
            last_source: self.last_source,
            ..Index::default()
        };
        n
    }
}

/// The record numbers, by address: an open-addressing table (linear probing) of record
/// numbers whose keys are read from the records, where a `HashMap<IpNet, u32>` would take
/// 24 bytes a slot. Each slot also keeps 32 bits of its key's hash, so a probe past another
/// key rarely has to read that key's record. SipHash with a random key, as `HashMap`'s: the
/// addresses come from clients.
#[derive(Debug)]
struct Slots {
    /// (hash bits, record number); the record number is [`NONE`] in an empty slot.
    slots: Vec<(u32, u32)>,
    len: usize,
    hasher: RandomState,
}

const NONE: u32 = u32::MAX;
const EMPTY: (u32, u32) = (0, NONE);

impl Default for Slots {
    fn default() -> Self {
        Slots {
            slots: vec![EMPTY; 16],
            len: 0,
            hasher: RandomState::new(),
        }
    }
}

impl Slots {
    /// Room for `n` keys without growing.
    fn with_capacity(n: usize) -> Slots {
        Slots {
            slots: vec![EMPTY; (n * 3 / 2 + 1).next_power_of_two().max(16)],
            ..Slots::default()
        }
    }

    fn hash(&self, net: &IpNet) -> u64 {
        self.hasher.hash_one(net)
    }

    fn home(&self, h: u64) -> usize {
        (h as usize) & (self.slots.len() - 1)
    }

    /// The slot and record number holding `net`.
    fn find(&self, net: &IpNet, recs: &[Rec]) -> Option<(usize, u32)> {
        let h = self.hash(net);
        let tag = (h >> 32) as u32;
        let mask = self.slots.len() - 1;
        let mut at = self.home(h);
        loop {
            let (t, i) = self.slots[at];
            if i == NONE {
                return None;
            }
            if t == tag && recs[i as usize].net == *net {
                return Some((at, i));
            }
            at = (at + 1) & mask;
        }
    }

    /// Add record `i`, whose address is not in the table yet.
    fn insert(&mut self, i: u32, recs: &[Rec]) {
        // At most two thirds full, so that probe runs stay short.
        if (self.len + 1) * 3 > self.slots.len() * 2 {
            let bigger = vec![EMPTY; self.slots.len() * 2];
            let old = std::mem::replace(&mut self.slots, bigger);
            for (_, j) in old.into_iter().filter(|&(_, j)| j != NONE) {
                self.place(j, recs);
            }
        }
        self.place(i, recs);
        self.len += 1;
    }

    fn place(&mut self, i: u32, recs: &[Rec]) {
        let h = self.hash(&recs[i as usize].net);
        let mask = self.slots.len() - 1;
        let mut at = self.home(h);
        while self.slots[at].1 != NONE {
            at = (at + 1) & mask;
        }
        self.slots[at] = ((h >> 32) as u32, i);
    }

    /// Remove `net`, shifting later entries of its probe run back so that none is cut off
    /// from its home slot (no tombstones).
    fn remove(&mut self, net: &IpNet, recs: &[Rec]) {
        let Some((mut hole, _)) = self.find(net, recs) else {
            return;
        };
        let mask = self.slots.len() - 1;
        let mut at = hole;
        loop {
            at = (at + 1) & mask;
            let (_, i) = self.slots[at];
            if i == NONE {
                break;
            }
            let home = self.home(self.hash(&recs[i as usize].net));
            // Entry `at` may move to `hole` unless its home lies cyclically in (hole, at].
            let stays = if hole <= at {
                hole < home && home <= at
            } else {
                hole < home || home <= at
            };
            if !stays {
                self.slots[hole] = self.slots[at];
                hole = at;
            }
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::{Login, lease_key, parse_ip};

    fn lease(ip: &str, deadline: Millis, source: &str) -> Lease {
        let login = Login {
            ip: parse_ip(ip).unwrap(),
            user: Some(format!("u-{ip}")),
            at: 0,
            source: source.into(),
        };
        Lease::new(lease_key(login.ip, 64), &login, deadline)
    }

    #[test]
    fn leases_come_back_as_they_went_in() {
        let mut t = Index::default();
        let a = lease("192.0.2.1", 100, "/var/log/mail.log");
        let mut b = lease("2001:db8::1", 200, "hook");
        b.user = None;
        b.logins = 7;
        assert!(!t.upsert(a.clone(), NO_BOUND));
        assert!(!t.upsert(b.clone(), NO_BOUND));
        assert_eq!(t.get(&a.net), Some(a.clone()));
        assert_eq!(t.get(&b.net), Some(b.clone()));
        assert_eq!(t.live(0, 0), vec![a.clone(), b.clone()]);
        assert_eq!(t.live(100, 0), vec![b.clone()]);
        assert!(t.allows(&a.net, 99, || 0) && !t.allows(&a.net, 100, || 0));
        assert_eq!(t.sources.len(), 2);
    }

    #[test]
    fn many_inserts_and_removals_keep_every_lookup_right() {
        // Enough keys to grow the slot table several times and to make long probe runs,
        // removed in an order that exercises the backward shift.
        let mut t = Index::default();
        let ips: Vec<String> = (0..5000u32)
            .map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255))
            .collect();
        for (n, ip) in ips.iter().enumerate() {
            t.upsert(lease(ip, 1000 + n as u64, "s"), NO_BOUND);
        }
        for (n, ip) in ips.iter().enumerate() {
            if n % 3 != 1 {
                assert!(t.remove(&lease(ip, 0, "s").net).is_some(), "{ip}");
            }
        }
        for (n, ip) in ips.iter().enumerate() {
            let net = lease(ip, 0, "s").net;
            assert_eq!(t.get(&net).is_some(), n % 3 == 1, "{ip}");
        }
        assert_eq!(t.len(), (0..ips.len()).filter(|n| n % 3 == 1).count());
        assert_eq!(t.live(0, 0).len(), t.len());
        for ip in &ips {
            t.upsert(lease(ip, 1, "s"), NO_BOUND);
        }
        assert_eq!(t.len(), ips.len());
        assert_eq!(t.take_expired(1).len(), ips.len());
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn built_at_once_equals_built_one_by_one() {
        let mut leases: Vec<Lease> = (0..3000u32)
            .map(|i| {
                let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
                lease(
                    &ip,
                    1000 + u64::from(i * 7919 % 3000),
                    ["a", "b"][i as usize % 2],
                )
            })
            .collect();
        // Later copies of an address replace earlier ones.
        let mut again = leases[10].clone();
        again.deadline = 99_999;
        leases.push(again);
        leases.push(leases[20].clone());
        let mut one_by_one = Index::default();
        for l in &leases {
            one_by_one.upsert(l.clone(), NO_BOUND);
        }
        let at_once = Index::build(|each| leases.iter().cloned().for_each(each));
        assert_eq!(at_once.len(), 3000);
        assert_eq!(at_once.live(0, 0), one_by_one.live(0, 0));
        assert_eq!(at_once.get(&leases[10].net).unwrap().deadline, 99_999);
        for l in &leases[..3000] {
            assert!(at_once.allows(&l.net, 999, || 0));
        }
        // The duplicates' records are free for reuse, and removal works on the result.
        assert_eq!(at_once.free.len(), 2);
        let mut t = at_once;
        assert_eq!(
            t.take_expired(1500).len(),
            one_by_one.take_expired(1500).len()
        );
        assert_eq!(t.live(0, 0), one_by_one.live(0, 0));
    }

    #[test]
    fn renewal_moves_the_deadline_and_reuses_the_record() {
        let mut t = Index::default();
        t.upsert(lease("192.0.2.1", 100, "s"), NO_BOUND);
        t.upsert(lease("192.0.2.2", 200, "s"), NO_BOUND);
        assert!(t.upsert(lease("192.0.2.1", 300, "s"), NO_BOUND));
        assert_eq!(t.len(), 2);
        assert_eq!(t.next_deadline(), Some(200));
        let gone = t.take_expired(250);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].net, lease("192.0.2.2", 0, "s").net);
        assert_eq!(t.next_deadline(), Some(300));
        // The freed record is reused, not appended.
        t.upsert(lease("192.0.2.3", 400, "s"), NO_BOUND);
        assert_eq!(t.recs.len(), 2);
        assert_eq!(t.len(), 2);
        let removed = t.remove(&lease("192.0.2.1", 0, "s").net).unwrap();
        assert_eq!(removed.deadline, 300);
        assert_eq!(t.remove(&removed.net), None);
        assert_eq!(t.live(0, 0).len(), 1);
        assert_eq!(t.clear(), 1);
        assert_eq!((t.len(), t.next_deadline()), (0, None));
        assert!(t.get(&removed.net).is_none());
    }

    #[test]
    fn expiry_takes_exactly_the_due_leases() {
        let mut t = Index::default();
        for (i, d) in [50u64, 10, 30, 20, 40].iter().enumerate() {
            t.upsert(lease(&format!("192.0.2.{i}"), *d, "hook"), NO_BOUND);
        }
        let gone: Vec<Millis> = t.take_expired(30).iter().map(|l| l.deadline).collect();
        assert_eq!(gone, vec![10, 20, 30]);
        let left: Vec<Millis> = t.live(0, 0).iter().map(|l| l.deadline).collect();
        assert_eq!(left, vec![40, 50]);
        assert!(t.take_expired(39).is_empty());
    }

    #[test]
    fn remove_and_clear_keep_both_maps_in_step() {
        let mut t = Index::default();
        t.upsert(lease("192.0.2.1", 100, "hook"), NO_BOUND);
        t.upsert(lease("2001:db8::1", 50, "hook"), NO_BOUND);
        // Another address in the same /64 names the same lease.
        assert!(
            t.remove(&lease_key(parse_ip("2001:db8::9").unwrap(), 64))
                .is_some()
        );
        assert_eq!(t.next_deadline(), Some(100));
        assert_eq!(t.clear(), 1);
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.len(), 0);
    }
}
