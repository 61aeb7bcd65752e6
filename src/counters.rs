//! Counters of what the daemon's parts did beyond the lease table itself: Postfix policy
//! answers and the sessions held open. `relaylease stats` shows them beside the table's own
//! counters ([`crate::store::Stats`]).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::StatsSnapshot;

#[derive(Debug, Default)]
pub struct Counters {
    pub policy_ok: AtomicU64,
    pub policy_dunno: AtomicU64,
    /// Open sessions holding their leases (a gauge the log follower sets).
    pub sessions_open: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Put these counters into a snapshot of the table's.
    pub fn fill(&self, s: &mut StatsSnapshot) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        s.policy_ok = get(&self.policy_ok);
        s.policy_dunno = get(&self.policy_dunno);
        s.sessions_open = get(&self.sessions_open);
    }
}
