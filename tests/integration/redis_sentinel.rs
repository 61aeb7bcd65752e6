//! A Redis failover under load: one primary, two replicas and three Sentinels (Debian's
//! redis-server and redis-sentinel on loopback ports, each in its own directory), two POP
//! hosts and one SMTP host following the primary through `redis+sentinel://`, while logins
//! flow through hooks and followed logs and the primary is killed with SIGKILL.
//!
//! `RELAYLEASE_FAILOVERS=N` runs N failovers per setting (1 by default, which keeps CI short);
//! the figures for docs/redis.md come from a run by hand with 5.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::daemon_harness::{eventually, wait_timeout};
use crate::redis::{PopHost, SmtpHost, free_port, serial};

const DATA_PW: &str = "data-pw";
const SENTINEL_PW: &str = "sentinel-pw";
const MASTER: &str = "relay";
/// Logins per second through each POP host's hook, and through each one's log.
const RATE: u32 = 100;
/// The load runs at least this long in each round; the primary is killed after KILL_AT.
const LOAD: Duration = Duration::from_secs(5);
const KILL_AT: Duration = Duration::from_millis(1500);

/// One redis-server or redis-sentinel of our own, killed on drop.
struct Node {
    dir: PathBuf,
    port: u16,
    sentinel: bool,
    child: Option<Child>,
}

impl Node {
    fn start(root: &Path, name: &str, port: u16, sentinel: bool, conf: String) -> Node {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("node dir");
        let conf = format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {}\nlogfile {}\n{conf}",
            dir.display(),
            dir.join("log").display()
        );
        std::fs::write(dir.join("conf"), conf).expect("conf");
        let mut n = Node {
            dir,
            port,
            sentinel,
            child: None,
        };
        n.run();
        n
    }

    fn run(&mut self) {
        let program = if self.sentinel {
            "redis-sentinel"
        } else {
            "redis-server"
        };
        let child = Command::new(program)
            .arg(self.dir.join("conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program} (apt-get install {program}): {e}"));
        self.child = Some(child);
        assert!(
            eventually(Duration::from_secs(10), || self.conn().is_some()),
            "{program} on port {} did not answer:\n{}",
            self.port,
            self.log()
        );
    }

    /// SIGSTOP (`false`) or SIGCONT (`true`): a server that falls behind without a word.
    fn pause(&self, run: bool) {
        crate::redis::pause(self.child.as_ref(), run);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            wait_timeout(&mut c, Duration::from_secs(10));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn conn(&self) -> Option<redis::Connection> {
        let pw = if self.sentinel { SENTINEL_PW } else { DATA_PW };
        redis::Client::open(format!("redis://:{pw}@127.0.0.1:{}/0", self.port))
            .ok()?
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()
    }

    fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Option<T> {
        cmd.query(&mut self.conn()?).ok()
    }

    fn role(&self) -> Option<redis::Role> {
        self.query(&redis::cmd("ROLE"))
    }

    /// Every lease key this server holds.
    fn lease_keys(&self) -> HashSet<String> {
        let Some(mut c) = self.conn() else {
            return HashSet::new();
        };
        let mut keys = HashSet::new();
        let mut cursor = 0u64;
        for _ in 0..10_000 {
            let Ok((next, batch)): redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("relaylease:lease:*")
                .arg("COUNT")
                .arg(1000)
                .query(&mut c)
            else {
                break;
            };
            keys.extend(batch);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        keys
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One primary, two replicas, three Sentinels with a quorum of two and short timeouts.
struct Cluster {
    _root: tempfile::TempDir,
    data: Vec<Node>,
    sentinels: Vec<Node>,
}

impl Cluster {
    fn start() -> Cluster {
        let root = tempfile::Builder::new()
            .prefix("relaylease-sentinel")
            .tempdir()
            .expect("temp dir");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut data = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let follow = if i == 0 {
                String::new()
            } else {
                format!("replicaof 127.0.0.1 {}\n", ports[0])
            };
            data.push(Node::start(
                root.path(),
                &format!("redis{i}"),
                *port,
                false,
                format!(
                    "requirepass {DATA_PW}\nmasterauth {DATA_PW}\nsave \"\"\nappendonly yes\n\
                     appendfsync everysec\nrepl-diskless-sync yes\nrepl-diskless-sync-delay 0\n{follow}"
                ),
            ));
        }
        let mut sentinels = Vec::new();
        for i in 0..3 {
            sentinels.push(Node::start(
                root.path(),
                &format!("sentinel{i}"),
                free_port(),
                true,
                format!(
                    "requirepass {SENTINEL_PW}\nsentinel sentinel-pass {SENTINEL_PW}\n\
                     sentinel monitor {MASTER} 127.0.0.1 {} 2\nsentinel auth-pass {MASTER} {DATA_PW}\n\
                     sentinel down-after-milliseconds {MASTER} 1000\n\
                     sentinel failover-timeout {MASTER} 4000\nsentinel parallel-syncs {MASTER} 2\n",
                    ports[0]
                ),
            ));
        }
        let c = Cluster {
            _root: root,
            data,
            sentinels,
        };
        c.wait_stable(None);
        c
    }

    fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!(
            "redis+sentinel://:{DATA_PW}@{}/{MASTER}/0?sentinel_pass={SENTINEL_PW}",
            hosts.join(",")
        )
    }

    /// The primary's port as Sentinel `i` names it.
    fn named_by(&self, i: usize) -> Option<u16> {
        let (_, port): (String, String) = self.sentinels[i].query(
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(MASTER),
        )?;
        port.parse().ok()
    }

    fn index_of(&self, port: u16) -> usize {
        self.data
            .iter()
            .position(|n| n.port == port)
            .expect("a port of ours")
    }

    /// Every Sentinel names one primary (`not`, if given, is not it), which says it is the
    /// primary and has both replicas online, and each Sentinel knows both others.
    fn wait_stable(&self, not: Option<u16>) -> usize {
        let mut found = None;
        let ok = eventually(Duration::from_secs(60), || {
            let named: Vec<Option<u16>> = (0..3).map(|i| self.named_by(i)).collect();
            let Some(Some(port)) = named.first().copied() else {
                return false;
            };
            if named.iter().any(|n| *n != Some(port)) || Some(port) == not {
                return false;
            }
            let i = self.index_of(port);
            let online = match self.data[i].role() {
                Some(redis::Role::Primary { replicas, .. }) => replicas.len(),
                _ => 0,
            };
            let known = self.sentinels.iter().all(|s| {
                s.query::<Vec<redis::Value>>(redis::cmd("SENTINEL").arg("sentinels").arg(MASTER))
                    .is_some_and(|v| v.len() == 2)
            });
            found = Some(i);
            online == 2 && known
        });
        let logs: Vec<String> = self.sentinels.iter().map(Node::log).collect();
        assert!(ok, "the cluster did not settle:\n{}", logs.join("\n---\n"));
        found.expect("a primary")
    }
}

/// A control-socket connection, kept open (the hook's protocol: one JSON line each way).
struct Control(BufReader<UnixStream>);

impl Control {
    fn connect(path: &Path) -> Control {
        let s = UnixStream::connect(path).expect("control socket");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Control(BufReader::new(s))
    }

    fn ask(&mut self, req: serde_json::Value) -> Option<serde_json::Value> {
        let mut line = req.to_string();
        line.push('\n');
        self.0.get_mut().write_all(line.as_bytes()).ok()?;
        let mut reply = String::new();
        self.0.read_line(&mut reply).ok()?;
        serde_json::from_str(&reply).ok()
    }

    /// Ask for every address this host answers for now (`list`); [`Control::leases`] reads
    /// the answer. Split so that several hosts are asked at the same moment.
    fn ask_leases(&mut self) {
        let _ = self.0.get_mut().write_all(b"{\"op\":\"list\"}\n");
    }

    /// The reply to [`Control::ask_leases`], as Redis keys.
    fn leases(&mut self) -> HashSet<String> {
        let mut line = String::new();
        let _ = self.0.read_line(&mut line);
        let reply: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        reply["leases"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l["net"].as_str())
                    .map(|n| format!("relaylease:lease:{n}"))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn allows(&mut self, ip: &str) -> bool {
        self.ask(serde_json::json!({"op": "check", "addr": ip}))
            .is_some_and(|r| r["allowed"] == true)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fate {
    /// The hook's reply came without `queued`: Redis (and its replicas) confirmed it.
    Acked,
    /// The hook's reply said the login waits in this host's queue.
    Queued,
    /// No reply, or an error.
    Failed,
    /// Written to a followed log: acknowledged to nobody.
    Logged,
}

struct Record {
    ip: String,
    fate: Fate,
    sent: Instant,
}

/// What one setting's rounds added up to.
#[derive(Default, Debug)]
struct Figures {
    hooks: [usize; 3],
    hooks_lost: [usize; 3],
    logged: usize,
    logged_lost: usize,
    to_first_ack: Vec<Duration>,
    /// From the promotion until every host answers for what the new primary held at +0.8 s
    /// (asked from +1 s on), and how many (host, lease) pairs were unanswered at +1 s.
    to_agreement: Vec<Duration>,
    unanswered_at_1s: Vec<usize>,
    slowest_policy: Duration,
}

fn ip_of(stream: u32, n: u64) -> String {
    format!("10.{stream}.{}.{}", (n / 250) % 250, n % 250 + 1)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn failovers() -> usize {
    std::env::var("RELAYLEASE_FAILOVERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .clamp(1, 20)
}

/// Run `failovers()` rounds of load + kill -9 of the primary with `--store-replicas
/// replicas`, checking what a user would notice, then one more round where both replicas
/// stall (SIGSTOP, their links cut) for the 500 ms before the kill: what the primary
/// confirmed then is on no replica. Returns the figures of the plain rounds and of the stalled one.
fn failover_rounds(replicas: u32) -> (Figures, Figures) {
    let mut cluster = Cluster::start();
    let url = cluster.url();
    let n = replicas.to_string();
    let extra = ["--store-replicas", n.as_str()];
    let pops = [PopHost::start(&url, &extra), PopHost::start(&url, &extra)];
    let smtp = SmtpHost::start(&url, &extra);
    let sockets: Vec<PathBuf> = [&pops[0].env, &pops[1].env, &smtp.env]
        .iter()
        .map(|e| e.socket())
        .collect();
    let long_ip = "192.0.2.200";

    let mut figures = Figures::default();
    let mut stalled = Figures::default();
    let rounds = failovers() + 1;
    let counters: Vec<Arc<AtomicU64>> = (0..4).map(|_| Arc::new(AtomicU64::new(0))).collect();
    for round in 0..rounds {
        let stall = round + 1 == rounds;
        // Whichever server the Sentinels agree on now is the one to kill.
        let mut primary = cluster.wait_stable(None);
        // Each round starts from an empty table (so that it does not grow from round to
        // round) and one lease known everywhere, which must be answered throughout.
        let mut control = Control::connect(&sockets[0]);
        let flushed = control.ask(serde_json::json!({"op": "flush"}));
        assert!(flushed.is_some_and(|r| r["ok"] == true));
        let added = control.ask(serde_json::json!({"op": "add", "addr": long_ip, "for": "1h"}));
        assert!(added.is_some_and(|r| r["ok"] == true));
        assert!(
            eventually(Duration::from_secs(10), || sockets.iter().all(|s| {
                let mut c = Control::connect(s);
                c.ask_leases();
                c.leases().len() == 1
            })),
            "the hosts did not settle on one lease"
        );
        let stop = Arc::new(AtomicBool::new(false));
        let records = Arc::new(Mutex::new(Vec::<Record>::new()));
        let start = Instant::now();
        let mut threads = Vec::new();
        // Per POP host: hook logins over its control socket, and logins in its log.
        for (h, pop) in pops.iter().enumerate() {
            let (stop1, records1, counter) = (stop.clone(), records.clone(), counters[h].clone());
            let socket = sockets[h].clone();
            threads.push(std::thread::spawn(move || {
                let (stop, records) = (stop1, records1);
                let mut control = Control::connect(&socket);
                let mut tick = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let ip = ip_of(h as u32 * 2, counter.fetch_add(1, Ordering::Relaxed));
                    let sent = Instant::now();
                    let fate = match control
                        .ask(serde_json::json!({"op": "login", "addr": ip, "user": "alice"}))
                    {
                        Some(r) if r["ok"] == true && r["queued"].is_string() => Fate::Queued,
                        Some(r) if r["ok"] == true => Fate::Acked,
                        _ => {
                            control = Control::connect(&socket);
                            Fate::Failed
                        }
                    };
                    records.lock().unwrap().push(Record { ip, fate, sent });
                    tick += 1;
                    let next = start + Duration::from_secs(1) * tick / RATE;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            }));
            let log = pop.log_path();
            let (stop, records, counter) = (stop.clone(), records.clone(), counters[h + 2].clone());
            threads.push(std::thread::spawn(move || {
                let mut tick = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let ip = ip_of(h as u32 * 2 + 1, counter.fetch_add(1, Ordering::Relaxed));
                    crate::redis::log_login(&log, &ip);
                    records.lock().unwrap().push(Record {
                        ip,
                        fate: Fate::Logged,
                        sent: Instant::now(),
                    });
                    tick += 1;
                    let next = start + Duration::from_secs(1) * tick / RATE;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            }));
        }
        // The SMTP host's policy service, asked all along: the long lease always, and a
        // short one (ending during the failover) never past its deadline.
        let short_ip = format!("192.0.2.{}", 100 + round);
        let policy_seen = Arc::new(Mutex::new((Duration::ZERO, 0usize, 0usize, 0usize)));
        let short_deadline = Arc::new(AtomicU64::new(u64::MAX));
        {
            let (stop, seen, deadline) =
                (stop.clone(), policy_seen.clone(), short_deadline.clone());
            let mut policy = smtp.policy();
            let short_ip = short_ip.clone();
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let long_ok = policy.action(long_ip) == "OK";
                    let asked = now_ms();
                    let short_ok = policy.action(&short_ip) == "OK";
                    let took = t.elapsed();
                    let mut s = seen.lock().unwrap();
                    s.0 = s.0.max(took);
                    if !long_ok {
                        s.1 += 1;
                    }
                    if short_ok && asked >= deadline.load(Ordering::Relaxed) {
                        s.2 += 1;
                    }
                    if short_ok {
                        s.3 += 1;
                    }
                    drop(s);
                    std::thread::sleep(Duration::from_millis(5));
                }
            }));
        }
        std::thread::sleep(KILL_AT.saturating_sub(Duration::from_millis(500)));
        let added = Control::connect(&sockets[0])
            .ask(serde_json::json!({"op": "add", "addr": short_ip, "for": "2500ms"}))
            .expect("add reply");
        short_deadline.store(
            added["lease"]["deadline"].as_u64().expect("deadline"),
            Ordering::Relaxed,
        );
        let replica_nodes: Vec<usize> = (0..3).filter(|i| *i != primary).collect();
        if stall {
            std::thread::sleep(
                KILL_AT.saturating_sub(Duration::from_millis(500) + start.elapsed()),
            );
            for i in &replica_nodes {
                cluster.data[*i].pause(false);
            }
            // Cut their links too: what the kernel already holds for a stopped replica
            // would otherwise reach it after SIGCONT, kill -9 or not.
            let cut: Option<redis::Value> = cluster.data[primary]
                .query(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica"));
            assert!(cut.is_some(), "CLIENT KILL TYPE replica");
        }
        std::thread::sleep(KILL_AT.saturating_sub(start.elapsed()));

        let old = primary;
        let old_port = cluster.data[old].port;
        let before = cluster.data[old].lease_keys();
        let killed = Instant::now();
        cluster.data[old].kill9();
        for i in &replica_nodes {
            cluster.data[*i].pause(true);
        }
        // Promotion: the first moment a Sentinel names another primary.
        let promoted = loop {
            if let Some(p) = cluster.named_by(0).filter(|p| *p != old_port) {
                break (Instant::now(), p);
            }
            assert!(
                killed.elapsed() < Duration::from_secs(60),
                "no promotion:\n{}",
                cluster.sentinels[0].log()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let (promoted_at, new_port) = promoted;
        primary = cluster.index_of(new_port);
        let new = &cluster.data[primary];
        // 1 s after the promotion, does every host answer for every lease the new primary
        // held 200 ms earlier and the old one did not (what it did, every host knew before)?
        // The three hosts are asked at the same moment. The answer is measured and reported
        // (the issue asks for 1 s); the test asserts only that they agree within 10 s, as a
        // loaded CI machine is no place for timed assertions.
        let mut listers: Vec<Control> = sockets.iter().map(|s| Control::connect(s)).collect();
        std::thread::sleep(
            (promoted_at + Duration::from_millis(800)).saturating_duration_since(Instant::now()),
        );
        let held: HashSet<String> = new.lease_keys().difference(&before).cloned().collect();
        let fresh = held.len();
        std::thread::sleep(
            (promoted_at + Duration::from_secs(1)).saturating_duration_since(Instant::now()),
        );
        let mut disagree = Vec::new();
        let mut missing_at_1s = None;
        let agreed = loop {
            let asked = promoted_at.elapsed();
            for c in &mut listers {
                c.ask_leases();
            }
            disagree.clear();
            for c in &mut listers {
                let known = c.leases();
                disagree.extend(held.difference(&known).cloned());
            }
            missing_at_1s.get_or_insert(disagree.len());
            if disagree.is_empty() {
                break Some(asked);
            }
            if asked > Duration::from_secs(10) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let missing_at_1s = missing_at_1s.unwrap_or_default();
        std::thread::sleep(
            (start + LOAD)
                .max(promoted_at + Duration::from_secs(2))
                .saturating_duration_since(Instant::now()),
        );
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().expect("load thread");
        }
        let Some(agreed) = agreed else {
            panic!(
                "round {round}: {} keys on the new primary still unknown to a host 10 s after the promotion: {:?}\nPOP:\n{}\nSMTP:\n{}",
                disagree.len(),
                &disagree[..disagree.len().min(10)],
                pops[0].log_text(),
                smtp.log_text()
            );
        };
        let (slowest, long_refused, short_late, short_ok) = *policy_seen.lock().unwrap();
        assert_eq!(
            long_refused, 0,
            "round {round}: a known lease refused during the failover"
        );
        assert_eq!(
            short_late, 0,
            "round {round}: a lease answered past its deadline"
        );
        assert!(
            short_ok > 0,
            "round {round}: the short lease never answered"
        );
        // Postfix waits 100 s (smtpd_policy_service_timeout); answers come from memory.
        assert!(slowest < Duration::from_secs(10), "{slowest:?}");

        // Settle: what was queued reaches the new primary.
        let records = std::mem::take(&mut *records.lock().unwrap());
        let wanted: Vec<&Record> = records.iter().filter(|r| r.fate != Fate::Failed).collect();
        let mut on_primary = HashSet::new();
        eventually(Duration::from_secs(20), || {
            on_primary = new.lease_keys();
            wanted
                .iter()
                .all(|r| on_primary.contains(&format!("relaylease:lease:{}/32", r.ip)))
        });
        let mut round_figures = Figures::default();
        for r in &records {
            let there = on_primary.contains(&format!("relaylease:lease:{}/32", r.ip));
            let slot = match r.fate {
                Fate::Acked => 0,
                Fate::Queued => 1,
                Fate::Failed => 2,
                Fate::Logged => {
                    round_figures.logged += 1;
                    round_figures.logged_lost += usize::from(!there);
                    continue;
                }
            };
            round_figures.hooks[slot] += 1;
            round_figures.hooks_lost[slot] += usize::from(!there && r.fate != Fate::Failed);
        }
        let first_ack = records
            .iter()
            .filter(|r| r.fate == Fate::Acked && r.sent > killed)
            .map(|r| r.sent.duration_since(killed))
            .min();
        eprintln!(
            "store-replicas {replicas}, failover {round}{}: promotion {:?} after kill -9, first acknowledged login sent {:?} after it; of the new primary's {fresh} new leases at +0.8 s, {missing_at_1s} (host, lease) pairs unanswered at +1 s, all answered at +{agreed:?}; hooks acked/queued/failed {:?}, lost {:?}; logged {} lost {}; slowest policy answer {slowest:?}",
            if stall {
                " (replicas stalled 500 ms)"
            } else {
                ""
            },
            promoted_at.duration_since(killed),
            first_ack,
            round_figures.hooks,
            round_figures.hooks_lost,
            round_figures.logged,
            round_figures.logged_lost
        );
        if replicas > 0 {
            assert_eq!(
                round_figures.hooks_lost[0], 0,
                "round {round}: acknowledged logins missing on the new primary"
            );
        }
        let sum = if stall { &mut stalled } else { &mut figures };
        for i in 0..3 {
            sum.hooks[i] += round_figures.hooks[i];
            sum.hooks_lost[i] += round_figures.hooks_lost[i];
        }
        sum.logged += round_figures.logged;
        sum.logged_lost += round_figures.logged_lost;
        sum.to_first_ack.extend(first_ack);
        sum.to_agreement.push(agreed);
        sum.unanswered_at_1s.push(missing_at_1s);
        sum.slowest_policy = sum.slowest_policy.max(slowest);

        // The old primary comes back with what it had, as a replica: nobody writes to it or
        // reads leases from it, and every host keeps answering as the new primary says.
        cluster.data[old].run();
        assert!(
            eventually(Duration::from_secs(30), || matches!(
                cluster.data[old].role(),
                Some(redis::Role::Replica { .. })
            )),
            "the old primary never became a replica:\n{}",
            cluster.data[old].log()
        );
        cluster.wait_stable(Some(old_port));
        let stats: String = cluster.data[old]
            .query(redis::cmd("INFO").arg("commandstats"))
            .unwrap_or_default();
        for command in [
            "cmdstat_eval:",
            "cmdstat_scan:",
            "cmdstat_mget:",
            "cmdstat_get:",
        ] {
            assert!(
                !stats.contains(command),
                "round {round}: the old primary was used after its return: {stats}"
            );
        }
        let held = cluster.data[primary].lease_keys();
        let lost: Vec<&str> = records
            .iter()
            .filter(|r| {
                r.fate != Fate::Failed && !held.contains(&format!("relaylease:lease:{}/32", r.ip))
            })
            .map(|r| r.ip.as_str())
            .collect();
        assert!(
            eventually(Duration::from_secs(5), || sockets.iter().all(|s| {
                let mut c = Control::connect(s);
                held.iter().all(|k| {
                    c.allows(
                        k.trim_start_matches("relaylease:lease:")
                            .trim_end_matches("/32"),
                    )
                }) && lost.iter().all(|ip| !c.allows(ip))
            })),
            "round {round}: hosts disagree with the new primary after the old one returned"
        );
        assert_eq!(
            cluster.data[old].lease_keys(),
            held,
            "round {round}: the returned replica holds what the new primary holds"
        );
    }
    for (name, log) in [
        ("POP 1", pops[0].log_text()),
        ("POP 2", pops[1].log_text()),
        ("SMTP", smtp.log_text()),
    ] {
        assert!(!log.contains("panicked"), "{name}:\n{log}");
    }
    (figures, stalled)
}

#[test]
#[ignore = "needs Debian's redis-server, redis-sentinel (tests/run.sh installs and runs them)"]
fn acknowledged_logins_survive_a_failover_with_store_replicas() {
    let _serial = serial();
    let (f, stalled) = failover_rounds(1);
    eprintln!("store-replicas 1, {} failovers: {f:?}", failovers());
    eprintln!("store-replicas 1, replicas stalled: {stalled:?}");
    assert!(
        f.hooks[0] > 0 && stalled.hooks[0] > 0,
        "no login was acknowledged at all: the test proves nothing"
    );
    assert_eq!(f.hooks_lost[0] + stalled.hooks_lost[0], 0);
    // While the replicas stalled, logins were queued rather than acknowledged, and the
    // queue reached the new primary.
    assert!(stalled.hooks[1] > 0, "{stalled:?}");
    assert_eq!(
        stalled.hooks_lost[1] + stalled.logged_lost,
        0,
        "{stalled:?}"
    );
}

#[test]
#[ignore = "needs Debian's redis-server, redis-sentinel (tests/run.sh installs and runs them)"]
fn daemons_follow_a_failover_without_store_replicas() {
    let _serial = serial();
    let (f, stalled) = failover_rounds(0);
    eprintln!("store-replicas 0, {} failovers: {f:?}", failovers());
    eprintln!("store-replicas 0, replicas stalled: {stalled:?}");
    assert!(f.hooks[0] > 0);
    // What --store-replicas is for: without it, logins the primary confirmed while its
    // replicas lagged are gone after the failover (the same round loses none with it).
    assert!(stalled.hooks_lost[0] > 0, "{stalled:?}");
}
