//! The one task that removes leases when they expire: it sleeps until the earliest deadline,
//! and looks every second for a step of the system clock.

use std::sync::Arc;
use std::time::Duration;

use crate::lease::{ClockStep, StepWatch, now_ms};
use crate::shutdown::Shutdown;
use crate::store::{Leases, Stats};

/// How long to sleep when no lease exists: any new lease wakes the task early anyway.
const IDLE: Duration = Duration::from_secs(3600);
/// After a store error, try again this much later rather than spinning.
const RETRY: Duration = Duration::from_secs(1);
/// How often the system clock is compared with the monotonic clock. A step is acted on at
/// most this late; answers do not wait for it (they hold each lease to its monotonic bound).
const CLOCK_LOOK: Duration = Duration::from_secs(1);

/// Run until `shutdown`. Answers never depend on this task (they compare deadlines
/// with the clock themselves); it keeps the store small and tells file-based answers (the
/// tcprules cdb) that the leased set changed.
pub async fn run(leases: Arc<Leases>, mut shutdown: Shutdown) {
    let mut clock = StepWatch::new(now_ms(), leases.mono_now());
    let mut failed = false;
    loop {
        let now = now_ms();
        if let Some(step) = clock.look(now, leases.mono_now()) {
            stepped(&leases, step, now);
        }
        // Most wakes are only a look at the clock: nothing is due, and the table's write
        // lock is left alone.
        if failed || leases.next_deadline().is_some_and(|d| d <= now) {
            failed = match leases.expire(now) {
                Ok(_) => false,
                Err(e) => {
                    Stats::bump(&leases.stats.errors);
                    tracing::error!(error = %e, "cannot expire leases; answers still refuse them");
                    true
                }
            };
        }
        let wait = match leases.next_deadline() {
            Some(_) if failed => RETRY,
            // +1 ms: a lease is gone at its deadline, not before.
            Some(d) => Duration::from_millis(d.saturating_sub(now_ms()).saturating_add(1)),
            None => IDLE,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait.min(IDLE).min(CLOCK_LOOK)) => {}
            _ = leases.sooner_deadline() => {}
            _ = shutdown.recv() => return,
        }
    }
}

/// One line for a step of the system clock; after a step back, the deadlines beyond their
/// monotonic bounds are brought forward to them.
fn stepped(leases: &Leases, step: ClockStep, now: crate::lease::Millis) {
    // To the second: the two clocks are read a moment apart.
    let by = |ms: crate::lease::Millis| {
        humantime::format_duration(Duration::from_secs(ms.saturating_add(500) / 1000))
    };
    match step {
        ClockStep::Forward(ms) => tracing::warn!(step = %by(ms),
            "the system clock was stepped forward: leases end that much early (fail closed); those past their deadline end now"),
        ClockStep::Back(ms) => {
            let moved = leases.clamp_to_bounds(now);
            tracing::warn!(step = %by(ms), leases = moved,
                "the system clock was stepped back: leases granted before still end when their time is up, measured on the monotonic clock");
        }
    }
}
