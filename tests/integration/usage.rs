//! Who relayed, against the real daemon over its sockets: the audit line of each message
//! relayed through a lease, the uses the socketmap, Exim's CHECK and smtp-wrap record, the
//! usage table (`usage`, `--json`, `--csv`, `--forget`, retention), `--mark-header` with
//! tokens, `--unleased-action defer`, and what a restart and a `kill -9` keep.
//!
//! The real Postfix, Dovecot and tcpserver play these parts in tests/usage_mail.rs.

use crate::daemon_harness;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::daemon_harness::{Env, eventually, raw};

/// What a `kill -9` may lose, as the README and relaylease(8) state it (src/usage/recorder.rs).
const CRASH_BOUND: Duration = Duration::from_secs(2);

/// A Postfix policy connection.
struct Policy {
    r: BufReader<UnixStream>,
}

impl Policy {
    fn connect(path: &Path) -> Policy {
        let s = UnixStream::connect(path).expect("connect to the policy socket");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Policy {
            r: BufReader::new(s),
        }
    }

    /// Send one request; the reply's first line.
    fn ask(&mut self, attrs: &[(&str, &str)]) -> String {
        let mut req = String::from("request=smtpd_access_policy\n");
        for (k, v) in attrs {
            req.push_str(&format!("{k}={v}\n"));
        }
        req.push('\n');
        self.r.get_mut().write_all(req.as_bytes()).unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).expect("a reply");
        let mut blank = String::new();
        self.r.read_line(&mut blank).expect("the reply's end");
        line.trim_end().to_string()
    }

    fn rcpt(&mut self, client: &str, instance: &str, to: &str, queue_id: &str) -> String {
        self.ask(&[
            ("protocol_state", "RCPT"),
            ("client_address", client),
            ("instance", instance),
            ("sender", "alice@example.net"),
            ("recipient", to),
            ("queue_id", queue_id),
        ])
    }

    fn data(&mut self, client: &str, instance: &str, queue_id: &str) -> String {
        self.ask(&[
            ("protocol_state", "DATA"),
            ("client_address", client),
            ("instance", instance),
            ("sender", "alice@example.net"),
            ("recipient", ""),
            ("queue_id", queue_id),
        ])
    }
}

fn policy_flag(env: &Env) -> String {
    format!("unix:{}", env.path("policy.sock").display())
}

/// A hook login, as `relaylease hook` reports it from a login chain.
fn login(env: &Env, ip: &str, user: Option<&str>) {
    let mut c = env.cmd();
    c.env_remove("USER").args(["hook", "--ip", ip]);
    if let Some(u) = user {
        c.args(["--user", u]);
    }
    let o = daemon_harness::Out::from(c.output().expect("run the hook"));
    assert_eq!(o.code, 0, "{o:?}");
}

fn json(env: &Env, args: &[&str]) -> serde_json::Value {
    let o = env.run(args);
    assert_eq!(o.code, 0, "{o:?}");
    serde_json::from_str(o.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {o:?}"))
}

/// The usage table's row for `who` (a user, or an address for logins without one).
pub(crate) fn row(table: &serde_json::Value, who: &str) -> Option<serde_json::Value> {
    table["users"]
        .as_array()?
        .iter()
        .find(|r| r["user"] == who || r["address"] == who)
        .cloned()
}

fn audit_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            l.contains("relayed through a lease") || l.contains("relay granted through a lease")
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn each_relayed_message_is_one_audit_line_and_counts_in_its_users_record() {
    let env = Env::new();
    let policy = env.path("policy.sock");
    let d = env.start(&["--policy", &policy_flag(&env), "--allow", "127.0.0.90"]);
    login(&env, "127.0.0.81", Some("alice"));
    login(&env, "127.0.0.82", None);
    login(&env, "127.0.0.83", Some("bob"));

    let mut p = Policy::connect(&policy);
    // Alice's message: three recipients, Postfix's queue id from the second one on, then
    // its DATA request.
    assert_eq!(
        p.rcpt("127.0.0.81", "m1", "a@remote.example", ""),
        "action=OK"
    );
    assert_eq!(
        p.rcpt("127.0.0.81", "m1", "b@remote.example", "4F1A2B3C"),
        "action=OK"
    );
    assert_eq!(
        p.rcpt("127.0.0.81", "m1", "c@remote.example", "4F1A2B3C"),
        "action=OK"
    );
    assert_eq!(
        p.data("127.0.0.81", "m1", "4F1A2B3C"),
        "action=DUNNO",
        "never OK at DATA"
    );
    // A message through the lease of a login without a user; its connection then closes.
    let mut q = Policy::connect(&policy);
    assert_eq!(
        q.rcpt("127.0.0.82", "m2", "d@remote.example", ""),
        "action=OK"
    );
    drop(q);
    // No lease: DUNNO. --allow: OK, but no lease was used.
    assert_eq!(
        p.rcpt("127.0.0.84", "m3", "e@remote.example", ""),
        "action=DUNNO"
    );
    assert_eq!(
        p.rcpt("127.0.0.90", "m4", "f@remote.example", ""),
        "action=OK"
    );
    assert_eq!(p.data("127.0.0.90", "m4", "Q4"), "action=DUNNO");
    // Relay is decided at RCPT: an OK asked at another stage is no use of the lease.
    let mail = [
        ("protocol_state", "MAIL"),
        ("client_address", "127.0.0.81"),
        ("instance", "m5"),
    ];
    assert_eq!(p.ask(&mail), "action=OK");
    drop(p);

    assert!(
        eventually(Duration::from_secs(5), || audit_lines(&d.log_text()).len()
            >= 2),
        "{}",
        d.log_text()
    );
    let lines = audit_lines(&d.log_text());
    assert_eq!(lines.len(), 2, "one line per relayed message:\n{lines:#?}");
    let alice = lines
        .iter()
        .find(|l| l.contains("client=127.0.0.81"))
        .expect("alice's line");
    for want in [
        " INFO relayed through a lease ",
        "user=\"alice\"",
        "lease=127.0.0.81",
        "login_source=\"hook\"",
        "method=\"postfix-policy\"",
        "sender=\"alice@example.net\"",
        "recipients=\"a@remote.example,b@remote.example,c@remote.example\"",
        "rcpt_count=3",
        "queue_id=\"4F1A2B3C\"",
        "instance=\"m1\"",
    ] {
        assert!(alice.contains(want), "{want} missing: {alice}");
    }
    assert!(alice.contains(" login_at=20"), "{alice}");
    let anon = lines
        .iter()
        .find(|l| l.contains("client=127.0.0.82"))
        .expect("second line");
    for want in [
        "user=\"-\"",
        "lease=127.0.0.82",
        "rcpt_count=1",
        "queue_id=\"-\"",
    ] {
        assert!(anon.contains(want), "{want} missing: {anon}");
    }
    assert!(
        !d.log_text().contains("client=127.0.0.90"),
        "an --allow grant is no lease use"
    );

    let stats = json(&env, &["stats", "--json"]);
    assert_eq!(stats["relayed_messages"], 2, "{stats}");
    assert_eq!(stats["relayed_recipients"], 4, "{stats}");
    assert_eq!(stats["policy_ok"], 6, "{stats}");
    assert_eq!(stats["usage_lost"], 0, "{stats}");
    let prom = env.run(&["stats", "--prometheus"]).stdout;
    assert!(
        prom.contains("relaylease_relayed_messages_total 2\n"),
        "{prom}"
    );
    assert!(
        prom.contains("relaylease_relayed_recipients_total 4\n"),
        "{prom}"
    );

    // The usage table: every login, most recent relay first.
    let table = json(&env, &["usage", "--json"]);
    let users: Vec<String> = table["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["user"]
                .as_str()
                .or(r["address"].as_str())
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(users, ["127.0.0.82", "alice", "bob"], "{table}");
    let a = row(&table, "alice").unwrap();
    assert_eq!(
        (
            &a["logins"],
            &a["messages"],
            &a["recipients"],
            &a["last_address"]
        ),
        (&1.into(), &1.into(), &3.into(), &"127.0.0.81".into()),
        "{a}"
    );
    assert_eq!(a["never_relayed"], false);
    let b = row(&table, "bob").unwrap();
    assert_eq!(
        (&b["logins"], &b["never_relayed"]),
        (&1.into(), &true.into()),
        "{b}"
    );
    assert!(row(&table, "127.0.0.90").is_none(), "{table}");

    let text = env.run(&["usage"]);
    assert_eq!(text.code, 0, "{text:?}");
    let t: Vec<&str> = text.stdout.lines().collect();
    assert!(
        t[0].starts_with("USER") && t[0].contains("MESSAGES"),
        "{text:?}"
    );
    assert!(t[1].starts_with("[127.0.0.82] "), "{text:?}");
    assert!(
        t[2].starts_with("alice ") && !t[2].contains("never relayed"),
        "{text:?}"
    );
    assert!(
        t[3].starts_with("bob ") && t[3].ends_with("never relayed"),
        "{text:?}"
    );
    let csv = env.run(&["usage", "--csv"]).stdout;
    let c: Vec<&str> = csv.lines().collect();
    assert!(c[0].starts_with("user,address,logins,"), "{csv}");
    assert!(
        c[2].starts_with("alice,,1,") && c[2].contains(",1,3,0,"),
        "{csv}"
    );
    assert_eq!(c.len(), 4, "{csv}");
}

#[test]
fn checks_of_the_socketmap_exim_and_smtp_wrap_count_and_the_json_log_carries_every_line() {
    let env = Env::new();
    let secret = env.path("mark.secret");
    std::fs::write(&secret, "a secret of more than sixteen bytes\n").unwrap();
    let socketmap = env.path("socketmap.sock");
    let d = env.start(&[
        "--log-format",
        "json",
        "--policy",
        &policy_flag(&env),
        "--socketmap",
        &format!("unix:{}", socketmap.display()),
        "--mark-header",
        "X-Relayed-By",
        "--mark-token-secret",
        secret.to_str().unwrap(),
    ]);
    login(&env, "127.0.0.85", Some("alice"));

    // Socketmap: one lookup answered OK.
    let mut s = UnixStream::connect(&socketmap).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = "relaylease 127.0.0.85";
    s.write_all(format!("{}:{req},", req.len()).as_bytes())
        .unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"5:OK OK,");
    drop(s);
    // Exim's CHECK line on the control socket.
    assert_eq!(raw(&env.socket(), b"CHECK 127.0.0.85\n", 1), ["OK"]);
    // smtp-wrap: RELAYCLIENT, and TCPREMOTEINFO naming the token.
    let wrap = |ip: &str| {
        let o = env
            .cmd()
            .env("TCPREMOTEIP", ip)
            .env_remove("RELAYCLIENT")
            .env_remove("TCPREMOTEINFO")
            .args(["smtp-wrap", "--", "/bin/sh", "-c"])
            .arg("printf '%s|%s' \"${RELAYCLIENT-unset}\" \"${TCPREMOTEINFO-unset}\"")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let wrapped = wrap("127.0.0.85");
    let token = wrapped
        .strip_prefix('|')
        .expect("RELAYCLIENT set, empty")
        .to_string();
    assert_eq!(token.len(), 20, "{wrapped}");
    assert!(!token.contains("alice"));
    assert_eq!(wrap("127.0.0.86"), "unset|unset");

    // The Postfix policy service at DATA: the header names the same token.
    let mut p = Policy::connect(&env.path("policy.sock"));
    assert_eq!(
        p.rcpt("127.0.0.85", "m1", "b@remote.example", ""),
        "action=OK"
    );
    let prepend = p.data("127.0.0.85", "m1", "77AB");
    let want = format!("action=PREPEND X-Relayed-By: pop-before-smtp; token={token}; login=20");
    assert!(prepend.starts_with(&want), "{prepend}");
    // A message of the same connection that did not relay through the lease: no header.
    assert_eq!(p.data("127.0.0.85", "m2", "77AC"), "action=DUNNO");
    drop(p);

    let o = env.run(&["usage", "--token", &token]);
    assert_eq!(
        (o.code, o.stdout.trim()),
        (0, format!("{token}: alice").as_str()),
        "{o:?}"
    );
    let o = env.run(&["usage", "--token", "00000000000000000000"]);
    assert_eq!(o.code, 1, "{o:?}");

    assert!(eventually(Duration::from_secs(5), || audit_lines(
        &d.log_text()
    )
    .len()
        >= 4));
    let lines: Vec<serde_json::Value> = audit_lines(&d.log_text())
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let mut methods: Vec<&str> = lines
        .iter()
        .map(|v| v["fields"]["method"].as_str().unwrap())
        .collect();
    methods.sort_unstable();
    assert_eq!(
        methods,
        ["exim-check", "postfix-policy", "smtp-wrap", "socketmap"]
    );
    for v in &lines {
        assert_eq!(v["level"], "INFO", "{v}");
        assert_eq!(v["fields"]["user"], "alice", "{v}");
        assert_eq!(v["fields"]["client"], "127.0.0.85", "{v}");
        assert_eq!(v["fields"]["login_source"], "hook", "{v}");
    }
    let relayed = lines
        .iter()
        .find(|v| v["fields"]["message"] == "relayed through a lease")
        .unwrap();
    assert_eq!(relayed["fields"]["queue_id"], "77AB", "{relayed}");
    assert_eq!(relayed["fields"]["rcpt_count"], 1, "{relayed}");

    let a = row(&json(&env, &["usage", "--json"]), "alice").unwrap();
    assert_eq!(
        (&a["checks"], &a["messages"]),
        (&3.into(), &1.into()),
        "{a}"
    );
    assert_eq!(json(&env, &["stats", "--json"])["relay_checks"], 3);
}

#[test]
fn usage_survives_a_restart_and_kill_9_loses_no_more_than_the_stated_bound() {
    let env = Env::new();
    let policy = env.path("policy.sock");
    let args = ["--policy", &policy_flag(&env)].map(String::from);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = env.start(&args);
    login(&env, "127.0.0.87", Some("alice"));
    let mut p = Policy::connect(&policy);
    for i in 0..5 {
        assert_eq!(
            p.rcpt("127.0.0.87", &format!("k{i}"), "b@remote.example", ""),
            "action=OK"
        );
    }
    drop(p);
    // Older than the bound when the daemon dies: kept.
    std::thread::sleep(CRASH_BOUND + Duration::from_millis(500));
    d.kill9();
    let d = env.start(&args);
    let a = row(&json(&env, &["usage", "--json"]), "alice").expect("alice kept");
    assert_eq!(
        (&a["messages"], &a["logins"]),
        (&5.into(), &1.into()),
        "{a}"
    );

    // A clean stop writes what is left at once.
    let mut p = Policy::connect(&policy);
    for i in 5..8 {
        assert_eq!(
            p.rcpt("127.0.0.87", &format!("k{i}"), "b@remote.example", ""),
            "action=OK"
        );
    }
    drop(p);
    assert_eq!(d.stop(), 0);
    // With no daemon, `usage` reads the database itself.
    let o = env.run(&["usage", "--json"]);
    assert!(o.stderr.contains("reading the database"), "{o:?}");
    let table: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap();
    assert_eq!(row(&table, "alice").unwrap()["messages"], 8, "{table}");
}

/// Relay from `client` every 200 ms for 4 s: the recorder never goes a second without work,
/// and a fold round starts only every 10 s. How many were relayed.
fn relay_for_4s(policy: &Path, client: &str, prefix: &str) -> u64 {
    let mut p = Policy::connect(policy);
    let start = std::time::Instant::now();
    let mut sent = 0;
    while start.elapsed() < Duration::from_secs(4) {
        let instance = format!("{prefix}{sent}");
        assert_eq!(
            p.rcpt(client, &instance, "b@remote.example", ""),
            "action=OK"
        );
        sent += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    sent
}

fn journal_files(env: &Env) -> usize {
    std::fs::read_dir(env.db())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("usage-journal."))
        .count()
}

/// Counts that are only in the usage journal when the daemon dies (it relays on, so no fold
/// has begun) are neither lost beyond the crash bound nor counted twice, whether `usage` with
/// no daemon folds them in or the next daemon's start does.
#[test]
fn counts_only_in_the_journal_at_a_kill_9_are_folded_in_once() {
    let env = Env::new();
    let policy = env.path("policy.sock");
    let args = ["--policy", &policy_flag(&env)].map(String::from);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The last CRASH_BOUND's relays may be lost; nothing may be counted twice.
    let lost_at_most = (CRASH_BOUND.as_millis() / 200) as u64 + 1;
    let within = |kept: u64, sent: u64| kept <= sent && kept + lost_at_most >= sent;

    let d = env.start(&args);
    login(&env, "127.0.0.86", Some("dave"));
    let sent = relay_for_4s(&policy, "127.0.0.86", "j");
    d.kill9();
    assert!(
        journal_files(&env) > 0,
        "the counts were not in the journal"
    );
    let o = env.run(&["usage", "--json"]);
    assert!(o.stderr.contains("reading the database"), "{o:?}");
    let table: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap();
    let dave = row(&table, "dave").expect("dave's record");
    let kept = dave["messages"].as_u64().unwrap();
    assert!(within(kept, sent), "{kept} of {sent} messages kept: {dave}");
    assert_eq!(dave["logins"], 1, "{dave}");
    assert_eq!(journal_files(&env), 0, "folded, the journal's files go");

    // Again, with the daemon's start folding them in.
    let d = env.start(&args);
    let more = relay_for_4s(&policy, "127.0.0.86", "k");
    d.kill9();
    assert!(
        journal_files(&env) > 0,
        "the counts were not in the journal"
    );
    let d = env.start(&args);
    let dave = row(&json(&env, &["usage", "--json"]), "dave").expect("dave's record");
    let now = dave["messages"].as_u64().unwrap();
    assert!(
        now >= kept && within(now - kept, more),
        "{} of {more} more messages kept: {dave}",
        now.saturating_sub(kept)
    );
    assert_eq!(d.stop(), 0);
    let o = env.run(&["usage", "--json"]);
    let table: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap();
    assert_eq!(row(&table, "dave").unwrap()["messages"], now, "{table}");
}

#[test]
fn forget_removes_a_users_record_and_idle_records_are_dropped_after_the_retention() {
    let env = Env::new();
    let policy = env.path("policy.sock");
    // Long enough that the steps before the wait finish inside it on a busy machine: bob's
    // record, idle since his login, must still be reported after alice's is forgotten.
    let args = ["--policy", &policy_flag(&env), "--usage-retention", "10s"].map(String::from);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = env.start(&args);
    login(&env, "127.0.0.88", Some("alice"));
    login(&env, "127.0.0.89", Some("bob"));
    let mut p = Policy::connect(&policy);
    assert_eq!(
        p.rcpt("127.0.0.88", "f1", "b@remote.example", ""),
        "action=OK"
    );
    drop(p);

    let o = env.run(&["usage", "--forget", "alice"]);
    assert_eq!(
        (o.code, o.stdout.trim()),
        (0, "alice: usage record removed"),
        "{o:?}"
    );
    let o = env.run(&["usage", "--forget", "alice"]);
    assert_eq!(o.code, 1, "{o:?}");
    let table = json(&env, &["usage", "--json"]);
    assert!(
        row(&table, "alice").is_none() && row(&table, "bob").is_some(),
        "{table}"
    );
    assert!(
        d.log_text()
            .contains("usage record forgotten user=\"alice\"")
    );

    // Idle for longer than --usage-retention: no longer reported...
    std::thread::sleep(Duration::from_millis(10_500));
    let table = json(&env, &["usage", "--json"]);
    assert_eq!(table["users"].as_array().map(Vec::len), Some(0), "{table}");
    assert_eq!(d.stop(), 0);
    // ...and gone from the database once a daemon has pruned it (at start, then hourly).
    assert_eq!(env.start(&args).stop(), 0);
    let o = env.run(&["usage", "--json"]);
    let table: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap();
    assert_eq!(table["users"].as_array().map(Vec::len), Some(0), "{o:?}");
}

#[test]
fn unleased_clients_are_deferred_at_rcpt_only_with_defer() {
    let env = Env::new();
    let policy = env.path("policy.sock");
    let _d = env.start(&["--policy", &policy_flag(&env), "--unleased-action", "defer"]);
    login(&env, "127.0.0.91", Some("alice"));
    let mut p = Policy::connect(&policy);
    let defer = p.rcpt("127.0.0.92", "d1", "b@remote.example", "");
    assert_eq!(
        defer,
        "action=DEFER_IF_REJECT 4.7.1 Relaying needs a recent POP3/IMAP login: fetch your mail, then send again"
    );
    assert_eq!(
        p.rcpt("127.0.0.91", "d2", "b@remote.example", ""),
        "action=OK"
    );
    // Never at DATA, nor for a request that names no client.
    assert_eq!(p.data("127.0.0.92", "d1", ""), "action=DUNNO");
    assert_eq!(
        p.rcpt("unknown", "d3", "b@remote.example", ""),
        "action=DUNNO"
    );
    let stats = json(&env, &["stats", "--json"]);
    assert_eq!(
        (&stats["policy_defer"], &stats["policy_ok"]),
        (&1.into(), &1.into()),
        "{stats}"
    );
    let o = env.run(&["daemon", "--unleased-action", "reject"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.stderr.contains("dunno") && o.stderr.contains("defer"),
        "{o:?}"
    );
}

#[test]
fn bad_marking_flags_are_one_line_errors() {
    let env = Env::new();
    let short = env.path("short");
    std::fs::write(&short, "tiny\n").unwrap();
    for (args, needle) in [
        (vec!["--mark-header", "X Bad"], "--mark-header 'X Bad'"),
        (
            vec![
                "--mark-header",
                "X-Ok",
                "--mark-token-secret",
                short.to_str().unwrap(),
            ],
            "at least 16 bytes",
        ),
        (
            vec!["--mark-token-secret", short.to_str().unwrap()],
            "--mark-header",
        ),
        (vec!["--usage-retention", "soon"], "--usage-retention"),
    ] {
        let mut all = vec!["daemon"];
        all.extend(&args);
        let o = env.run(&all);
        assert_eq!(o.code, 2, "{args:?}: {o:?}");
        assert!(o.stderr.contains(needle), "{args:?}: {o:?}");
    }
}

/// Context switches so far of the daemon's thread named `name` (as /proc shortens it).
fn thread_switches(pid: i32, name: &str) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the daemon's threads");
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let status = std::fs::read_to_string(t.path().join("status")).expect("its status");
        return status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
    }
    panic!("no thread {name} in daemon {pid}");
}

/// With nothing to record, the recorder sleeps instead of waking every 50 ms (what an idle
/// mail host would see in powertop), and the first use after the sleep wakes it: its message
/// is in the audit log and the usage table within the crash bound.
#[test]
fn an_idle_recorder_sleeps_and_the_next_use_wakes_it() {
    let env = Env::new();
    let policy = env.path("policy.sock");
    let d = env.start(&["--policy", &policy_flag(&env)]);
    login(&env, "127.0.0.91", Some("carol"));
    // The login's count is written within a second, and a second later the recorder sleeps.
    std::thread::sleep(Duration::from_secs(4));
    let before = thread_switches(d.pid(), "relaylease-usag");
    std::thread::sleep(Duration::from_secs(3));
    let woke = thread_switches(d.pid(), "relaylease-usag") - before;
    assert!(
        woke <= 5,
        "the idle recorder woke {woke} times in 3 s (a wake every 50 ms is 60)"
    );

    let mut p = Policy::connect(&policy);
    assert_eq!(
        p.rcpt("127.0.0.91", "w1", "x@remote.example", ""),
        "action=OK"
    );
    assert_eq!(p.data("127.0.0.91", "w1", "5A6B7C"), "action=DUNNO");
    assert!(
        eventually(CRASH_BOUND, || audit_lines(&d.log_text()).iter().any(|l| l
            .contains("user=\"carol\"")
            && l.contains("instance=\"w1\""))),
        "no audit line within {CRASH_BOUND:?}: {}",
        d.log_text()
    );
    assert!(
        eventually(CRASH_BOUND, || row(
            &json(&env, &["usage", "--json"]),
            "carol"
        )
        .is_some_and(|r| r["messages"] == 1)),
        "{}",
        json(&env, &["usage", "--json"])
    );
    // Awake again, it sleeps again once the message is written.
    std::thread::sleep(Duration::from_secs(4));
    let before = thread_switches(d.pid(), "relaylease-usag");
    std::thread::sleep(Duration::from_secs(2));
    let woke = thread_switches(d.pid(), "relaylease-usag") - before;
    assert!(woke <= 5, "asleep again: woke {woke} times in 2 s");
    assert_eq!(d.stop(), 0);
}
