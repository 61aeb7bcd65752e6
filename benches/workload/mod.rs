//! Workloads the benchmarks generate for themselves: a busy mail server's log and Postfix
//! policy requests, deterministic for a given seed so that runs compare.
//!
//! Shared by `benches/pure.rs`, `benches/loadgen.rs` and `benches/soak.rs` (each uses part
//! of it). `daemon.rs` beside it runs the real daemon; the benches that need the binary
//! include it themselves (`examples/profile.rs` includes this module but has no binary).
#![allow(dead_code)]

use std::collections::HashSet;
use std::fmt::Write as _;

/// Is this a smoke run? `cargo bench` passes `--bench`; `cargo bench -- --test` and
/// `cargo test --benches` (which passes no `--bench`) only check that the benchmarks run.
pub fn quick() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--test" || a == "--quick")
        || !args.iter().any(|a| a == "--bench")
        || std::env::var_os("RELAYLEASE_BENCH_QUICK").is_some()
}

/// splitmix64: small, fast, and good enough to pick log lines.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A client address as servers print it. 85% IPv4 from consumer ranges, 15% IPv6.
#[derive(Clone, Debug)]
pub struct Client {
    pub text: String,
    pub v6: bool,
}

/// `n` distinct client addresses (documentation and private ranges only).
pub fn clients(n: usize, seed: u64) -> Vec<Client> {
    let mut rng = Rng::new(seed);
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let c = if rng.percent(85) {
            // 10.0.0.0/8 and 172.16.0.0/12: plenty of room for 50,000 distinct hosts.
            let text = if rng.percent(70) {
                format!(
                    "10.{}.{}.{}",
                    rng.below(256),
                    rng.below(256),
                    1 + rng.below(254)
                )
            } else {
                format!(
                    "172.{}.{}.{}",
                    16 + rng.below(16),
                    rng.below(256),
                    1 + rng.below(254)
                )
            };
            Client { text, v6: false }
        } else {
            // One host per /64 (leases are per /64 by default), with a SLAAC-looking suffix.
            let text = format!(
                "2001:db8:{:x}:{:x}:{:x}:{:x}ff:fe{:x}:{:x}",
                rng.below(0x10000),
                1 + rng.below(0xffff),
                rng.below(0x10000) | 0x200,
                rng.below(0x100),
                0x10 + rng.below(0xef),
                0x1000 + rng.below(0xefff)
            );
            Client { text, v6: true }
        };
        if seen.insert(c.text.clone()) {
            out.push(c);
        }
    }
    out
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// What the generator wrote, to check the parser against and to report.
#[derive(Clone, Debug, Default)]
pub struct LogStats {
    pub lines: usize,
    pub bytes: usize,
    /// Lines written by a POP3/IMAP server (logins, failures, logouts, connects).
    pub mail_access_lines: usize,
    /// Logins whose address the log tells (directly or on an earlier line of the session).
    pub logins_with_address: usize,
    pub failures: usize,
}

/// A mail log: ~90% Postfix and other daemons, ~10% POP3/IMAP server lines across every
/// supported format, with clients drawn from `clients`. Lines end in `\n`.
pub fn mail_log(lines: usize, clients: &[Client], seed: u64) -> (Vec<u8>, LogStats) {
    let mut g = Gen {
        rng: Rng::new(seed),
        out: String::with_capacity(lines * 130),
        stats: LogStats::default(),
        clients,
        // Two hours of a busy server, starting on a Nov 22 night.
        sec: 3 * 3600,
        pid: 20_000,
        users: (0..5000).map(user_name).collect(),
    };
    while g.stats.lines < lines {
        // A POP3/IMAP event averages ~1.45 lines (sessions joined over several lines), so
        // 7.1% of events give ~10% of the lines.
        if g.rng.below(1000) < 71 {
            g.mail_access();
        } else {
            g.noise();
        }
    }
    let out = g.out.into_bytes();
    let mut stats = g.stats;
    stats.bytes = out.len();
    (out, stats)
}

fn user_name(i: usize) -> String {
    const FIRST: [&str; 12] = [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
        "mallory", "oscar",
    ];
    match i % 4 {
        0 => format!("{}{}", FIRST[i % 12], i),
        1 => format!("{}.{}", FIRST[i % 12], i),
        2 => format!("{}{}@example.net", FIRST[i % 12], i),
        _ => format!("u{i:05}"),
    }
}

struct Gen<'a> {
    rng: Rng,
    out: String,
    stats: LogStats,
    clients: &'a [Client],
    sec: u64,
    pid: u32,
    users: Vec<String>,
}

impl Gen<'_> {
    /// Start a line: the syslog stamp (70% RFC 3164, 30% rsyslog's RFC 3339) and host.
    fn stamp(&mut self) {
        if self.rng.percent(3) {
            self.sec += 1;
        }
        let s = self.sec;
        let (h, m, sec) = (s / 3600 % 24, s / 60 % 60, s % 60);
        if self.rng.percent(70) {
            let _ = write!(self.out, "{} 22 {h:02}:{m:02}:{sec:02} mx1 ", MONTHS[10]);
        } else {
            let us = self.rng.below(1_000_000);
            let _ = write!(
                self.out,
                "2026-11-22T{h:02}:{m:02}:{sec:02}.{us:06}+00:00 mx1 "
            );
        }
    }

    fn end(&mut self) {
        self.out.push('\n');
        self.stats.lines += 1;
    }

    fn line(&mut self, body: &str) {
        self.stamp();
        self.out.push_str(body);
        self.end();
    }

    fn pid(&mut self) -> u32 {
        self.pid = if self.pid > 4_000_000 {
            20_000
        } else {
            self.pid + 1 + self.rng.below(7) as u32
        };
        self.pid
    }

    fn client(&mut self) -> Client {
        self.rng.pick(self.clients).clone()
    }

    fn user(&mut self) -> String {
        self.rng.pick(&self.users).clone()
    }

    fn queue_id(&mut self) -> String {
        format!("{:010X}", self.rng.next() & 0xff_ffff_ffff)
    }

    fn session_id(&mut self, len: usize) -> String {
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        (0..len)
            .map(|_| B64[self.rng.below(64) as usize] as char)
            .collect()
    }

    /// Everything that is not a POP3/IMAP server: mostly Postfix.
    fn noise(&mut self) {
        let smtpd = self.pid();
        let ext = format!(
            "{}.{}.{}.{}",
            192 + self.rng.below(32),
            self.rng.below(256),
            self.rng.below(256),
            1 + self.rng.below(254)
        );
        let host = if self.rng.percent(40) {
            "unknown".to_string()
        } else {
            format!(
                "mail{}.example-{}.com",
                self.rng.below(50),
                self.rng.below(900)
            )
        };
        let q = self.queue_id();
        let user = self.user();
        let rcpt = format!("user{}@example.org", self.rng.below(3000));
        let n = self.rng.below(100);
        let body = match n {
            0..=12 => format!("postfix/smtpd[{smtpd}]: connect from {host}[{ext}]"),
            13..=24 => format!(
                "postfix/smtpd[{smtpd}]: disconnect from {host}[{ext}] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"
            ),
            25..=34 => format!("postfix/smtpd[{smtpd}]: {q}: client={host}[{ext}]"),
            35..=44 => format!(
                "postfix/cleanup[{}]: {q}: message-id=<{}.{}@example-{}.com>",
                self.pid(),
                20261122030000u64 + self.rng.below(100_000),
                self.rng.below(1 << 20),
                self.rng.below(900)
            ),
            45..=54 => format!(
                "postfix/qmgr[1123]: {q}: from=<{user}>, size={}, nrcpt=1 (queue active)",
                800 + self.rng.below(200_000)
            ),
            55..=64 => format!(
                "postfix/smtp[{}]: {q}: to=<{rcpt}>, relay=mx{}.example.org[203.0.113.{}]:25, delay=0.{}, delays=0.1/0.01/0.2/0.11, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as {})",
                self.pid(),
                self.rng.below(5),
                self.rng.below(255),
                self.rng.below(99),
                self.queue_id()
            ),
            65..=69 => format!(
                "postfix/local[{}]: {q}: to=<{user}>, relay=local, delay=0.05, delays=0.03/0.01/0/0.01, dsn=2.0.0, status=sent (delivered to mailbox)",
                self.pid()
            ),
            70..=72 => format!("postfix/qmgr[1123]: {q}: removed"),
            73..=77 => format!(
                "postfix/smtpd[{smtpd}]: NOQUEUE: reject: RCPT from {host}[{ext}]: 554 5.7.1 <{rcpt}>: Relay access denied; from=<spam{}@example.biz> to=<{rcpt}> proto=ESMTP helo=<{host}>",
                self.rng.below(1000)
            ),
            78..=79 => {
                // An SMTP client trying the poprelayd trick: a login message in its MAIL FROM.
                let fake = self.client().text;
                format!(
                    "postfix/smtpd[{smtpd}]: NOQUEUE: reject: RCPT from {host}[{ext}]: 554 5.7.1 <{rcpt}>: Relay access denied; from=<dovecot: pop3-login: Login: user=<x>, method=PLAIN, rip={fake}, lip=10.0.0.1@x> to=<{rcpt}> proto=ESMTP helo=<x>"
                )
            }
            80..=82 => format!(
                "postfix/anvil[{}]: statistics: max connection rate 3/60s for (smtp:{ext}) at Nov 22 03:10:00",
                self.pid()
            ),
            83..=85 => format!(
                "amavis[{}]: ({:05}-{:02}) Passed CLEAN {{RelayedInbound}}, [{ext}]:{} <{user}> -> <{rcpt}>, Queue-ID: {q}, Message-ID: <{}@example.com>, mail_id: {}, Hits: -1.2, size: {}, queued_as: {}, 1234 ms",
                self.pid(),
                self.rng.below(99999),
                self.rng.below(99),
                1024 + self.rng.below(60000),
                self.rng.below(1 << 30),
                self.session_id(12),
                900 + self.rng.below(90000),
                self.queue_id()
            ),
            86..=87 => {
                format!("opendkim[812]: {q}: DKIM-Signature field added (s=mail, d=example.net)")
            }
            88..=89 => format!(
                "dovecot: lmtp({user})<{}><{}>: msgid=<{}@example.com>: saved mail to INBOX",
                self.pid(),
                self.session_id(22),
                self.rng.below(1 << 30)
            ),
            90..=91 => format!(
                "CRON[{}]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)",
                self.pid()
            ),
            92..=93 => format!(
                "sshd[{}]: Accepted publickey for admin from {ext} port {} ssh2: ED25519 SHA256:{}",
                self.pid(),
                1024 + self.rng.below(60000),
                self.session_id(43)
            ),
            94 => "systemd[1]: Started session-42.scope - Session 42 of User admin.".to_string(),
            95 => format!(
                "kernel: [{}.{:06}] nf_conntrack: table full, dropping packet",
                self.rng.below(1_000_000),
                self.rng.below(1_000_000)
            ),
            96 => "rsyslogd: -- MARK --".to_string(),
            97 => "last message repeated 3 times".to_string(),
            _ => format!(
                "postfix/postscreen[{}]: CONNECT from [{ext}]:{} to [10.0.0.1]:25",
                self.pid(),
                1024 + self.rng.below(60000)
            ),
        };
        self.line(&body);
    }

    /// One POP3/IMAP event (a login, a failure, a logout or a session's other lines).
    fn mail_access(&mut self) {
        let before = self.stats.lines;
        match self.rng.below(100) {
            0..=34 => self.dovecot(),
            35..=49 => self.courier(),
            50..=59 => self.cyrus(),
            60..=67 => self.uw(),
            68..=72 => self.qpopper(),
            73..=79 => self.mailutils(),
            80..=86 => self.popa3d(),
            87..=91 => self.solid(),
            _ => self.vchkpw(),
        }
        self.stats.mail_access_lines += self.stats.lines - before;
    }

    fn login(&mut self) {
        self.stats.logins_with_address += 1;
    }

    fn failure(&mut self) {
        self.stats.failures += 1;
    }

    fn dovecot(&mut self) {
        let c = self.client();
        let user = self.user();
        let svc = if self.rng.percent(60) { "imap" } else { "pop3" };
        let lip = if c.v6 { "2001:db8::25" } else { "10.0.0.1" };
        let mpid = self.pid();
        let sess = self.session_id(16);
        match self.rng.below(10) {
            0..=4 => {
                let tls = if self.rng.percent(80) {
                    ", TLS"
                } else {
                    ", secured"
                };
                {
                    let s = format!(
                        "dovecot: {svc}-login: Login: user=<{user}>, method=PLAIN, rip={}, lip={lip}, mpid={mpid}{tls}, session=<{sess}>",
                        c.text
                    );
                    self.line(&s)
                };
                self.login();
            }
            5..=6 => {
                {
                    let s = format!(
                        "dovecot: {svc}-login: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<{user}>, method=PLAIN, rip={}, lip={lip}, TLS, session=<{sess}>",
                        c.text
                    );
                    self.line(&s)
                };
                self.failure();
            }
            7 => {
                {
                    let s = format!(
                        "dovecot: {svc}-login: Disconnected: Connection closed (no auth attempts in 0 secs): user=<>, rip={}, lip={lip}, TLS handshaking, session=<{sess}>",
                        c.text
                    );
                    self.line(&s)
                };
            }
            8 => {
                let r = self.rng.below(30);
                let body = if svc == "pop3" {
                    format!(
                        "dovecot: pop3({user})<{mpid}><{sess}>: Disconnected: Logged out top=0/0, retr={r}/{}, del={r}/{r}, size={}",
                        r * 4000,
                        r * 4000
                    )
                } else {
                    format!(
                        "dovecot: imap({user})<{mpid}><{sess}>: Logged out in={} out={} deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count={r} body_bytes={}",
                        100 + r * 10,
                        2000 + r * 900,
                        r * 4000
                    )
                };
                self.line(&body);
            }
            _ => {
                {
                    let s = format!(
                        "dovecot: auth-worker({}): pam({user},{}): unknown user",
                        self.pid(),
                        c.text
                    );
                    self.line(&s)
                };
            }
        }
    }

    fn courier(&mut self) {
        let c = self.client();
        let user = self.user();
        let (tag, extra) = if self.rng.percent(50) {
            ("pop3d", "")
        } else if self.rng.percent(50) {
            ("imapd", ", protocol=IMAP")
        } else {
            ("imapd-ssl", ", protocol=IMAP")
        };
        let ip = if c.v6 {
            c.text.clone()
        } else {
            format!("::ffff:{}", c.text)
        };
        let port = 1024 + self.rng.below(60000);
        match self.rng.below(10) {
            0..=4 => {
                {
                    let s = format!("{tag}: LOGIN, user={user}, ip=[{ip}], port=[{port}]{extra}");
                    self.line(&s)
                };
                self.login();
            }
            5..=6 => {
                {
                    let s = format!("{tag}: LOGIN FAILED, user={user}, ip=[{ip}]");
                    self.line(&s)
                };
                self.failure();
            }
            7 => {
                let s = format!("{tag}: Connection, ip=[{ip}], port=[{port}]");
                self.line(&s)
            }
            _ => {
                let s = format!(
                    "{tag}: LOGOUT, user={user}, ip=[{ip}], port=[{port}], headers=0, body=0, rcvd=52, sent=391, time=3{}",
                    if tag == "pop3d" {
                        ", top=0, retr=0"
                    } else {
                        ""
                    }
                );
                self.line(&s)
            }
        }
    }

    fn cyrus(&mut self) {
        let c = self.client();
        let user = self.user();
        let svc = if self.rng.percent(50) { "pop3" } else { "imap" };
        let pid = self.pid();
        let mech = *self.rng.pick(&["plaintext", "PLAIN", "PLAIN+TLS", "LOGIN"]);
        let host = if self.rng.percent(50) {
            String::new()
        } else {
            format!("dsl-{}.isp.example ", self.rng.below(90000))
        };
        match self.rng.below(10) {
            0..=4 => {
                let sess = format!(
                    "cyrus-{}-{pid}-1-{}",
                    1795317204 + self.sec,
                    self.rng.next()
                );
                {
                    let s = format!(
                        "cyrus/{svc}[{pid}]: login: {host}[{}] {user} {mech} User logged in SESSIONID=<{sess}>",
                        c.text
                    );
                    self.line(&s)
                };
                self.login();
            }
            5..=6 => {
                {
                    let s = format!(
                        "cyrus/{svc}[{pid}]: badlogin: {host}[{}] {mech} ({user}) [SASL(-13): authentication failure: checkpass failed]",
                        c.text
                    );
                    self.line(&s)
                };
                self.failure();
            }
            7..=8 => {
                let s = format!(
                    "cyrus/{svc}[{pid}]: USAGE {user} user: 0.00{} sys: 0.00{}",
                    self.rng.below(9999),
                    self.rng.below(9999)
                );
                self.line(&s)
            }
            _ => {
                let s = format!(
                    "cyrus/{svc}[{pid}]: counts: retr=<{}> top=<0> dele=<0>",
                    self.rng.below(20)
                );
                self.line(&s)
            }
        }
    }

    fn uw(&mut self) {
        let c = self.client();
        let user = self.user();
        let pid = self.pid();
        let (tag, pop) = if self.rng.percent(50) {
            ("ipop3d", true)
        } else {
            ("imapd", false)
        };
        let host = if self.rng.percent(50) {
            format!("[{}]", c.text)
        } else {
            format!("dsl-{}.isp.example [{}]", self.rng.below(90000), c.text)
        };
        match self.rng.below(10) {
            0..=4 => {
                let tail = if pop {
                    format!(" nmsgs={}/{}", self.rng.below(9), 9)
                } else {
                    String::new()
                };
                let word = if pop { "Login" } else { "Authenticated" };
                {
                    let s = format!("{tag}[{pid}]: {word} user={user} host={host}{tail}");
                    self.line(&s)
                };
                self.login();
            }
            5..=6 => {
                {
                    let s =
                        format!("{tag}[{pid}]: Login failed user={user} auth={user} host={host}");
                    self.line(&s)
                };
                self.failure();
            }
            _ => {
                let s = format!(
                    "{tag}[{pid}]: Logout user={user} host={host}{}",
                    if pop { " nmsgs=0 ndele=0" } else { "" }
                );
                self.line(&s)
            }
        }
    }

    fn qpopper(&mut self) {
        let c = self.client();
        // qpopper user names have no spaces or quotes in practice.
        let user = self.user();
        let pid = self.pid();
        let host = if self.rng.percent(50) {
            c.text.clone()
        } else {
            format!("dsl-{}.isp.example", self.rng.below(90000))
        };
        match self.rng.below(10) {
            0..=4 => {
                {
                    let s = format!(
                        "popper[{pid}]: (v4.1.0) POP login by user \"{user}\" at ({host}) {}",
                        c.text
                    );
                    self.line(&s)
                };
                self.login();
            }
            5..=6 => {
                {
                    let s = format!(
                        "popper[{pid}]: [AUTH] Password supplied for \"{user}\" is incorrect."
                    );
                    self.line(&s)
                };
            }
            _ => {
                let s = format!(
                    "popper[{pid}]: Stats: {user} 0 0 {} {} {host} {}",
                    self.rng.below(9),
                    self.rng.below(90000),
                    c.text
                );
                self.line(&s)
            }
        }
    }

    /// Mailutils with `acl log`: the master names the session's address, the child logs in.
    fn mailutils(&mut self) {
        let c = self.client();
        let user = self.user();
        let (tag, pop) = if self.rng.percent(50) {
            ("pop3d", true)
        } else {
            ("imap4d", false)
        };
        let master = if pop { 1201 } else { 1202 };
        let child = self.pid();
        let sid = format!("2AM{}", self.session_id(5).replace(['+', '/'], "X"));
        {
            let s = format!("{tag}[{master}]: {sid} {}", c.text);
            self.line(&s)
        };
        match self.rng.below(10) {
            0..=5 => {
                if pop {
                    {
                        let s = format!(
                            "{tag}[{child}]: {sid} POP3 login: user `{user}', source system"
                        );
                        self.line(&s)
                    };
                    {
                        let s = format!(
                            "{tag}[{child}]: {sid} user `{user}' logged in with mailbox `/var/mail/{user}' ({} messages)",
                            self.rng.below(40)
                        );
                        self.line(&s)
                    };
                } else {
                    {
                        let s = format!(
                            "{tag}[{child}]: {sid} user `{user}' logged in (source: system)"
                        );
                        self.line(&s)
                    };
                }
                self.login();
                {
                    let s = format!("{tag}[{child}]: {sid} session ended for user: {user}");
                    self.line(&s)
                };
            }
            6..=7 => {
                {
                    let s = format!("{tag}[{child}]: {sid} user `{user}': authentication failed");
                    self.line(&s)
                };
                self.failure();
                {
                    let s = format!("{tag}[{child}]: {sid} session ended for no user");
                    self.line(&s)
                };
            }
            _ => {
                {
                    let s = format!("{tag}[{child}]: {sid} unexpected eof on input");
                    self.line(&s)
                };
                {
                    let s = format!("{tag}[{child}]: {sid} session ended for no user");
                    self.line(&s)
                };
            }
        }
        {
            let s = format!(
                "{tag}[{master}]: process {child} finished with code 0 (Normal termination)"
            );
            self.line(&s)
        };
    }

    /// popa3d under tcpd: the address is on the `connect from` line of the same pid.
    fn popa3d(&mut self) {
        let c = self.client();
        let user = self.user();
        let pid = self.pid();
        {
            let s = format!("popa3d[{pid}]: connect from {} ({})", c.text, c.text);
            self.line(&s)
        };
        match self.rng.below(10) {
            0..=5 => {
                {
                    let s = format!("popa3d[{pid}]: Authentication passed for {user}");
                    self.line(&s)
                };
                self.login();
                {
                    let s = format!(
                        "popa3d[{pid}]: {} messages ({} bytes) loaded",
                        self.rng.below(20),
                        self.rng.below(900000)
                    );
                    self.line(&s)
                };
                {
                    let s = format!("popa3d[{pid}]: 0 (0) deleted, 3 (4200) left");
                    self.line(&s)
                };
            }
            6..=7 => {
                {
                    let s = format!("popa3d[{pid}]: Authentication failed for {user}");
                    self.line(&s)
                };
                self.failure();
                {
                    let s = format!("popa3d[{pid}]: Premature disconnect");
                    self.line(&s)
                };
            }
            _ => {
                let s = format!("popa3d[{pid}]: Didn't attempt authentication");
                self.line(&s)
            }
        }
    }

    fn solid(&mut self) {
        let c = self.client();
        let user = self.user();
        let pid = self.pid();
        {
            let s = format!("solid-pop3d[{pid}]: connect from {} ({})", c.text, c.text);
            self.line(&s)
        };
        match self.rng.below(10) {
            0..=5 => {
                {
                    let s = format!("solid-pop3d[{pid}]: user {user} authenticated - {}", c.text);
                    self.line(&s)
                };
                self.login();
                {
                    let s = format!(
                        "solid-pop3d[{pid}]: session ended for user {user} - {}",
                        c.text
                    );
                    self.line(&s)
                };
            }
            _ => {
                {
                    let s = format!(
                        "solid-pop3d[{pid}]: authentication failed for user {user} - {}",
                        c.text
                    );
                    self.line(&s)
                };
                self.failure();
            }
        }
    }

    fn vchkpw(&mut self) {
        let c = self.client();
        let user = format!("u{}", self.rng.below(5000));
        let pid = self.pid();
        let svc = if self.rng.percent(70) { "pop3" } else { "imap" };
        let mech = *self.rng.pick(&["PLAIN", "APOP", "CRAM-MD5"]);
        match self.rng.below(10) {
            0..=5 => {
                {
                    let s = format!(
                        "vpopmail[{pid}]: vchkpw-{svc}: ({mech}) login success {user}@example.net:{}",
                        c.text
                    );
                    self.line(&s)
                };
                self.login();
            }
            6..=8 => {
                {
                    let s = format!(
                        "vpopmail[{pid}]: vchkpw-{svc}: ({mech}) password fail (pass: 'xxxxx') {user}@example.net:{}",
                        c.text
                    );
                    self.line(&s)
                };
                self.failure();
            }
            _ => {
                let s = format!(
                    "vpopmail[{pid}]: vchkpw-smtp: ({mech}) login success {user}@example.net:{}",
                    c.text
                );
                self.line(&s)
            }
        }
    }
}

/// A policy request as Postfix 3.7's smtpd sends it at RCPT TO (31 attributes).
pub fn policy_request(client: &str, n: u64) -> Vec<u8> {
    format!(
        "request=smtpd_access_policy\n\
         protocol_state=RCPT\n\
         protocol_name=ESMTP\n\
         helo_name=[192.168.1.{h}]\n\
         queue_id=\n\
         sender=user{n}@example.net\n\
         recipient=friend{r}@example.org\n\
         recipient_count=0\n\
         client_address={client}\n\
         client_name=unknown\n\
         reverse_client_name=dsl-{h}.isp.example\n\
         instance={i:x}.66f0e0a1.9c3d4.0\n\
         sasl_method=\n\
         sasl_username=\n\
         sasl_sender=\n\
         size=0\n\
         ccert_subject=\n\
         ccert_issuer=\n\
         ccert_fingerprint=\n\
         ccert_pubkey_fingerprint=\n\
         encryption_protocol=TLSv1.3\n\
         encryption_cipher=TLS_AES_256_GCM_SHA384\n\
         encryption_keysize=256\n\
         etrn_domain=\n\
         stress=\n\
         policy_context=\n\
         server_address=10.0.0.1\n\
         server_port=587\n\
         compatibility_level=3.6\n\
         mail_version=3.7.11\n\
         client_port={p}\n\
         \n",
        h = n % 250,
        r = n % 977,
        i = 0x1a2b + n,
        p = 1024 + n % 60000,
    )
    .into_bytes()
}
