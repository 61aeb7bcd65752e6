//! Properties (proptest): a parsed login's address is the server's own field, never one a user
//! name smuggled in; address normalisation is idempotent; every tcprules cdb reads back through
//! ucspi-tcp's own `tcprules` and `tcprulescheck` as the rules it was given; and expiry never
//! lets an address relay past the deadline of every lease that ever covered it.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use proptest::prelude::*;
use relaylease::answers::tcprules::{
    Access, Rule, build_rules, lease_keys, lease_rules, parse_rules, tcpremoteip,
};
use relaylease::lease::{
    Login, Millis, Rules, canonical, lease_key, parse_ip, parse_key, show_key,
};
use relaylease::sources::logparse::{Event, Format, LineParser};
use relaylease::store::{Answer, Leases, Opened, Outcome, SledBackend};

/// `n` cases, times `PROPERTIES_SCALE` (default 1) for a longer run by hand:
/// `PROPERTIES_SCALE=50 cargo test --release --test properties`.
fn cases(n: u32) -> ProptestConfig {
    let scale = std::env::var("PROPERTIES_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    ProptestConfig::with_cases(n.saturating_mul(scale))
}

// ---------------------------------------------------------------------------------------------
// Addresses

/// IPv6 groups that are mostly zero or small, so `::` runs turn up anywhere in the text.
fn group() -> impl Strategy<Value = u16> {
    prop_oneof![4 => Just(0u16), 1 => Just(1u16), 1 => Just(0xdb8u16), 2 => any::<u16>()]
}

fn zeroish_v6() -> impl Strategy<Value = Ipv6Addr> {
    prop::array::uniform8(group()).prop_map(Ipv6Addr::from)
}

/// Any client address: IPv4, IPv6 (uniform and zero-heavy) and IPv4-mapped IPv6.
fn client() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<Ipv4Addr>().prop_map(IpAddr::V4),
        any::<Ipv6Addr>().prop_map(IpAddr::V6),
        zeroish_v6().prop_map(IpAddr::V6),
        any::<Ipv4Addr>().prop_map(|v4| IpAddr::V6(v4.to_ipv6_mapped())),
    ]
}

/// The ways servers write an address: Rust's (RFC 5952) form, IPv4 as IPv4-mapped IPv6
/// (Courier, Dovecot on a dual-stack socket), or IPv6 with every group written out.
fn spell(ip: IpAddr, how: u8) -> String {
    match (ip, how % 3) {
        (IpAddr::V4(v4), 1) => format!("::ffff:{v4}"),
        (IpAddr::V6(v6), 2) => v6
            .segments()
            .iter()
            .map(|g| format!("{g:x}"))
            .collect::<Vec<_>>()
            .join(":"),
        (ip, _) => ip.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Log lines: the address comes from the server's field, never from the user name

/// Pieces of hostile user names: every field marker the parsers look for, brackets, commas,
/// spaces, and other addresses in the forms the formats write them.
fn hostile_piece() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        "rip=",
        ", rip=",
        "ip=[",
        ", ip=[",
        "[",
        "]",
        "] ",
        ",",
        ", ",
        " ",
        "  ",
        ">",
        "<",
        ">, method=PLAIN",
        ", method=",
        ", lip=127.0.0.1",
        ", mpid=1",
        ", session=<abc>",
        ", port=[1]",
        ", protocol=IMAP",
        " host=",
        " host=[",
        " nmsgs=1/1",
        " mech=PLAIN",
        " plaintext",
        " User logged in",
        " SESSIONID=<cyrus-1-2>",
        "authenticated - ",
        " authenticated",
        " authenticated through APOP",
        " - ",
        "user=",
        "login: ",
        "LOGIN, user=",
        "Login user=",
        "é",
        "%",
        "\t",
    ])
    .prop_map(str::to_string);
    let decoy = (client(), 0u8..3, 0u8..16).prop_map(|(ip, how, wrap)| {
        let a = spell(ip, how);
        match wrap {
            0 => a,
            1 => format!("[{a}]"),
            2 => format!("rip={a}"),
            3 => format!("ip=[{a}]"),
            4 => format!("host=[{a}]"),
            5 => format!(" - {a}"),
            // The rest of a success line of each format, forged whole around the decoy.
            6 => format!(">, method=PLAIN, rip={a}, lip=127.0.0.1, mpid=1, session=<a>"),
            7 => format!(">, method=PLAIN, rip={a}, lip=127.0.0.1"),
            8 => format!(", ip=[{a}], port=[1]"),
            9 => format!(", ip=[{a}]"),
            10 => format!("[{a}] x plaintext User logged in"),
            11 => format!(" host=[{a}] nmsgs=1/1"),
            12 => format!(" host=client.example [{a}]"),
            13 => format!(" authenticated - {a}"),
            14 => format!(" authenticated through APOP - {a}"),
            _ => format!("{a} "),
        }
    });
    prop_oneof![
        4 => fixed,
        4 => decoy,
        2 => "[a-zA-Z0-9._@-]{1,8}",
    ]
}

fn hostile_user() -> impl Strategy<Value = String> {
    prop::collection::vec(hostile_piece(), 1..8).prop_map(|v| v.concat())
}

/// A success line of one server, as that server writes it.
fn success_line(format: Format, variant: u8, user: &str, addr: &str) -> String {
    let bsd = "Nov 22 03:09:57 vm";
    match (format, variant % 4) {
        (Format::Dovecot, 0) => format!(
            "{bsd} dovecot: pop3-login: Login: user=<{user}>, method=PLAIN, rip={addr}, lip=192.0.2.1, mpid=8176, session=<CHtby9Rgd6N/AAAV>"
        ),
        (Format::Dovecot, 1) => format!(
            "2026-11-22T03:09:57.790849+00:00 vm dovecot: imap-login: Logged in: user=<{user}>, method=PLAIN, rip={addr}, lip=::1, mpid=1, TLS, session=<abc>"
        ),
        (Format::Dovecot, _) => format!(
            "Nov 22 03:08:41 pop3-login: Info: Login: user=<{user}>, method=PLAIN, rip={addr}, lip=127.0.0.1, mpid=8176, secured, session=<CHtby9Rgd6N/AAAV>"
        ),
        (Format::Courier, 0) => {
            format!("{bsd} pop3d: LOGIN, user={user}, ip=[{addr}], port=[37769]")
        }
        (Format::Courier, 1) => {
            format!("{bsd} imapd-ssl: LOGIN, user={user}, ip=[{addr}], port=[1], protocol=IMAP")
        }
        (Format::Courier, _) => {
            format!(
                "{bsd} courierpop3login: INFO: LOGIN, user={user}, ip=[{addr}], port=[2], stls=1"
            )
        }
        (Format::Cyrus, 0) => format!(
            "{bsd} cyrus/pop3[9071]: login: [{addr}] {user} plaintext User logged in SESSIONID=<cyrus-1795317204-9071-1-12399184542919026669>"
        ),
        (Format::Cyrus, 1) => format!(
            "{bsd} cyrus/imap[9]: login: client.example.org [{addr}] {user} PLAIN User logged in"
        ),
        (Format::Cyrus, _) => format!(
            "{bsd} imapd[9]: login: localhost [{addr}] {user} DIGEST-MD5 User logged in SESSIONID=<x-1>"
        ),
        (Format::Uw, 0) => {
            format!("{bsd} ipop3d[1]: Login user={user} host=client.example.org [{addr}] nmsgs=3/3")
        }
        (Format::Uw, 1) => format!("{bsd} imapd[1]: Login user={user} host=[{addr}]"),
        (Format::Uw, 2) => format!("{bsd} ipop3d[1]: Auth user={user} host=[{addr}] nmsgs=0/0"),
        (Format::Uw, _) => {
            format!("{bsd} imapd[1]: Authenticated user={user} host=x.example [{addr}] mech=PLAIN")
        }
        (Format::SolidPop3d, v) if v % 2 == 0 => {
            format!("{bsd} solid-pop3d[9457]: user {user} authenticated - {addr}")
        }
        (Format::SolidPop3d, _) => {
            format!("{bsd} solid-pop3d[9457]: user {user} authenticated through APOP - {addr}")
        }
        (other, _) => unreachable!("no success line for {other}"),
    }
}

fn server() -> impl Strategy<Value = Format> {
    prop::sample::select(vec![
        Format::Dovecot,
        Format::Courier,
        Format::Cyrus,
        Format::Uw,
        Format::SolidPop3d,
    ])
}

/// What each parser setup makes of the line: format detection, and the format pinned.
fn parse_both(format: Format, line: &str) -> [Event; 2] {
    [
        LineParser::new(None, Vec::new()).parse(line.as_bytes()),
        LineParser::new(Some(format), Vec::new()).parse(line.as_bytes()),
    ]
}

proptest! {
    #![proptest_config(cases(2000))]

    /// Whatever the user name holds, a login's address is the real client's; a line the
    /// parser cannot read safely grants nothing.
    #[test]
    fn hostile_user_names_never_choose_the_address(
        format in server(),
        variant in any::<u8>(),
        user in hostile_user(),
        real in client(),
        how in 0u8..3,
    ) {
        let line = success_line(format, variant, &user, &spell(real, how));
        for event in parse_both(format, &line) {
            if let Event::Login(login) = event {
                prop_assert_eq!(login.ip, Some(canonical(real)), "line: {}", line);
                prop_assert_eq!(login.format, format, "line: {}", line);
                prop_assert_eq!(login.user.as_deref(), Some(user.as_str()), "line: {}", line);
            }
        }
    }

    /// The same lines with plain user names are logins: the generator writes real lines, so
    /// the property above is not true merely because every hostile line is refused.
    #[test]
    fn plain_user_names_are_logins(
        format in server(),
        variant in any::<u8>(),
        user in "[a-z][a-z0-9._@-]{0,15}",
        real in client(),
        how in 0u8..3,
    ) {
        let line = success_line(format, variant, &user, &spell(real, how));
        for event in parse_both(format, &line) {
            let Event::Login(login) = event else {
                return Err(TestCaseError::fail(format!("no login in {line}: {event:?}")));
            };
            prop_assert_eq!(login.ip, Some(canonical(real)), "line: {}", line);
            prop_assert_eq!(login.user.as_deref(), Some(user.as_str()), "line: {}", line);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Address normalisation

proptest! {
    #![proptest_config(cases(2000))]

    /// A key shown to the administrator and typed back is the same key, and normalising a
    /// second time changes nothing.
    #[test]
    fn normalisation_is_idempotent(ip in client(), prefix in 0u8..=128, how in 0u8..3) {
        let once = canonical(ip);
        prop_assert_eq!(canonical(once), once);
        prop_assert!(once.is_ipv4() || once.to_canonical() == once, "{} stayed mapped", ip);

        let key = lease_key(ip, prefix);
        prop_assert_eq!(lease_key(once, prefix), key);
        prop_assert!(key.contains(&once), "{} is outside its key {}", ip, key);
        prop_assert_eq!(lease_key(key.network(), prefix), key);
        prop_assert_eq!(key.trunc(), key);

        let shown = show_key(&key);
        let back = parse_key(&shown, prefix).unwrap();
        prop_assert_eq!(back, key, "shown as {}", shown);
        prop_assert_eq!(show_key(&back), shown);

        let typed = spell(ip, how);
        prop_assert_eq!(parse_ip(&typed).unwrap(), once, "typed {}", typed);
        prop_assert_eq!(parse_ip(&format!("[{typed}]")).unwrap(), once);
        prop_assert_eq!(parse_key(&typed, prefix).unwrap(), key, "typed {}", typed);
    }

    /// A prefix typed for `del`/`check` normalises to a key that normalises to itself.
    #[test]
    fn typed_prefixes_normalise_once(ip in client(), len in 0u8..=128, prefix in 0u8..=128) {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let typed = format!("{}/{}", ip, len % (max + 1));
        let key = parse_key(&typed, prefix).unwrap();
        prop_assert_eq!(key.trunc(), key);
        let shown = show_key(&key);
        let again = parse_key(&shown, prefix).unwrap();
        if matches!(key, IpNet::V6(n) if n.prefix_len() == 128) {
            // A /128 is shown as a bare address, and a bare address names the lease key of
            // that client: its /`prefix`.
            prop_assert_eq!(again, lease_key(key.addr(), prefix), "typed {}", typed);
        } else {
            prop_assert_eq!(again, key, "typed {}", typed);
        }
        prop_assert_eq!(parse_key(&show_key(&again), prefix).unwrap(), again);
    }
}

// ---------------------------------------------------------------------------------------------
// The tcprules cdb, read back by ucspi-tcp's own tools

fn ucspi_tool(name: &str) -> Command {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()));
    assert!(
        found,
        "`{name}` is not installed: these properties compare with ucspi-tcp's own tools \
         (Debian: apt-get install ucspi-tcp-ipv6; ./tests/run.sh installs it)"
    );
    Command::new(name)
}

/// What `tcprulescheck` says about a client whose `TCPREMOTEIP` is `remote_ip`.
fn tcprulescheck(cdb: &Path, remote_ip: &str) -> String {
    let out = ucspi_tool("tcprulescheck")
        .arg(cdb)
        .env("TCPREMOTEIP", remote_ip)
        .env_remove("TCPREMOTEINFO")
        .env_remove("TCPREMOTEHOST")
        .stdin(Stdio::null())
        .output()
        .expect("run tcprulescheck");
    assert!(out.status.success(), "tcprulescheck failed: {out:?}");
    String::from_utf8(out.stdout).expect("tcprulescheck writes text")
}

/// The cdb ucspi-tcp's `tcprules` writes for this rules text.
fn tcprules(dir: &Path, text: &[u8]) -> Vec<u8> {
    let (cdb, tmp) = (dir.join("tcprules.cdb"), dir.join("tcprules.tmp"));
    let mut child = ucspi_tool("tcprules")
        .arg(&cdb)
        .arg(&tmp)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tcprules");
    child.stdin.take().unwrap().write_all(text).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "tcprules refused the rules: {out:?}");
    std::fs::read(&cdb).unwrap()
}

/// The keys tcpserver tries for a client, in order: the whole address, every shorter prefix
/// ending in `.` or `:` (longest first), then the empty key.
fn lookup_keys(remote_ip: &str) -> Vec<&str> {
    let mut keys = vec![remote_ip];
    for (i, c) in remote_ip.char_indices().rev() {
        if (c == '.' || c == ':') && i + 1 < remote_ip.len() {
            keys.push(&remote_ip[..=i]);
        }
    }
    keys.push("");
    keys
}

/// What `tcprulescheck` should print for this client, read off the rules themselves.
fn meaning(rules: &[Rule], remote_ip: &str) -> String {
    for key in lookup_keys(remote_ip) {
        if let Some(rule) = rules.iter().find(|r| r.key == key.as_bytes()) {
            let mut said = format!("rule {key}:\n");
            match rule.access {
                Access::Deny => said.push_str("deny connection\n"),
                Access::Allow => {
                    for (name, value) in &rule.env {
                        said.push_str(&format!(
                            "set environment variable {}={}\n",
                            String::from_utf8_lossy(name),
                            String::from_utf8_lossy(value)
                        ));
                    }
                    said.push_str("allow connection\n");
                }
            }
            return said;
        }
    }
    "default:\nallow connection\n".into()
}

/// An address inside `net`, its host part taken from `bits`.
fn inside(net: &IpNet, bits: Ipv6Addr) -> IpAddr {
    match net {
        IpNet::V4(n) => {
            let host = (bits.to_bits() as u32) & u32::from(n.hostmask());
            IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) | host))
        }
        IpNet::V6(n) => {
            let host = bits.to_bits() & n.hostmask().to_bits();
            IpAddr::V6(Ipv6Addr::from(n.network().to_bits() | host))
        }
    }
}

/// Leases as the daemon makes them: IPv4 hosts, IPv6 prefixes of the usual lengths.
fn lease() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        any::<Ipv4Addr>().prop_map(|a| lease_key(IpAddr::V4(a), 64)),
        (
            zeroish_v6(),
            prop::sample::select(vec![48u8, 56, 60, 64, 64, 64, 96, 112, 124, 128, 128])
        )
            .prop_map(|(a, p)| lease_key(IpAddr::V6(a), p)),
    ]
}

/// One line of the administrator's base file, aimed at an address (or a lease) of the case.
#[derive(Clone, Debug)]
struct BaseLine {
    kind: u8,
    deny: bool,
    pick: usize,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
}

fn base_line() -> impl Strategy<Value = BaseLine> {
    (
        0u8..6,
        any::<bool>(),
        any::<usize>(),
        any::<Ipv4Addr>(),
        zeroish_v6(),
    )
        .prop_map(|(kind, deny, pick, v4, v6)| BaseLine {
            kind,
            deny,
            pick,
            v4,
            v6,
        })
}

impl BaseLine {
    /// A rule the administrator could write. It never sets RELAYCLIENT, so a client that gets
    /// RELAYCLIENT got it from a lease.
    fn text(&self, leases: &[IpNet]) -> String {
        let key = match self.kind {
            0 => tcpremoteip(IpAddr::V4(self.v4)),
            1 => {
                let o = self.v4.octets();
                format!("{}.{}.{}.", o[0], o[1], o[2])
            }
            2 => tcpremoteip(IpAddr::V6(self.v6)),
            3 => {
                let g = self.v6.segments();
                format!("{:x}:{:x}:{:x}:", g[0], g[1], g[2])
            }
            // The very key a lease gets: the static rule must win.
            4 if !leases.is_empty() => {
                let keys = lease_keys(&leases[self.pick % leases.len()]).unwrap().keys;
                keys.get(self.pick % keys.len().max(1))
                    .cloned()
                    .unwrap_or_default()
            }
            _ => String::new(),
        };
        if self.deny {
            format!("{key}:deny")
        } else {
            format!("{key}:allow,STATIC=\"{}\"", self.kind)
        }
    }
}

/// A client to ask about: inside a lease, next to a base rule's address, or anywhere.
fn probe() -> impl Strategy<Value = (u8, usize, Ipv6Addr, Ipv4Addr)> {
    (0u8..5, any::<usize>(), zeroish_v6(), any::<Ipv4Addr>())
}

proptest! {
    // Each case starts tcprules once and tcprulescheck a dozen times.
    #![proptest_config(cases(32))]

    #[test]
    fn every_cdb_reads_back_through_tcprulescheck_as_its_rules(
        leases in prop::collection::vec(lease(), 0..6),
        base_lines in prop::collection::vec(base_line(), 0..5),
        probes in prop::collection::vec(probe(), 8..14),
    ) {
        let base_text: String = base_lines.iter().map(|b| b.text(&leases) + "\n").collect();
        let base = parse_rules(base_text.as_bytes()).unwrap();
        let cdb = build_rules(&base, &leases, &[]).unwrap();

        // Byte for byte what ucspi-tcp's tcprules writes for the same rules as text.
        let added = lease_rules(&base, &leases, &[]).unwrap();
        let mut text = base_text.clone().into_bytes();
        for rule in &added {
            text.extend(rule.to_line().unwrap());
            text.push(b'\n');
        }
        let dir = tempfile::tempdir().unwrap();
        prop_assert!(tcprules(dir.path(), &text) == cdb, "the cdb differs from tcprules' for\n{}",
            String::from_utf8_lossy(&text));

        let path = dir.path().join("relay.cdb");
        std::fs::write(&path, &cdb).unwrap();
        let rules: Vec<Rule> = base.iter().chain(&added).cloned().collect();
        let static_keys: HashSet<&[u8]> =
            base.iter().map(|r| r.key.as_slice()).filter(|k| !k.is_empty()).collect();

        for (how, pick, v6, v4) in probes {
            let client = match how {
                0 | 1 if !leases.is_empty() => inside(&leases[pick % leases.len()], v6),
                2 if !base_lines.is_empty() => {
                    let b = &base_lines[pick % base_lines.len()];
                    if b.kind < 2 { IpAddr::V4(b.v4) } else { IpAddr::V6(b.v6) }
                }
                3 => IpAddr::V4(v4),
                _ => IpAddr::V6(v6),
            };
            let remote_ip = tcpremoteip(client);
            let said = tcprulescheck(&path, &remote_ip);
            let want = meaning(&rules, &remote_ip);
            prop_assert_eq!(&said, &want, "client {} ({}), rules:\n{}", client, remote_ip,
                String::from_utf8_lossy(&text));

            // And in terms of leases: RELAYCLIENT only inside a lease; inside a lease whose
            // keys reach all of it, always, unless a static rule stands in the way.
            let c = canonical(client);
            let relays = said.contains("RELAYCLIENT=");
            prop_assert!(!relays || leases.iter().any(|n| n.contains(&c)),
                "{} relays outside every lease {:?}", remote_ip, leases);
            let fully_leased = leases
                .iter()
                .any(|n| n.contains(&c) && lease_keys(n).unwrap().complete);
            let shadowed = lookup_keys(&remote_ip)
                .iter()
                .any(|k| static_keys.contains(k.as_bytes()));
            prop_assert!(!fully_leased || shadowed || relays,
                "{} is leased but does not relay: {}", remote_ip, said);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Expiry

const MIN: Millis = 60_000;
const WINDOW: Millis = 30 * MIN;
const T0: Millis = 1_795_321_822_937;

/// A clock reading: mostly within a few windows of each other, sometimes anywhere.
fn time() -> impl Strategy<Value = Millis> {
    prop_oneof![
        12 => T0..T0 + 4 * WINDOW,
        1 => Just(0),
        1 => Just(Millis::MAX),
        1 => any::<Millis>(),
    ]
}

/// Clients: two share an IPv6 /64, and one is the IPv4-mapped form of another.
const CLIENTS: [&str; 6] = [
    "192.0.2.1",
    "192.0.2.2",
    "::ffff:192.0.2.1",
    "2001:db8:1:2::a",
    "2001:db8:1:2:ffff::b",
    "2001:db8:1:3::1",
];

#[derive(Clone, Debug)]
enum Step {
    Login { who: usize, at: Millis, now: Millis },
    Add { who: usize, ms: Millis, now: Millis },
    Del { who: usize },
    Expire { now: Millis },
    Check { now: Millis },
    Flush,
    Restart { now: Millis },
}

fn step() -> impl Strategy<Value = Step> {
    let who = 0..CLIENTS.len();
    prop_oneof![
        6 => (who.clone(), time(), time()).prop_map(|(who, at, now)| Step::Login { who, at, now }),
        2 => (
            who.clone(),
            prop_oneof![3 => 0..3 * WINDOW, 1 => any::<Millis>()],
            time()
        )
            .prop_map(|(who, ms, now)| Step::Add { who, ms, now }),
        1 => who.prop_map(|who| Step::Del { who }),
        2 => time().prop_map(|now| Step::Expire { now }),
        4 => time().prop_map(|now| Step::Check { now }),
        1 => Just(Step::Flush),
        1 => time().prop_map(|now| Step::Restart { now }),
    ]
}

fn rules() -> Rules {
    Rules {
        window: Duration::from_millis(WINDOW),
        v6_prefix: 64,
        ..Rules::default()
    }
}

/// Open the table on a sled database. sled lets go of its file lock from a background thread
/// a moment after the last handle is dropped, so a reopen in the same process may have to wait.
fn open(db: &Path, now: Millis) -> Leases {
    let start = Instant::now();
    let backend = loop {
        match SledBackend::open(db) {
            Ok(Opened::Fine(b)) => break b,
            Ok(Opened::Quarantined(..)) => panic!("the test database was quarantined"),
            Err(relaylease::Error::DbLocked { .. })
                if start.elapsed() < Duration::from_secs(10) =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("cannot open the test database: {e}"),
        }
    };
    Leases::open(Box::new(backend), rules(), now).unwrap()
}

fn ip(who: usize) -> IpAddr {
    parse_ip(CLIENTS[who]).unwrap()
}

fn key(who: usize) -> IpNet {
    lease_key(ip(who), 64)
}

proptest! {
    #![proptest_config(cases(2000))]

    /// A login's deadline counts from its time but never runs past now + window.
    #[test]
    fn a_deadline_is_never_past_now_plus_window(
        at in any::<Millis>(),
        now in any::<Millis>(),
        window in 1..10 * 365 * 86_400_000u64,
    ) {
        let r = Rules { window: Duration::from_millis(window), ..Rules::default() };
        let d = r.deadline(at, now);
        prop_assert!(d <= now.saturating_add(window), "{} > {} + {}", d, now, window);
        prop_assert!(d <= at.saturating_add(window), "{} > {} + {}", d, at, window);
    }
}

proptest! {
    // Each case opens a sled database (and reopens it at every Restart).
    #![proptest_config(cases(64))]

    /// Whatever happens in whatever order, at whatever clock readings: an address may relay
    /// only before the latest deadline any lease on its key ever had, and the table agrees
    /// with a plain model of leases (login extends a live lease, add replaces its deadline,
    /// expiry and restarts drop what is due).
    #[test]
    fn expiry_never_grants_past_a_deadline(steps in prop::collection::vec(step(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let mut leases = Some(open(&db, T0));
        // The latest deadline ever given to each key, and what the table should hold.
        let mut ever: BTreeMap<IpNet, Millis> = BTreeMap::new();
        let mut model: BTreeMap<IpNet, Millis> = BTreeMap::new();

        for step in &steps {
            let l = leases.as_ref().unwrap();
            let seen_at = match *step {
                Step::Login { who, at, now } => {
                    let d = rules().deadline(at, now);
                    prop_assert!(d <= now.saturating_add(WINDOW));
                    let login = Login {
                        ip: ip(who),
                        user: Some("alice".into()),
                        at,
                        source: "properties".into(),
                    };
                    let k = key(who);
                    match l.login(&login, now, false, None).unwrap() {
                        Outcome::Granted(lease) | Outcome::Renewed(lease) => {
                            prop_assert!(d > now, "granted a lease already due: {:?}", step);
                            let want = match model.get(&k) {
                                Some(&old) if old > now => old.max(d),
                                _ => d,
                            };
                            prop_assert_eq!(lease.deadline, want, "{:?}", step);
                            model.insert(k, want);
                            let e = ever.entry(k).or_default();
                            *e = (*e).max(want);
                        }
                        Outcome::Refused(v) => {
                            prop_assert!(d <= now, "refused {:?}: {:?}", step, v);
                        }
                    }
                    Some(now)
                }
                Step::Add { who, ms, now } => {
                    let lease = l.add(ip(who), Duration::from_millis(ms), now).unwrap();
                    let want = now.saturating_add(ms);
                    prop_assert_eq!(lease.deadline, want, "{:?}", step);
                    model.insert(key(who), want);
                    let e = ever.entry(key(who)).or_default();
                    *e = (*e).max(want);
                    Some(now)
                }
                Step::Del { who } => {
                    let gone = l.del(&key(who)).unwrap();
                    prop_assert_eq!(gone.map(|g| g.deadline), model.remove(&key(who)));
                    None
                }
                Step::Expire { now } => {
                    let mut gone: Vec<IpNet> =
                        l.expire(now).unwrap().iter().map(|g| g.net).collect();
                    gone.sort();
                    let due: Vec<IpNet> =
                        model.iter().filter(|&(_, &d)| d <= now).map(|(k, _)| *k).collect();
                    model.retain(|_, d| *d > now);
                    prop_assert_eq!(gone, due, "{:?}", step);
                    Some(now)
                }
                Step::Check { now } => Some(now),
                Step::Flush => {
                    prop_assert_eq!(l.flush().unwrap(), model.len());
                    model.clear();
                    None
                }
                Step::Restart { now } => {
                    drop(leases.take());
                    leases = Some(open(&db, now));
                    model.retain(|_, d| *d > now);
                    Some(now)
                }
            };
            let l = leases.as_ref().unwrap();
            prop_assert_eq!(l.len(), model.len(), "after {:?}", step);
            let Some(now) = seen_at else { continue };
            for (who, client) in CLIENTS.iter().enumerate() {
                let answer = l.check(ip(who), now);
                let k = key(who);
                if answer.allowed() {
                    let last = ever.get(&k).copied().unwrap_or(0);
                    prop_assert!(now < last,
                        "{} relays at {} though every lease on {} ended by {}",
                        client, now, k, last);
                }
                let want = model.get(&k).copied().filter(|&d| d > now);
                let got = match answer {
                    Answer::Lease(lease) => Some(lease.deadline),
                    Answer::No => None,
                    Answer::Static(n) => {
                        return Err(TestCaseError::fail(format!("static {n} with no --allow")));
                    }
                };
                prop_assert_eq!(got, want, "{} at {} after {:?}", client, now, step);
            }
        }
    }
}
