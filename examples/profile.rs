//! A fixed amount of one pure workload, for profilers that count instructions rather than
//! time (the machine's clock is shared; instruction counts are not):
//!
//! ```text
//! cargo build --release --example profile
//! valgrind --tool=callgrind target/release/examples/profile logparse 200000
//! callgrind_annotate callgrind.out.* | head -40
//! ```
//!
//! Workloads: `logparse N` (N log lines), `policy N` (N requests parsed and decided),
//! `tcprules N` (one rebuild with N leases), `store DIR N` (open a database of N leases).

#[path = "../benches/workload/mod.rs"]
mod workload;

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use relaylease::answers::postfix_policy::decide_ref;
use relaylease::answers::postfix_policy_proto::{parse_request_ref, reply};
use relaylease::answers::tcprules::build_rules;
use relaylease::lease::{Lease, Login, Rules, lease_key, now_ms};
use relaylease::sources::logparse::LineParser;
use relaylease::store::{Backend, Leases};

struct Nowhere;

impl Backend for Nowhere {
    fn load(&self) -> relaylease::Result<Vec<Lease>> {
        Ok(Vec::new())
    }
    fn put(&self, _: &Lease) -> relaylease::Result<()> {
        Ok(())
    }
    fn remove(&self, _: &ipnet::IpNet) -> relaylease::Result<()> {
        Ok(())
    }
    fn clear(&self) -> relaylease::Result<()> {
        Ok(())
    }
    fn sync(&self) -> relaylease::Result<()> {
        Ok(())
    }
    fn get_meta(&self, _: &str) -> relaylease::Result<Option<Vec<u8>>> {
        Ok(None)
    }
    fn put_meta(&self, _: &str, _: &[u8]) -> relaylease::Result<()> {
        Ok(())
    }
}

fn open(dir: &std::path::Path) -> relaylease::store::SledBackend {
    match relaylease::store::SledBackend::open(dir).expect("open") {
        relaylease::store::Opened::Fine(b) => b,
        relaylease::store::Opened::Quarantined(..) => panic!("database reported corrupt"),
    }
}

/// This process's resident and peak resident memory.
fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
            .unwrap_or_default()
    };
    format!("RSS {} KiB, peak {} KiB", get("VmRSS:"), get("VmHWM:"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map(String::as_str).unwrap_or("logparse");
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    match what {
        "logparse" => {
            let clients = workload::clients(50_000.min(n / 10).max(100), 1);
            let (log, stats) = workload::mail_log(n, &clients, 2);
            let mut p = LineParser::new(None, Vec::new());
            let t = Instant::now();
            for line in log.split(|&b| b == b'\n') {
                black_box(p.parse(line));
            }
            let s = t.elapsed().as_secs_f64();
            eprintln!(
                "logparse: {} lines, {} bytes in {s:.3} s: {:.0} lines/s",
                stats.lines,
                stats.bytes,
                stats.lines as f64 / s
            );
        }
        "policy" => {
            let now = now_ms();
            let leases = Leases::open(Box::new(Nowhere), Rules::default(), now).expect("open");
            let clients = workload::clients(1000, 3);
            for c in clients.iter().step_by(3) {
                let ip: IpAddr = c.text.parse().expect("address");
                let login = Login {
                    ip,
                    user: None,
                    at: now,
                    source: "bench".into(),
                };
                leases.login(&login, now, false, None).expect("login");
            }
            let reqs: Vec<Vec<u8>> = clients
                .iter()
                .enumerate()
                .map(|(i, c)| workload::policy_request(&c.text, i as u64))
                .collect();
            let t = Instant::now();
            let mut ok = 0;
            for i in 0..n {
                // What the policy service does for each request.
                let (req, _) = parse_request_ref(&reqs[i % reqs.len()])
                    .ok()
                    .flatten()
                    .expect("request");
                if reply(decide_ref(&leases, &req, now)).starts_with(b"action=OK") {
                    ok += 1;
                }
            }
            eprintln!(
                "policy: {n} requests ({ok} OK) in {:.3} s",
                t.elapsed().as_secs_f64()
            );
        }
        "tcprules" => {
            let nets: Vec<_> = workload::clients(n, 4)
                .iter()
                .map(|c| lease_key(c.text.parse().expect("address"), 64))
                .collect();
            let t = Instant::now();
            let cdb = build_rules(&[], &nets, &[]).expect("build");
            eprintln!(
                "tcprules: {n} leases, {} bytes in {:.3} s",
                cdb.len(),
                t.elapsed().as_secs_f64()
            );
        }
        "store" => {
            // `store DIR N`: fill DIR with N leases if it is empty, then time and size what
            // opening it costs: sled's open, Backend::load, and Leases::open.
            let dir = std::path::PathBuf::from(
                args.get(1)
                    .map(String::as_str)
                    .unwrap_or("/tmp/store-profile"),
            );
            let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
            let now = now_ms();
            if !dir.exists() {
                let t = Instant::now();
                let b = open(&dir);
                for c in workload::clients(n, 31) {
                    let ip: IpAddr = c.text.parse().expect("address");
                    let login = Login {
                        ip,
                        user: Some("alice".into()),
                        at: now,
                        source: "/var/log/mail.log".into(),
                    };
                    b.put(&Lease::new(lease_key(ip, 64), &login, now + 3_600_000))
                        .expect("put");
                }
                b.sync().expect("sync");
                eprintln!("filled {n} in {:.2} s", t.elapsed().as_secs_f64());
            }
            eprintln!("start: {}", rss());
            let t = Instant::now();
            let b = open(&dir);
            eprintln!("sled open {:.3} s: {}", t.elapsed().as_secs_f64(), rss());
            let t = Instant::now();
            let all = b.load().expect("load");
            eprintln!(
                "load {} leases {:.3} s: {}",
                all.len(),
                t.elapsed().as_secs_f64(),
                rss()
            );
            drop(all);
            eprintln!("dropped the loaded leases: {}", rss());
            let t = Instant::now();
            let leases = Leases::open(Box::new(b), Rules::default(), now).expect("open");
            eprintln!(
                "Leases::open {} leases {:.3} s: {}",
                leases.len(),
                t.elapsed().as_secs_f64(),
                rss()
            );
        }
        other => eprintln!("unknown workload '{other}' (logparse, policy, tcprules, store)"),
    }
}
