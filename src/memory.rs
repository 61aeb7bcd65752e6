//! The allocator's housekeeping (glibc): the daemon's malloc settings, and a task that hands
//! back to the system the memory freed inside glibc's heaps once a busy spell is over.
//!
//! glibc gives memory back only from the top of a heap. Under a heavy load the daemon's heaps
//! churn: in the soak (6,000 logins a second over 360,000 leases, 100,000 policy requests a
//! second) a trim each minute released 68-175 MiB, which the load took back within the minute.
//! That memory is in use while the load lasts, so trimming then only costs: the walk holds
//! each heap's lock for tens of milliseconds (23-88 ms for the whole trim there), and the pages
//! are faulted in again. After the load, nothing takes it back, and a mail host that had a
//! busy morning would keep its peak all night. So the trim waits for a quiet minute.

use std::time::{Duration, Instant};

use crate::shutdown::Shutdown;

/// How often the daemon looks whether it was quiet.
const TRIM_EVERY: Duration = Duration::from_secs(60);
/// Quiet: the whole process used less CPU than this share of the time since the last look
/// (a host answering tens of policy requests a second uses well under 1%).
const QUIET_CPU: f64 = 0.02;

/// Keep glibc's mmap threshold where it starts (128 KiB), so that blocks that large are
/// mapped and given back when freed. Left to itself glibc raises the threshold to the size of
/// each large block freed (up to 32 MiB) and the heaps' trim threshold to twice that, after
/// which sled's 512 KiB I/O buffers and the usage flush's batches come from the malloc arenas,
/// which keep the pages (100,000 leases under load: 50.5-51.8 MiB with this, 57.1 without).
/// Malloc settings in `GLIBC_TUNABLES` win.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tuned = std::env::var_os("GLIBC_TUNABLES")
            .is_some_and(|t| t.to_string_lossy().contains("glibc.malloc."));
        if !tuned {
            // SAFETY: mallopt only changes allocator parameters, under glibc's own lock.
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
        }
    }
}

/// What one trim did.
#[derive(Debug, Clone, Copy)]
struct Trimmed {
    /// Resident memory before and after, in bytes (0 where /proc cannot be read).
    rss_before: u64,
    rss_after: u64,
    took: Duration,
}

impl Trimmed {
    fn released(&self) -> u64 {
        self.rss_before.saturating_sub(self.rss_after)
    }
}

/// Give the free pages in every malloc heap back to the system. Each heap's lock is held
/// while it is walked, and the time grows with what is released (12 ms for 19 MiB after a
/// burst; 23-88 ms for 68-175 MiB in the middle of the soak's load): a thread allocating from
/// that heap meanwhile waits. [`run`] calls it only after a quiet minute.
fn trim() -> Trimmed {
    let rss_before = rss();
    let t = Instant::now();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes each arena's lock itself; it only releases free pages.
    unsafe {
        libc::malloc_trim(0);
    }
    Trimmed {
        rss_before,
        rss_after: rss(),
        took: t.elapsed(),
    }
}

/// This process's resident memory in bytes, from /proc/self/statm (0 if unreadable).
fn rss() -> u64 {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page)
}

/// CPU time this process has used, user and system.
fn cpu_used() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_SELF).map_or(Duration::ZERO, |u| {
        let t = |tv: nix::sys::time::TimeVal| {
            Duration::from_secs(tv.tv_sec().max(0) as u64)
                + Duration::from_micros(tv.tv_usec().max(0) as u64)
        };
        t(u.user_time()) + t(u.system_time())
    })
}

/// Was the process quiet over `wall`, having used `cpu` in it?
fn quiet(cpu: Duration, wall: Duration) -> bool {
    cpu.as_secs_f64() < wall.as_secs_f64() * QUIET_CPU
}

/// Every [`TRIM_EVERY`] until `shutdown`: trim when the minute was [`quiet`], on a blocking
/// thread (the walk takes milliseconds, which a runtime worker must not spend).
pub async fn run(mut shutdown: Shutdown) {
    let start = tokio::time::Instant::now() + TRIM_EVERY;
    let mut every = tokio::time::interval_at(start, TRIM_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = (Instant::now(), cpu_used());
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.recv() => return,
        }
        let now = (Instant::now(), cpu_used());
        let was_quiet = quiet(now.1.saturating_sub(last.1), now.0 - last.0);
        if !was_quiet {
            last = now;
            continue;
        }
        let Ok(t) = tokio::task::spawn_blocking(trim).await else {
            continue;
        };
        // The trim's own CPU is not the next minute's load.
        last = (Instant::now(), cpu_used());
        if t.released() >= 1 << 20 {
            tracing::debug!(
                released_mib = t.released() >> 20,
                rss_mib = t.rss_after >> 20,
                took_ms = t.took.as_millis() as u64,
                "a quiet minute: gave freed heap memory back to the system"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory freed below a block still in use stays resident until a trim, which hands it
    /// back: what the daemon's RSS does after a burst, without the daemon.
    #[test]
    fn a_trim_gives_back_what_was_freed_under_a_live_block() {
        tune();
        // 64 MiB in blocks far below the mmap threshold, so they come from a heap, each
        // touched so that it is resident.
        let mut blocks: Vec<Box<[u8; 1000]>> = (0..64 * 1024 * 1024 / 1000)
            .map(|i| Box::new([i as u8 | 1; 1000]))
            .collect();
        let keep = Box::new([7u8; 1000]); // above them: the heap's top cannot shrink
        let touched: u64 = blocks.iter().map(|b| b[999] as u64).sum();
        assert!(touched > 0);
        blocks.clear();
        blocks.shrink_to_fit();
        let t = trim();
        assert!(
            t.released() >= 32 << 20,
            "a trim after freeing 64 MiB released {} MiB (RSS {} -> {} MiB)",
            t.released() >> 20,
            t.rss_before >> 20,
            t.rss_after >> 20
        );
        assert_eq!(keep[0], 7);
    }

    #[test]
    fn only_a_minute_below_two_percent_of_a_cpu_is_quiet() {
        let minute = Duration::from_secs(60);
        assert!(quiet(Duration::ZERO, minute));
        assert!(quiet(Duration::from_millis(1100), minute));
        assert!(!quiet(Duration::from_millis(1300), minute));
        assert!(
            !quiet(Duration::from_secs(90), minute),
            "a busy minute on two cores"
        );
        assert!(!quiet(Duration::ZERO, Duration::ZERO));
    }

    #[test]
    fn cpu_and_rss_are_read() {
        let before = cpu_used();
        let mut x = 0u64;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(cpu_used() > before, "50 ms of spinning shows as CPU used");
        assert!(rss() > 1 << 20);
    }
}
