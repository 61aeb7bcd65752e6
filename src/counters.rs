//! Counters of what the daemon's parts did beyond the lease table itself: Postfix policy
//! answers, the sessions held open and the forged journal logins refused. `relaylease stats`
//! shows them beside the table's own counters ([`crate::store::Stats`]).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::StatsSnapshot;

#[derive(Debug, Default)]
pub struct Counters {
    pub policy_ok: AtomicU64,
    pub policy_dunno: AtomicU64,
    /// `--unleased-action defer` answers, and `--mark-header` PREPENDs.
    pub policy_defer: AtomicU64,
    pub policy_prepend: AtomicU64,
    /// Open sessions holding their leases (a gauge the log follower sets).
    pub sessions_open: AtomicU64,
    /// Journal login lines refused because the mail server did not write them.
    pub forged: AtomicU64,
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
        s.policy_defer = get(&self.policy_defer);
        s.policy_prepend = get(&self.policy_prepend);
        s.sessions_open = get(&self.sessions_open);
        s.forged = get(&self.forged);
    }
}
