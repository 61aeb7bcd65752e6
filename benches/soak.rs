//! Soak test: the real daemon under steady load for ten minutes, with log rotations and
//! SIGHUPs, then checked for lost logins, leaks and errors.
//!
//! `cargo bench --bench soak` runs the full plan (10 minutes: 5,000 logins/s through a
//! watched log, 1,000/s through the hook, 64 policy connections at full speed, a rotation
//! every 30 s and a SIGHUP every minute) and exits non-zero when a check fails.
//! `cargo test --bench soak` (and `cargo test --all-targets`, or `-- --test`) runs the same
//! shape for 15 s at lower rates: the correctness checks are enforced, the flatness figures
//! are printed but not judged.
//!
//! Logins use addresses from two fixed pools (10.0.0.0/8 for the log, 172.16.0.0/12 for
//! the hook), cycled: the table fills during the first pass and then only renews, so memory
//! has a steady state to be flat in, and each lease's login count says exactly how many
//! logins of its address the daemon recorded. Everything talks to sockets and files in a
//! temporary directory; every loop is bounded in count and time.

#[path = "workload/daemon.rs"]
mod daemon;
mod workload;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use daemon::{
    BIN, Daemon, ProcFigures, proc_figures, stats, stats_after_uses, syslog_stamp, tempdir,
};
use relaylease::control::client::call;
use relaylease::control::proto::{Op, Reply};
use relaylease::lease::SOURCE_HOOK;
use relaylease::store::StatsSnapshot;

/// How hard and how long.
#[derive(Clone, Debug)]
struct Plan {
    run: Duration,
    log_rate: u64,
    hook_rate: u64,
    /// Every n-th hook login runs the real `relaylease hook` process; the others send the
    /// hook's login message over the control socket from a pool of clients.
    hook_process_every: u64,
    hook_clients: usize,
    policy_conns: usize,
    rotate_every: Duration,
    /// How long the writer keeps appending to the renamed file (syslog until its HUP).
    rotate_lag: Duration,
    /// A SIGHUP due at a rotation is sent right after it, as logrotate's postrotate does.
    hup_every: Duration,
    sample_every: Duration,
    /// Samples before this are warm-up: the address pools are not yet all leased and
    /// renewed.
    warmup: Duration,
    log_pool: usize,
    hook_pool: usize,
    /// Longest wait for the daemon to read what was written, after the load stops.
    catch_up: Duration,
    /// Longest wait, after the load and the checks, for RSS to come down to the first half's
    /// median (the daemon gives freed memory back after a quiet minute, src/memory.rs).
    /// None: not waited for (the smoke run).
    settle: Option<Duration>,
    expire: &'static str,
}

impl Plan {
    fn full() -> Plan {
        Plan {
            run: Duration::from_secs(600),
            log_rate: 5_000,
            hook_rate: 1_000,
            hook_process_every: 50,
            hook_clients: 8,
            policy_conns: 64,
            rotate_every: Duration::from_secs(30),
            rotate_lag: Duration::from_millis(300),
            hup_every: Duration::from_secs(60),
            sample_every: Duration::from_secs(5),
            // Two passes through the pools (a minute each): every lease granted, then
            // renewed once, so the store has rewritten each record.
            warmup: Duration::from_secs(120),
            log_pool: 300_000,
            hook_pool: 60_000,
            catch_up: Duration::from_secs(300),
            // The minute the load ends in is not quiet; the next one is, and the daemon's
            // look comes at most a minute after that.
            settle: Some(Duration::from_secs(200)),
            expire: "3h",
        }
    }

    fn smoke() -> Plan {
        Plan {
            run: Duration::from_secs(15),
            log_rate: 400,
            hook_rate: 100,
            hook_process_every: 20,
            hook_clients: 4,
            policy_conns: 64,
            rotate_every: Duration::from_secs(4),
            rotate_lag: Duration::from_millis(300),
            hup_every: Duration::from_secs(6),
            sample_every: Duration::from_secs(1),
            warmup: Duration::from_secs(5),
            log_pool: 2_000,
            hook_pool: 500,
            catch_up: Duration::from_secs(20),
            settle: None,
            expire: "1h",
        }
    }
}

fn log_addr(j: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        10,
        (j / 64_000) as u8,
        (j / 250 % 256) as u8,
        (1 + j % 250) as u8,
    )
}

fn hook_addr(j: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        172,
        (16 + j / 64_000) as u8,
        (j / 250 % 256) as u8,
        (1 + j % 250) as u8,
    )
}

/// What the load generators did: the independent tally.
#[derive(Default)]
struct Tally {
    /// Login lines written to the log, in pool order (line k names address k % log_pool).
    log_written: AtomicU64,
    /// Acknowledged hook logins per pool address.
    hook_acked: Vec<AtomicU32>,
    /// Their sum, for the progress lines.
    hook_done: AtomicU64,
    hook_via_socket: AtomicU64,
    hook_via_process: AtomicU64,
    hook_failed: AtomicU64,
    hook_errors: Mutex<Vec<String>>,
    rotations: AtomicU64,
    hups: AtomicU64,
    policy_requests: AtomicU64,
    /// A leased (acknowledged hook) address answered DUNNO, or a stranger answered OK.
    policy_wrong: AtomicU64,
    policy_conn_failures: AtomicU64,
}

fn main() {
    let quick = workload::quick();
    let plan = if quick { Plan::smoke() } else { Plan::full() };
    println!(
        "soak: {} mode, daemon {BIN}",
        if quick { "smoke" } else { "full" }
    );
    println!(
        "plan: {:?}, {}/s logins through a watched log, {}/s through the hook (1 in {} as a \
         `relaylease hook` process, the rest as the hook's login message over the control \
         socket from {} clients), {} policy connections at full speed, rotation every {:?}, \
         SIGHUP every {:?}; warm-up {:?}",
        plan.run,
        plan.log_rate,
        plan.hook_rate,
        plan.hook_process_every,
        plan.hook_clients,
        plan.policy_conns,
        plan.rotate_every,
        plan.hup_every,
        plan.warmup
    );
    let started = Instant::now();
    let ok = soak(&plan, quick);
    println!("soak: done in {:.1} s", started.elapsed().as_secs_f64());
    if !ok {
        println!("soak: FAILED");
        std::process::exit(1);
    }
}

/// One sample of the daemon's figures.
#[derive(Clone, Debug)]
struct Sample {
    at: Duration,
    proc: ProcFigures,
    stats: Option<StatsSnapshot>,
    policy_requests: u64,
    log_written: u64,
    hook_acked: u64,
}

fn soak(plan: &Plan, quick: bool) -> bool {
    let dir = tempdir();
    let logfile = dir.path().join("mail.log");
    File::create(&logfile).expect("create the log");
    let db = dir.path().join("db");
    let extra: Vec<OsString> = vec![
        "--watch".into(),
        logfile.clone().into(),
        "--expire".into(),
        plan.expire.into(),
        "--log-format".into(),
        "json".into(),
    ];
    let (daemon, ready) = Daemon::start_with(dir.path(), &db, &extra);
    println!(
        "daemon pid {} ready in {:.2} s",
        daemon.pid(),
        ready.as_secs_f64()
    );
    let pid = daemon.pid();
    let log_source = logfile.display().to_string();

    let tally = Arc::new(Tally {
        hook_acked: (0..plan.hook_pool).map(|_| AtomicU32::new(0)).collect(),
        ..Tally::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let end = t0 + plan.run;

    let writer = {
        let (plan, tally, path) = (plan.clone(), tally.clone(), logfile.clone());
        std::thread::spawn(move || log_writer(&plan, &tally, &path, pid, t0, end))
    };
    let mut hooks = Vec::new();
    let ticket = Arc::new(AtomicU64::new(0));
    for _ in 0..plan.hook_clients {
        let (plan, tally, socket, ticket) = (
            plan.clone(),
            tally.clone(),
            daemon.socket.clone(),
            ticket.clone(),
        );
        hooks.push(std::thread::spawn(move || {
            hook_client(&plan, &tally, &socket, &ticket, t0, end)
        }));
    }
    let policy = {
        let (plan, tally, path, stop) = (
            plan.clone(),
            tally.clone(),
            daemon.policy.clone(),
            stop.clone(),
        );
        // Runs until told to stop, after the end sample (bounded all the same).
        let bound = end + Duration::from_secs(300);
        std::thread::spawn(move || policy_load(&plan, &tally, &path, &stop, bound))
    };

    // The main thread samples.
    let mut samples: Vec<Sample> = Vec::new();
    let mut next_sample = t0;
    let print_every = if quick { 3 } else { 6 };
    let take_sample = || Sample {
        at: t0.elapsed(),
        proc: proc_figures(pid),
        stats: stats(&daemon.socket),
        policy_requests: tally.policy_requests.load(Ordering::Relaxed),
        log_written: tally.log_written.load(Ordering::Relaxed),
        hook_acked: tally.hook_done.load(Ordering::Relaxed),
    };
    while Instant::now() < end {
        let now = Instant::now();
        if now >= next_sample {
            let s = take_sample();
            if samples.len().is_multiple_of(print_every) {
                print_sample(&s, samples.last(), &log_source);
            }
            samples.push(s);
            next_sample += plan.sample_every;
        }
        let wake = next_sample.min(end);
        std::thread::sleep(
            wake.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(200)),
        );
    }
    // The end of the run: the figures while still under load count as the end sample.
    let end_sample = take_sample();
    print_sample(&end_sample, samples.last(), &log_source);
    samples.push(end_sample);
    stop.store(true, Ordering::Relaxed);
    let written_log = writer.join().expect("log writer");
    for h in hooks {
        h.join().expect("hook client");
    }
    let policy_figs = policy.join().expect("policy load");
    let load_secs = plan.run.as_secs_f64();
    let hook_acked_total: u64 = tally
        .hook_acked
        .iter()
        .map(|a| u64::from(a.load(Ordering::Relaxed)))
        .sum();

    // Let the daemon finish reading the log (it may lag behind under load).
    let catch_start = Instant::now();
    let mut last = stats(&daemon.socket);
    let mut last_progress = Instant::now();
    loop {
        let got = |s: &Option<StatsSnapshot>, k: &str| {
            s.as_ref()
                .and_then(|s| s.logins_by_source.get(k).copied())
                .unwrap_or(0)
        };
        if got(&last, &log_source) >= written_log && got(&last, SOURCE_HOOK) >= hook_acked_total {
            break;
        }
        if catch_start.elapsed() > plan.catch_up
            || last_progress.elapsed() > Duration::from_secs(10)
        {
            println!(
                "the daemon stopped reading before the end of the log ({} of {written_log} log logins counted)",
                got(&last, &log_source)
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        let now = stats(&daemon.socket);
        if got(&now, &log_source) != got(&last, &log_source) {
            last_progress = Instant::now();
        }
        last = now;
    }
    let catch_up = catch_start.elapsed();
    let after = proc_figures(pid);
    // Once the recorder has also taken every use the policy load was answered OK for.
    let final_stats = stats_after_uses(&daemon.socket, policy_figs.ok);
    let leases = match call(&daemon.socket, Op::List, Duration::from_secs(120)) {
        Ok(r) => match r.reply {
            Reply::List { leases, .. } => Some(leases),
            other => {
                println!("list: unexpected reply {other:?}");
                None
            }
        },
        Err(e) => {
            println!("list: {e}");
            None
        }
    };
    // After the load: does RSS come back down once the daemon has had a quiet minute? Memory
    // the run leaked cannot be given back; memory its load was using can.
    let settled = plan.settle.map(|limit| {
        let target = first_half_median_rss(&samples, plan);
        let t = Instant::now();
        loop {
            let rss = proc_figures(pid).rss_kib;
            if rss <= target || t.elapsed() >= limit {
                break Settled {
                    target,
                    rss,
                    after: t.elapsed(),
                };
            }
            std::thread::sleep(Duration::from_secs(5));
        }
    });
    let log_path = daemon.log.clone();
    let exit = daemon.stop_within(Duration::from_secs(30));

    // ---- the report
    let mut failures: Vec<String> = Vec::new();
    let mut fail = |msg: String| {
        println!("   FAIL: {msg}");
        failures.push(msg);
    };
    println!("\n== load achieved");
    println!(
        "log:    {written_log} login lines in {load_secs:.0} s = {:.0}/s (target {}/s), plus one other line each; {} rotations (rename, create, every generation kept; the writer kept appending to the old file for {:?})",
        written_log as f64 / load_secs,
        plan.log_rate,
        tally.rotations.load(Ordering::Relaxed),
        plan.rotate_lag
    );
    println!(
        "hook:   {hook_acked_total} acknowledged logins = {:.0}/s (target {}/s): {} as the login message over the control socket, {} as `relaylease hook` processes; {} failed",
        hook_acked_total as f64 / load_secs,
        plan.hook_rate,
        tally.hook_via_socket.load(Ordering::Relaxed),
        tally.hook_via_process.load(Ordering::Relaxed),
        tally.hook_failed.load(Ordering::Relaxed)
    );
    println!(
        "policy: {} requests on {} connections = {:.0}/s; latency {}",
        policy_figs.requests,
        plan.policy_conns,
        policy_figs.requests as f64 / load_secs,
        policy_figs.hist.show()
    );
    println!(
        "SIGHUP: {} sent (those due at a rotation right after it, like logrotate's postrotate)",
        tally.hups.load(Ordering::Relaxed)
    );
    println!(
        "after the load: the daemon finished reading in {:.1} s",
        catch_up.as_secs_f64()
    );

    println!("\n== no login lost, none counted twice");
    let n_hook_failed = tally.hook_failed.load(Ordering::Relaxed);
    if n_hook_failed > 0 {
        let errs = tally
            .hook_errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        fail(format!(
            "{n_hook_failed} hook logins failed, e.g. {:?}",
            &errs[..errs.len().min(3)]
        ));
    }
    let distinct_log = (written_log as usize).min(plan.log_pool);
    let distinct_hook = tally
        .hook_acked
        .iter()
        .filter(|a| a.load(Ordering::Relaxed) > 0)
        .count();
    match &final_stats {
        None => fail("no stats from the daemon at the end".into()),
        Some(s) => {
            let counted_log = s.logins_by_source.get(&log_source).copied().unwrap_or(0);
            let counted_hook = s.logins_by_source.get(SOURCE_HOOK).copied().unwrap_or(0);
            let total = written_log + hook_acked_total;
            let distinct = (distinct_log + distinct_hook) as u64;
            println!(
                "counters: log logins {counted_log} (written {written_log}), hook logins {counted_hook} (acknowledged {hook_acked_total}), granted {} (distinct addresses {distinct}), renewed {} (expected {}), active leases {}, refused {}, expired {}, errors {}",
                s.granted,
                s.renewed,
                total - distinct,
                s.leases_active,
                s.refused,
                s.expired,
                s.errors
            );
            let mut check = |what: &str, got: u64, want: u64| {
                if got != want {
                    fail(format!("{what}: daemon says {got}, expected {want}"));
                }
            };
            check("log logins counted", counted_log, written_log);
            check("hook logins counted", counted_hook, hook_acked_total);
            check("leases granted", s.granted, distinct);
            check("leases renewed", s.renewed, total - distinct);
            check("active leases", s.leases_active, distinct);
            check("refused logins", s.refused, 0);
            check("expired leases", s.expired, 0);
            check("daemon error counter", s.errors, 0);
            let others: Vec<_> = s
                .logins_by_source
                .keys()
                .filter(|k| **k != log_source && *k != SOURCE_HOOK)
                .collect();
            if !others.is_empty() {
                fail(format!("logins from unexpected sources: {others:?}"));
            }
        }
    }
    match &leases {
        None => fail("no lease list from the daemon".into()),
        Some(list) => {
            let by_addr: HashMap<IpAddr, (u64, &str)> = list
                .iter()
                .map(|l| (l.net.addr(), (l.logins, l.source.as_str())))
                .collect();
            let mut missing = 0u64;
            let mut wrong_count = 0u64;
            let mut wrong_source = 0u64;
            let mut examples = Vec::new();
            let mut expect = |ip: IpAddr, want: u64, source: &str| {
                if want == 0 {
                    return;
                }
                match by_addr.get(&ip) {
                    None => {
                        missing += 1;
                        if examples.len() < 5 {
                            examples.push(format!("{ip}: no lease ({want} logins)"));
                        }
                    }
                    Some((got, src)) => {
                        if *got != want {
                            wrong_count += 1;
                            if examples.len() < 5 {
                                examples.push(format!("{ip}: {got} logins, expected {want}"));
                            }
                        }
                        if *src != source {
                            wrong_source += 1;
                        }
                    }
                }
            };
            let cycles = written_log / plan.log_pool as u64;
            let rest = (written_log % plan.log_pool as u64) as usize;
            for j in 0..plan.log_pool {
                let want = cycles + u64::from(j < rest);
                expect(IpAddr::V4(log_addr(j)), want, &log_source);
            }
            for (j, a) in tally.hook_acked.iter().enumerate() {
                expect(
                    IpAddr::V4(hook_addr(j)),
                    u64::from(a.load(Ordering::Relaxed)),
                    SOURCE_HOOK,
                );
            }
            let expected = distinct_log + distinct_hook;
            println!(
                "leases: {} listed, {expected} expected; per address: {missing} missing, {wrong_count} with a wrong login count, {wrong_source} with a wrong source",
                list.len()
            );
            if missing + wrong_count + wrong_source > 0 || list.len() != expected {
                fail(format!(
                    "lease table does not match the logins written: {missing} missing, {wrong_count} wrong counts, {wrong_source} wrong sources, {} listed vs {expected} expected; {examples:?}",
                    list.len()
                ));
            }
        }
    }
    let wrong = tally.policy_wrong.load(Ordering::Relaxed);
    let conn_fail = tally.policy_conn_failures.load(Ordering::Relaxed);
    println!(
        "policy answers: {} OK, {} DUNNO; {wrong} wrong (an acknowledged hook address not OK, or a stranger OK); {conn_fail} connection failures",
        policy_figs.ok,
        policy_figs.requests - policy_figs.ok
    );
    if wrong > 0 {
        fail(format!("{wrong} wrong policy answers"));
    }
    if conn_fail > 0 {
        fail(format!("{conn_fail} policy connections failed"));
    }
    // Every OK was a lease's use: each is recorded, or counted as lost (a full queue, while
    // the recorder writes the usage table), never neither. How many are lost is reported, not
    // judged: at this load it is most of them (docs/robustness.md).
    if let Some(s) = &final_stats {
        let share = s.relayed_recipients as f64 * 100.0 / policy_figs.ok.max(1) as f64;
        println!(
            "lease uses recorded: {} of the {} OKs ({share:.1}%); events lost to a full queue: {} (uses and logins)",
            s.relayed_recipients, policy_figs.ok, s.usage_lost
        );
        if s.relayed_recipients > policy_figs.ok
            || s.relayed_recipients + s.usage_lost < policy_figs.ok
        {
            fail(format!(
                "lease uses: {} recorded and {} lost do not account for {} OKs",
                s.relayed_recipients, s.usage_lost, policy_figs.ok
            ));
        }
    }

    println!("\n== the daemon's log ({})", log_path.display());
    let scan = scan_log(&log_path);
    println!(
        "{} lines: {:?}; rotations noticed by the follower: {}",
        scan.lines, scan.levels, scan.rotations_noticed
    );
    for (level, msgs) in &scan.examples {
        for (m, n) in msgs {
            println!("   {level} x{n}: {m}");
        }
    }
    let errors = scan.levels.get("ERROR").copied().unwrap_or(0);
    if errors > 0 {
        fail(format!("{errors} ERROR lines in the daemon's log"));
    }
    if scan.not_json > 0 {
        fail(format!(
            "{} lines of the log are not tracing's JSON (a panic?)",
            scan.not_json
        ));
    }
    match exit {
        Some(0) => println!("exit after SIGTERM: 0"),
        other => fail(format!("daemon exit after SIGTERM: {other:?}, expected 0")),
    }

    println!(
        "\n== resources (VmRSS, /proc/PID/fd, /proc/PID/task every {:?}; warm-up: the first {:?}, until both address pools are leased and renewed)",
        plan.sample_every, plan.warmup
    );
    let flat_ok = flatness(&samples, plan, after);
    if !flat_ok {
        if quick {
            println!("   (smoke run: flatness not judged)");
        } else {
            fail("resources still growing after warm-up (the second half over 10% above the first: fds and threads by their peaks, RSS by its median)".into());
        }
    } else if quick {
        println!("   (smoke run: flatness not judged)");
    }
    if let Some(s) = settled {
        println!(
            "RSS after the load and a quiet minute: {:.1} MiB after {:.0} s (the first half's median: {:.1} MiB)",
            s.rss as f64 / 1024.0,
            s.after.as_secs_f64(),
            s.target as f64 / 1024.0
        );
        if s.rss > s.target {
            fail(format!(
                "RSS did not come back down to the first half's median within {:.0} s of the load's end ({:.1} MiB, median {:.1} MiB): memory the run kept",
                s.after.as_secs_f64(),
                s.rss as f64 / 1024.0,
                s.target as f64 / 1024.0
            ));
        }
    }

    println!();
    if failures.is_empty() {
        println!("soak: every check passed");
        true
    } else {
        println!("soak: {} checks failed:", failures.len());
        for f in &failures {
            println!("   - {f}");
        }
        false
    }
}

fn print_sample(s: &Sample, prev: Option<&Sample>, log_source: &str) {
    let (lr, hr, pr) = match prev {
        Some(p) => {
            let dt = (s.at - p.at).as_secs_f64().max(1e-3);
            (
                (s.log_written - p.log_written) as f64 / dt,
                (s.hook_acked - p.hook_acked) as f64 / dt,
                (s.policy_requests - p.policy_requests) as f64 / dt,
            )
        }
        None => (0.0, 0.0, 0.0),
    };
    let (leases, counted) = s
        .stats
        .as_ref()
        .map(|st| {
            (
                st.leases_active,
                st.logins_by_source.get(log_source).copied().unwrap_or(0),
            )
        })
        .unwrap_or((0, 0));
    println!(
        "t={:>5.1}s  RSS {:>7.1} MiB  fds {:>4}  threads {:>3}  leases {:>7}  log written {:>8} read {:>8}  ({lr:.0}/s written, {hr:.0} hook/s, {pr:.0} policy req/s)",
        s.at.as_secs_f64(),
        s.proc.rss_kib as f64 / 1024.0,
        s.proc.fds,
        s.proc.threads,
        leases,
        s.log_written,
        counted
    );
}

/// One figure of a sample.
type Figure = dyn Fn(&ProcFigures) -> u64;

/// What RSS came down to after the load.
struct Settled {
    /// The first half's median after warm-up, in KiB.
    target: u64,
    rss: u64,
    after: Duration,
}

fn median(mut xs: Vec<u64>) -> u64 {
    xs.sort_unstable();
    xs.get(xs.len() / 2).copied().unwrap_or(0)
}

/// The samples after warm-up, the ones that are judged.
fn after_warmup<'a>(samples: &'a [Sample], plan: &Plan) -> Vec<&'a Sample> {
    samples.iter().filter(|s| s.at >= plan.warmup).collect()
}

/// The median RSS (KiB) of the first half of the samples after warm-up.
fn first_half_median_rss(samples: &[Sample], plan: &Plan) -> u64 {
    let post = after_warmup(samples, plan);
    let (first_half, _) = post.split_at(post.len() / 2);
    median(first_half.iter().map(|s| s.proc.rss_kib).collect())
}

/// Whether anything keeps growing after warm-up: the second half of the samples after warm-up
/// against the first half, within 10%. A leak grows through the whole run; a pool that settles
/// at its size in the first minutes of steady load is not one (tokio's blocking pool grows
/// with how many hook logins wait for their fsync at once, and reached its size only at
/// t=180 s in a run on 2026-12-05: threads 29 at 120-150 s, then 32-33 to the end).
/// fds and threads are compared by their peaks: a sample's figures jitter with what is in
/// flight at that moment. RSS is compared by its median: under this load the heap's working
/// set (mostly sled's node reads and copies, by `heaptrack`) swings by over 100 MiB within
/// a minute, so each half's peak is where a swing happened to crest (runs of 2026-12-06:
/// +16.2% between the peaks, +2% between the medians). Memory kept by the run is judged after
/// it, when the daemon has had a quiet minute to give back what it freed ([`Settled`]).
fn flatness(samples: &[Sample], plan: &Plan, after: ProcFigures) -> bool {
    let post = after_warmup(samples, plan);
    if post.len() < 6 {
        println!("   too few samples after warm-up to compare");
        return false;
    }
    let mean = |xs: &[&Sample], f: &Figure| {
        xs.iter().map(|s| f(&s.proc) as f64).sum::<f64>() / xs.len() as f64
    };
    let peak = |xs: &[&Sample], f: &Figure| xs.iter().map(|s| f(&s.proc)).max().unwrap_or(0) as f64;
    let (first_half, second_half) = post.split_at(post.len() / 2);
    let first = &post[..3];
    let last = &post[post.len() - 3..];
    let mut ok = true;
    let med = |xs: &[&Sample], f: &Figure| median(xs.iter().map(|s| f(&s.proc)).collect()) as f64;
    // (name, figure, unit, judged by the median rather than the peak)
    let figures: [(&str, &Figure, f64, bool); 3] = [
        ("RSS (MiB)", &|p| p.rss_kib, 1024.0, true),
        ("open fds", &|p| p.fds, 1.0, false),
        ("threads", &|p| p.threads, 1.0, false),
    ];
    for (name, f, div, by_median) in figures {
        let (pa, pb) = (peak(first_half, f), peak(second_half, f));
        let (ma, mb) = (med(first_half, f), med(second_half, f));
        let change = |a: f64, b: f64| if a > 0.0 { (b - a) / a } else { 0.0 };
        let judged = if by_median {
            change(ma, mb)
        } else {
            change(pa, pb)
        };
        let flat = judged <= 0.10;
        ok &= flat;
        let (m0, m1) = (mean(first, f), mean(last, f));
        println!(
            "{name:<10} peak in the first half {:>8.1}  in the second {:>8.1}  ({:+.1}%); median {:>8.1} -> {:>8.1} ({:+.1}%)  {} by the {}   (mean after warm-up {:.1}, at the end {:.1})",
            pa / div,
            pb / div,
            change(pa, pb) * 100.0,
            ma / div,
            mb / div,
            change(ma, mb) * 100.0,
            if flat { "flat" } else { "GROWING" },
            if by_median { "median" } else { "peak" },
            m0 / div,
            m1 / div,
        );
    }
    println!(
        "after the load stopped: RSS {:.1} MiB (peak {:.1} MiB), {} fds, {} threads; connections and tasks: not in the daemon's stats",
        after.rss_kib as f64 / 1024.0,
        after.hwm_kib as f64 / 1024.0,
        after.fds,
        after.threads
    );
    ok
}

// ---------------------------------------------------------------------------------------
// The log writer: login lines at a steady rate, rotated by rename-then-create, and the
// SIGHUPs.

fn log_writer(plan: &Plan, tally: &Tally, path: &Path, pid: u32, t0: Instant, end: Instant) -> u64 {
    let open = |p: &Path| OpenOptions::new().append(true).open(p).expect("open log");
    let mut out = open(path);
    let mut next_rotation = t0 + plan.rotate_every;
    let mut next_hup = t0 + plan.hup_every;
    // After a rotation: when the writer switches to the new file.
    let mut switch_at: Option<Instant> = None;
    let mut k: u64 = 0;
    let mut buf = String::with_capacity(1 << 20);
    let mut stamp = syslog_stamp();
    let mut stamp_at = Instant::now();
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if now >= next_rotation {
            // logrotate: shift the generations, rename, create; syslog keeps writing to the
            // renamed file until told to reopen. Every generation of the run is kept (like
            // `rotate 30`): a file deleted before the daemon read it is the test's loss.
            let generations = plan.run.as_secs() / plan.rotate_every.as_secs().max(1) + 1;
            for n in (1..generations).rev() {
                let from = with_suffix(path, &format!(".{n}"));
                if from.exists() {
                    let to = with_suffix(path, &format!(".{}", n + 1));
                    std::fs::rename(&from, &to).expect("shift a generation");
                }
            }
            std::fs::rename(path, with_suffix(path, ".1")).expect("rotate the log");
            File::create(path).expect("create the new log");
            tally.rotations.fetch_add(1, Ordering::Relaxed);
            switch_at = Some(now + plan.rotate_lag);
            next_rotation += plan.rotate_every;
        }
        if now >= next_hup {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGHUP,
            )
            .expect("send SIGHUP");
            tally.hups.fetch_add(1, Ordering::Relaxed);
            next_hup += plan.hup_every;
        }
        if let Some(t) = switch_at
            && now >= t
        {
            out = open(path);
            switch_at = None;
        }
        if now.duration_since(stamp_at) >= Duration::from_millis(200) {
            stamp = syslog_stamp();
            stamp_at = now;
        }
        let due = (now.duration_since(t0).as_secs_f64() * plan.log_rate as f64) as u64;
        // At most a second's worth at once, so a stall does not become one huge write.
        let upto = due.min(k + plan.log_rate);
        buf.clear();
        while k < upto {
            let j = (k % plan.log_pool as u64) as usize;
            let ip = log_addr(j);
            use std::fmt::Write as _;
            let _ = write!(
                buf,
                "{stamp} mx1 dovecot: imap-login: Login: user=<u{j}>, method=PLAIN, rip={ip}, lip=10.0.0.1, mpid={pid}, TLS, session=<soak{k:012}>\n\
                 {stamp} mx1 postfix/smtpd[{}]: connect from unknown[198.51.100.{}]\n\
                 {stamp} mx1 dovecot: imap(u{j})<{pid}><soak{k:012}>: Disconnected: Logged out in=26 out=770\n",
                30_000 + k % 100_000,
                1 + k % 254,
                pid = 20_000 + k % 100_000,
            );
            k += 1;
        }
        if !buf.is_empty() {
            out.write_all(buf.as_bytes()).expect("append to the log");
            tally.log_written.store(k, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    k
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

// ---------------------------------------------------------------------------------------
// Hook logins: tickets handed out at the target rate to a pool of clients.

fn hook_client(
    plan: &Plan,
    tally: &Tally,
    socket: &Path,
    ticket: &AtomicU64,
    t0: Instant,
    end: Instant,
) {
    // Bounded: no more tickets than the plan's run can use.
    let max = plan.hook_rate * plan.run.as_secs() + plan.hook_rate;
    loop {
        let k = ticket.fetch_add(1, Ordering::Relaxed);
        if k >= max {
            return;
        }
        let at = t0 + Duration::from_secs_f64(k as f64 / plan.hook_rate as f64);
        if at >= end {
            return;
        }
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        let j = (k % plan.hook_pool as u64) as usize;
        let ip = hook_addr(j).to_string();
        let result = if k.is_multiple_of(plan.hook_process_every) {
            let out = Command::new(BIN)
                .args(["hook", "--ip", &ip, "--user", "soak", "--timeout", "10s"])
                .arg("--socket")
                .arg(socket)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .output()
                .expect("run relaylease hook");
            if out.status.success() {
                tally.hook_via_process.fetch_add(1, Ordering::Relaxed);
                Ok(())
            } else {
                Err(format!(
                    "hook process {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        } else {
            // What the hook sends, through the hook's own code: one connection per login.
            match relaylease::sources::hook::report(
                socket,
                Some(ip.clone()),
                Some("soak".into()),
                Duration::from_secs(10),
            ) {
                Ok(true) => {
                    tally.hook_via_socket.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Ok(false) => Err(format!("{ip}: refused")),
                Err(e) => Err(format!("{ip}: {e}")),
            }
        };
        match result {
            Ok(()) => {
                tally.hook_acked[j].fetch_add(1, Ordering::Release);
                tally.hook_done.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tally.hook_failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut v) = tally.hook_errors.lock()
                    && v.len() < 10
                {
                    v.push(e);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Policy load: closed loop, one request in flight per connection.

/// Latencies in 10 µs buckets up to 50 ms, and the largest.
struct Hist {
    buckets: Vec<u64>,
    over: u64,
    max_ns: u64,
}

const BUCKET_NS: u64 = 10_000;
const BUCKETS: usize = 5_000;

impl Hist {
    fn new() -> Hist {
        Hist {
            buckets: vec![0; BUCKETS],
            over: 0,
            max_ns: 0,
        }
    }
    fn add(&mut self, ns: u64) {
        let i = (ns / BUCKET_NS) as usize;
        if i < BUCKETS {
            self.buckets[i] += 1;
        } else {
            self.over += 1;
        }
        self.max_ns = self.max_ns.max(ns);
    }
    fn merge(&mut self, o: &Hist) {
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.over += o.over;
        self.max_ns = self.max_ns.max(o.max_ns);
    }
    fn count(&self) -> u64 {
        self.buckets.iter().sum::<u64>() + self.over
    }
    /// The upper edge of the bucket holding the p-th quantile, in ms (None: beyond 50 ms).
    fn pct(&self, p: f64) -> Option<f64> {
        let want = (self.count() as f64 * p).ceil() as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= want.max(1) {
                return Some(((i as u64 + 1) * BUCKET_NS) as f64 / 1e6);
            }
        }
        None
    }
    fn show(&self) -> String {
        let f = |p| match self.pct(p) {
            Some(v) => format!("{v:.2}ms"),
            None => ">50ms".to_string(),
        };
        format!(
            "p50 {} p90 {} p99 {} p99.9 {} max {:.2}ms (10 µs buckets)",
            f(0.5),
            f(0.9),
            f(0.99),
            f(0.999),
            self.max_ns as f64 / 1e6
        )
    }
}

struct PolicyFigures {
    requests: u64,
    ok: u64,
    hist: Hist,
}

fn policy_load(
    plan: &Plan,
    tally: &Arc<Tally>,
    path: &Path,
    stop: &Arc<AtomicBool>,
    end: Instant,
) -> PolicyFigures {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..plan.policy_conns {
            let (plan, tally, path, stop) = (
                plan.clone(),
                tally.clone(),
                path.to_path_buf(),
                stop.clone(),
            );
            tasks.push(tokio::spawn(async move {
                policy_conn(c, &plan, &tally, &path, &stop, end).await
            }));
        }
        let mut figs = PolicyFigures {
            requests: 0,
            ok: 0,
            hist: Hist::new(),
        };
        for t in tasks {
            let (n, ok, h) = t.await.expect("policy task");
            figs.requests += n;
            figs.ok += ok;
            figs.hist.merge(&h);
        }
        figs
    })
}

async fn policy_conn(
    c: usize,
    plan: &Plan,
    tally: &Tally,
    path: &Path,
    stop: &AtomicBool,
    end: Instant,
) -> (u64, u64, Hist) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut hist = Hist::new();
    let mut rng = workload::Rng::new(1000 + c as u64);
    let mut n = 0u64;
    let mut ok = 0u64;
    let mut buf = [0u8; 256];
    // Bounded by time, by the stop flag, and by count.
    'conn: while Instant::now() < end && !stop.load(Ordering::Relaxed) && n < 100_000_000 {
        let Ok(mut s) = tokio::net::UnixStream::connect(path).await else {
            tally.policy_conn_failures.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        while Instant::now() < end && !stop.load(Ordering::Relaxed) {
            // A third each: acknowledged hook addresses (must be OK), strangers (must be
            // DUNNO), log addresses (either, depending on how far the daemon has read).
            let (client, want) = match rng.below(3) {
                0 => {
                    let j = rng.below(plan.hook_pool as u64) as usize;
                    let leased = tally.hook_acked[j].load(Ordering::Acquire) > 0;
                    (IpAddr::V4(hook_addr(j)), leased.then_some(true))
                }
                1 => (
                    IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1 + rng.below(254) as u8)),
                    Some(false),
                ),
                _ => (
                    IpAddr::V4(log_addr(rng.below(plan.log_pool as u64) as usize)),
                    None,
                ),
            };
            let req = workload::policy_request(&client.to_string(), n);
            let t = Instant::now();
            if s.write_all(&req).await.is_err() {
                tally.policy_conn_failures.fetch_add(1, Ordering::Relaxed);
                continue 'conn;
            }
            let mut got = 0;
            loop {
                match s.read(&mut buf[got..]).await {
                    Ok(0) | Err(_) => {
                        tally.policy_conn_failures.fetch_add(1, Ordering::Relaxed);
                        continue 'conn;
                    }
                    Ok(k) => got += k,
                }
                if buf[..got].ends_with(b"\n\n") || got == buf.len() {
                    break;
                }
            }
            hist.add(t.elapsed().as_nanos() as u64);
            n += 1;
            tally.policy_requests.fetch_add(1, Ordering::Relaxed);
            let is_ok = buf.starts_with(b"action=OK");
            if is_ok {
                ok += 1;
            }
            if let Some(w) = want
                && w != is_ok
            {
                tally.policy_wrong.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    (n, ok, hist)
}

// ---------------------------------------------------------------------------------------
// The daemon's log, one JSON object per line.

struct LogScan {
    lines: u64,
    levels: BTreeMap<String, u64>,
    not_json: u64,
    rotations_noticed: u64,
    /// WARN and ERROR messages (and lines that are not JSON), with how often each came.
    examples: BTreeMap<String, Vec<(String, u64)>>,
}

fn scan_log(path: &Path) -> LogScan {
    let mut scan = LogScan {
        lines: 0,
        levels: BTreeMap::new(),
        not_json: 0,
        rotations_noticed: 0,
        examples: BTreeMap::new(),
    };
    let Ok(f) = File::open(path) else {
        scan.not_json = 1;
        return scan;
    };
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    // Bounded by the file's length.
    for line in BufReader::new(f).split(b'\n') {
        let Ok(line) = line else { break };
        scan.lines += 1;
        // Cheap field picking: the level and message are near the start of each object.
        let text = String::from_utf8_lossy(&line);
        let Some(level) = json_field(&text, "level") else {
            scan.not_json += 1;
            *counts
                .entry(("NOT JSON".into(), text.chars().take(200).collect()))
                .or_default() += 1;
            continue;
        };
        *scan.levels.entry(level.to_string()).or_default() += 1;
        let msg = json_field(&text, "message").unwrap_or("");
        if msg.contains("rotated") || msg.contains("moved away") {
            scan.rotations_noticed += 1;
        }
        if level == "WARN" || level == "ERROR" {
            *counts
                .entry((level.to_string(), msg.chars().take(300).collect()))
                .or_default() += 1;
        }
    }
    for ((level, m), n) in counts {
        let v = scan.examples.entry(level).or_default();
        if v.len() < 5 {
            v.push((m, n));
        }
    }
    scan
}

/// The string value of `"name":"..."` in a JSON line (no escapes needed for what we read).
fn json_field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":\"");
    let start = line.find(&key)? + key.len();
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}
