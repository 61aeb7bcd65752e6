//! The one task that removes leases when they expire: it sleeps until the earliest deadline.

use std::sync::Arc;
use std::time::Duration;

use crate::lease::now_ms;
use crate::shutdown::Shutdown;
use crate::store::{Leases, Stats};

/// How long to sleep when no lease exists: any new lease wakes the task early anyway.
const IDLE: Duration = Duration::from_secs(3600);
/// After a store error, try again this much later rather than spinning.
const RETRY: Duration = Duration::from_secs(1);

/// Run until `shutdown`. Answers never depend on this task (they compare deadlines
/// with the clock themselves); it keeps the store small and tells file-based answers (the
/// tcprules cdb) that the leased set changed.
pub async fn run(leases: Arc<Leases>, mut shutdown: Shutdown) {
    loop {
        let now = now_ms();
        let failed = match leases.expire(now) {
            Ok(_) => false,
            Err(e) => {
                Stats::bump(&leases.stats.errors);
                tracing::error!(error = %e, "cannot expire leases; answers still refuse them");
                true
            }
        };
        let wait = match leases.next_deadline() {
            Some(_) if failed => RETRY,
            // +1 ms: a lease is gone at its deadline, not before.
            Some(d) => Duration::from_millis(d.saturating_sub(now_ms()).saturating_add(1)),
            None => IDLE,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait.min(IDLE)) => {}
            _ = leases.sooner_deadline() => {}
            _ = shutdown.recv() => return,
        }
    }
}
