//! Benchmarks of the pure parts: log-line parsing, the policy protocol, the tcprules cdb,
//! the audit lines of messages relayed through a lease.
//!
//! `cargo bench --bench pure` measures; `cargo bench --bench pure -- --test` (and
//! `cargo test --benches`) only checks each benchmark runs, on a small workload.

mod workload;

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ipnet::IpNet;

use relaylease::answers::postfix_policy::decide;
use relaylease::answers::postfix_policy_proto::{parse_request, parse_request_ref, reply};
use relaylease::answers::tcprules::build_rules;
use relaylease::lease::{Lease, Login, Rules, lease_key, now_ms};
use relaylease::sources::logparse::{Event, LineParser};
use relaylease::store::{Backend, Leases};

/// The mix: 1,000,000 lines from 50,000 client addresses.
const LOG_LINES: usize = 1_000_000;
const LOG_CLIENTS: usize = 50_000;
/// Leases in the table behind the policy decision and in the tcprules rebuild.
const LEASES: usize = 100_000;

fn log_parse(c: &mut Criterion) {
    let (lines, clients) = if workload::quick() {
        (20_000, 2_000)
    } else {
        (LOG_LINES, LOG_CLIENTS)
    };
    let clients = workload::clients(clients, 1);
    let (log, stats) = workload::mail_log(lines, &clients, 2);
    // Line boundaries found once: the benchmark is of the parser, not of memchr.
    let mut spans = Vec::with_capacity(lines);
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', &log) {
        spans.push((start, i));
        start = i + 1;
    }
    // Check the parser reads the generated log as intended before timing it.
    let mut p = LineParser::new(None, Vec::new());
    let (mut logins, mut failures, mut odd) = (0, 0, 0);
    for &(s, e) in &spans {
        match p.parse(&log[s..e]) {
            Event::Login(l) if l.ip.is_some() => logins += 1,
            Event::Login(_) => odd += 1,
            Event::Failure(_) => failures += 1,
            Event::LooksLikeLogin => odd += 1,
            Event::Logout { .. } | Event::Nothing => {}
        }
    }
    eprintln!(
        "log workload: {} lines, {} bytes ({:.1} bytes/line), {} POP3/IMAP lines ({:.1}%), {} logins with an address, {} failures",
        stats.lines,
        stats.bytes,
        stats.bytes as f64 / stats.lines as f64,
        stats.mail_access_lines,
        100.0 * stats.mail_access_lines as f64 / stats.lines as f64,
        stats.logins_with_address,
        stats.failures
    );
    assert_eq!(
        (logins, failures, odd),
        (stats.logins_with_address, stats.failures, 0),
        "the parser must find every generated login and failure, and nothing else"
    );

    let mut g = c.benchmark_group("logparse");
    g.throughput(Throughput::ElementsAndBytes {
        elements: stats.lines as u64,
        bytes: stats.bytes as u64,
    });
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("LineParser::parse/mixed_log", |b| {
        let mut p = LineParser::new(None, Vec::new());
        b.iter(|| {
            for &(s, e) in &spans {
                black_box(p.parse(black_box(&log[s..e])));
            }
        })
    });
    g.finish();
}

/// A backend that keeps nothing, so the policy benchmark measures the table and protocol.
struct Nowhere;

impl Backend for Nowhere {
    fn load(&self) -> relaylease::Result<Vec<Lease>> {
        Ok(Vec::new())
    }
    fn put(&self, _: &Lease) -> relaylease::Result<()> {
        Ok(())
    }
    fn remove(&self, _: &IpNet) -> relaylease::Result<()> {
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

fn policy(c: &mut Criterion) {
    let n = if workload::quick() { 2_000 } else { LEASES };
    let now = now_ms();
    let leases = Leases::open(Box::new(Nowhere), Rules::default(), now).expect("open");
    let clients = workload::clients(n, 3);
    for cl in &clients {
        let ip: IpAddr = cl.text.parse().expect("generated address");
        let login = Login {
            ip,
            user: Some("alice".into()),
            at: now,
            source: "/var/log/mail.log".into(),
        };
        leases.login(&login, now, false, None).expect("login");
    }
    let leased = workload::policy_request(&clients[n / 2].text, 7);
    let stranger = workload::policy_request("192.0.2.77", 8);

    let mut g = c.benchmark_group("policy");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_request/postfix37", |b| {
        b.iter(|| parse_request(black_box(&leased)))
    });
    // What the policy service itself calls: nothing copied.
    g.bench_function("parse_request_ref/postfix37", |b| {
        b.iter(|| parse_request_ref(black_box(&leased)).map(|r| r.map(|(_, n)| n)))
    });
    g.bench_function("parse+decide+reply/leased", |b| {
        b.iter(|| {
            let (req, _) = parse_request(black_box(&leased))
                .ok()
                .flatten()
                .expect("request");
            reply(decide(&leases, &req, now))
        })
    });
    g.bench_function("parse+decide+reply/unknown", |b| {
        b.iter(|| {
            let (req, _) = parse_request(black_box(&stranger))
                .ok()
                .flatten()
                .expect("request");
            reply(decide(&leases, &req, now))
        })
    });
    g.finish();
}

/// 100,000 lease keys as the store holds them: 90% IPv4 hosts, 10% IPv6 /64s.
pub fn lease_nets(n: usize) -> Vec<IpNet> {
    workload::clients(n, 4)
        .iter()
        .map(|c| lease_key(c.text.parse().expect("generated address"), 64))
        .collect()
}

fn tcprules(c: &mut Criterion) {
    let n = if workload::quick() { 2_000 } else { LEASES };
    let nets = lease_nets(n);
    let mut g = c.benchmark_group("tcprules");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(10);
    g.bench_function("build_rules/100k_leases", |b| {
        b.iter(|| build_rules(&[], black_box(&nets), &[]).expect("build"))
    });
    g.finish();
}

/// One tick of the session keeper with every held address due for its extension: the
/// follower thread's work every half window at the sessions table's cap.
fn sessions(c: &mut Criterion) {
    use relaylease::sources::sessions::{CAP, Sessions};
    let n = if workload::quick() { 1_000 } else { CAP };
    let window = Duration::from_secs(30 * 60);
    // Far enough that no iteration reaches the ceiling.
    let hold = Duration::from_secs(100 * 365 * 86400);
    let mut parser = LineParser::new(None, Vec::new());
    let mut table = Sessions::new(CAP);
    let t0 = now_ms();
    for i in 0..n {
        let line = format!(
            "Nov 22 03:08:41 vm dovecot: imap-login: Login: user=<u{i}>, method=PLAIN, rip=10.{}.{}.{}, lip=10.0.0.1, mpid={i}, session=<S{i}>",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        );
        let Event::Login(l) = parser.parse(line.as_bytes()) else {
            panic!("not a login: {line}");
        };
        let (Some(ip), Some(key)) = (l.ip, l.session) else {
            panic!("no address or session: {line}");
        };
        assert!(table.open(key, ip, t0, hold).0);
    }
    let mut now = t0;
    let mut g = c.benchmark_group("sessions");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(format!("due_{n}_held"), |b| {
        b.iter(|| {
            now += 15 * 60 * 1000;
            let due = table.due(now, window);
            assert_eq!(due.len(), n);
            black_box(due)
        })
    });
    g.finish();
}

/// The recorder's own largest cost at a high rate of relayed messages (issue 19): the audit
/// line of each, here a message of one recipient each, from 1,000 leases, as in loadgen.
fn audit(c: &mut Criterion) {
    use relaylease::cli::LogFormat;
    use relaylease::store::LeaseRef;
    use relaylease::usage::audit::Audit;
    use relaylease::usage::message::Messages;
    use relaylease::usage::{Method, Use};
    let n = if workload::quick() { 100 } else { 10_000 };
    // Messages of one recipient each from 1,000 leases: IPv4 hosts, or IPv6 hosts on
    // leases of their /64 (both the client and the lease are written in each line).
    let messages = |v6: bool| {
        let mut msgs = Messages::default();
        let mut finished = Vec::new();
        for i in 0..=n as u64 {
            let (client, net): (IpAddr, IpNet) = if v6 {
                let a = format!(
                    "2001:db8:{:x}:{:x}:21a:4bff:fe0c:{:x}",
                    i % 1000,
                    0x100 + i % 7,
                    i
                );
                let ip: IpAddr = a.parse().expect("address");
                let net = IpNet::new(ip, 64).expect("prefix").trunc();
                (ip, net)
            } else {
                let a = format!("198.51.{}.{}", (i % 1000) / 250, 1 + i % 250);
                let ip: IpAddr = a.parse().expect("address");
                (ip, IpNet::from(ip))
            };
            let user = format!("user{}@example.org", i % 1000);
            let lease = LeaseRef {
                net,
                user: Some(&user),
                source: "/var/log/mail.log",
                last_login: 1_790_000_000_000 + (i % 1000) * 1000,
            };
            let instance = format!("{:x}.66f0e0a1.9c3d4.0", 0x1a2b00 + i);
            let to = format!("rcpt{i}@remote.example");
            let request = [instance.as_str(), "sender@example.org", &to, "4XyzAbCd12"];
            let at = 1_790_000_060_000 + i;
            let u = Use::new(&lease, at, client, Method::PostfixPolicy, 1, request);
            finished.extend(msgs.rcpt(u).1);
        }
        finished
    };
    for (family, v6) in [("", false), ("ipv6_", true)] {
        let finished = messages(v6);
        for (name, format) in [("text", LogFormat::Text), ("json", LogFormat::Json)] {
            let mut a = Audit::new(format);
            a.stamp();
            let mut g = c.benchmark_group("audit");
            g.throughput(Throughput::Elements(finished.len() as u64));
            g.bench_function(format!("{family}{name}_lines_{}", finished.len()), |b| {
                b.iter(|| {
                    for m in &finished {
                        a.message(m);
                    }
                    black_box(a.discard())
                })
            });
            g.finish();
        }
    }
}

criterion_group!(benches, log_parse, policy, tcprules, sessions, audit);
criterion_main!(benches);
