//! The lease model: address normalisation, who may get a lease, and expiry arithmetic (pure).
//!
//! Every function here takes the current time as an argument, so tests never sleep.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Milliseconds since the Unix epoch: the one clock unit of the lease table.
pub type Millis = u64;

/// The wall clock, read once per operation by the callers that are not tests.
/// `ms` as local calendar time, as the C library sees the zone (`TZ`, /etc/localtime).
pub fn local_tm(ms: Millis) -> Option<libc::tm> {
    let t = libc::time_t::try_from(ms / 1000).ok()?;
    // SAFETY: an all-zero `tm` is a valid value (the zone pointer may be null), and
    // localtime_r only writes through the two pointers it is given.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    (!r.is_null()).then_some(tm)
}

pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// Milliseconds on this process's monotonic clock (from its first reading): what a step of
/// the system clock cannot move. Meaningless across a restart, so never stored.
pub fn mono_ms() -> Millis {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(std::time::Instant::now);
    epoch.elapsed().as_millis() as Millis
}

/// How much longer than granted a lease may relay when the system clock is stepped back:
/// the bound on the monotonic clock is its length plus this.
pub const CLOCK_SLACK: Millis = 1000;

/// A lease without a bound on the monotonic clock (loaded at start): its wall deadline alone
/// decides.
pub const NO_BOUND: Millis = Millis::MAX;

/// The monotonic time past which a lease written at wall time `now` (monotonic `mono`) with
/// `deadline` no longer relays, whatever the system clock does meanwhile: its length as
/// granted plus [`CLOCK_SLACK`].
pub fn mono_bound(deadline: Millis, now: Millis, mono: Millis) -> Millis {
    mono.saturating_add(deadline.saturating_sub(now))
        .saturating_add(CLOCK_SLACK)
}

/// The wall deadline a lease really has at (`now`, `mono`): its own, or sooner when its
/// monotonic `bound` ends first (the clock was stepped back since it was written).
pub fn bounded_deadline(deadline: Millis, bound: Millis, now: Millis, mono: Millis) -> Millis {
    if bound == NO_BOUND {
        return deadline;
    }
    deadline.min(now.saturating_add(bound.saturating_sub(mono)))
}

/// A step of the system clock, seen by comparing it with the monotonic clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockStep {
    /// Stepped forward this many milliseconds: leases end that much early (fail closed).
    Forward(Millis),
    /// Stepped back this many milliseconds: leases are held to their monotonic bounds.
    Back(Millis),
}

/// Watches the offset between the system clock and the monotonic clock; a change of more
/// than [`CLOCK_SLACK`] between two looks is a step (NTP's slewing moves it by far less).
#[derive(Debug)]
pub struct StepWatch {
    offset: i128,
}

impl StepWatch {
    pub fn new(now: Millis, mono: Millis) -> StepWatch {
        StepWatch {
            offset: now as i128 - mono as i128,
        }
    }

    /// Look at the clocks again; a step since the last look, if any.
    pub fn look(&mut self, now: Millis, mono: Millis) -> Option<ClockStep> {
        let offset = now as i128 - mono as i128;
        let moved = offset - self.offset;
        self.offset = offset;
        let by = moved.unsigned_abs().min(Millis::MAX as u128) as Millis;
        match moved {
            m if m > CLOCK_SLACK as i128 => Some(ClockStep::Forward(by)),
            m if m < -(CLOCK_SLACK as i128) => Some(ClockStep::Back(by)),
            _ => None,
        }
    }
}

/// Where a lease came from, as shown to the administrator.
pub const SOURCE_HOOK: &str = "hook";
pub const SOURCE_MANUAL: &str = "manual";
/// Logins Dovecot reported to `--dovecot-policy`.
pub const SOURCE_DOVECOT_POLICY: &str = "dovecot-policy";

/// One successful POP3/IMAP login, from any source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    pub ip: IpAddr,
    pub user: Option<String>,
    /// When the login happened (the log line's own time where it has one).
    pub at: Millis,
    /// A watched log file's path, `hook`, or `manual`.
    pub source: String,
}

/// Permission for one address (or IPv6 prefix) to relay until a deadline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub net: IpNet,
    pub deadline: Millis,
    pub first_login: Millis,
    pub last_login: Millis,
    pub user: Option<String>,
    pub source: String,
    pub logins: u64,
}

impl Lease {
    pub fn new(net: IpNet, login: &Login, deadline: Millis) -> Self {
        Lease {
            net,
            deadline,
            first_login: login.at,
            last_login: login.at,
            user: login.user.clone(),
            source: login.source.clone(),
            logins: 1,
        }
    }

    /// A later login renews the lease; an older line (read late) never shortens it.
    pub fn renew(&mut self, login: &Login, deadline: Millis) {
        self.deadline = self.deadline.max(deadline);
        self.first_login = self.first_login.min(login.at);
        if login.at >= self.last_login {
            self.last_login = login.at;
            if login.user.is_some() {
                self.user = login.user.clone();
            }
            self.source = login.source.clone();
        }
        self.logins = self.logins.saturating_add(1);
    }

    pub fn is_live(&self, now: Millis) -> bool {
        self.deadline > now
    }
}

/// An IPv4-mapped IPv6 address is the IPv4 address it carries.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The lease key of a client address: the IPv4 address itself, or the IPv6 prefix of
/// `v6_prefix` bits that holds it (a host's privacy addresses change within its /64).
pub fn lease_key(ip: IpAddr, v6_prefix: u8) -> IpNet {
    match canonical(ip) {
        IpAddr::V4(v4) => IpNet::V4(Ipv4Net::from(v4)),
        IpAddr::V6(v6) => {
            let bits = v6_prefix.min(128);
            let net = Ipv6Net::new(v6, bits).unwrap_or_else(|_| Ipv6Net::from(v6));
            IpNet::V6(net.trunc())
        }
    }
}

/// A key as the administrator reads it: a bare address for one host, CIDR for a prefix.
pub fn show_key(net: &IpNet) -> String {
    let mut text = Vec::with_capacity(43);
    put_key(&mut text, net);
    // Only ASCII is ever written.
    String::from_utf8(text).unwrap_or_default()
}

/// Append [`show_key`]'s text of `net` to `out`.
pub fn put_key(out: &mut Vec<u8>, net: &IpNet) {
    put_addr(out, net.addr());
    if net.prefix_len() != net.max_prefix_len() {
        out.push(b'/');
        put_decimal(out, net.prefix_len());
    }
}

/// Append `ip` as `Display` writes it (RFC 5952 for IPv6: lowercase, no leading zeros,
/// the first longest run of two or more zero groups as `::`, `::ffff:` and dotted
/// IPv4 for a mapped address), without the formatter: the recorder writes two addresses
/// into every audit line, tens of thousands a second (issue 19).
pub fn put_addr(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => put_v4(out, v4.octets()),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                out.extend_from_slice(b"::ffff:");
                return put_v4(out, v4.octets());
            }
            let groups = v6.segments();
            // The first longest run of zero groups.
            let (mut best, mut best_len, mut run) = (0, 0, 0);
            for (i, &g) in groups.iter().enumerate() {
                run = if g == 0 { run + 1 } else { 0 };
                if run > best_len {
                    best_len = run;
                    best = i + 1 - run;
                }
            }
            if best_len < 2 {
                return put_groups(out, &groups);
            }
            put_groups(out, &groups[..best]);
            out.extend_from_slice(b"::");
            put_groups(out, &groups[best + best_len..]);
        }
    }
}

fn put_v4(out: &mut Vec<u8>, octets: [u8; 4]) {
    for (i, o) in octets.into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        put_decimal(out, o);
    }
}

/// An octet in decimal, as `u8`'s `Display` writes it.
pub fn put_decimal(out: &mut Vec<u8>, v: u8) {
    if v >= 100 {
        out.push(b'0' + v / 100);
    }
    if v >= 10 {
        out.push(b'0' + v / 10 % 10);
    }
    out.push(b'0' + v % 10);
}

/// IPv6 groups, `:` between them.
fn put_groups(out: &mut Vec<u8>, groups: &[u16]) {
    for (i, &g) in groups.iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        put_hex_group(out, g);
    }
}

/// An IPv6 group in lowercase hex without leading zeros, as `{:x}` writes it.
pub fn put_hex_group(out: &mut Vec<u8>, v: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (16 - v.leading_zeros() as usize).div_ceil(4).max(1);
    for d in (0..digits).rev() {
        out.push(HEX[usize::from((v >> (4 * d)) as u8 & 0xf)]);
    }
}

/// Parse an address typed by a person or found in a request: `192.0.2.7`, `[2001:db8::1]`,
/// `::ffff:192.0.2.7`. The error names the bad value.
pub fn parse_ip(s: &str) -> Result<IpAddr> {
    let t = s.trim();
    let t = t
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(t);
    // Mailutils writes ::1 as 0:0:0:0:0:0:0:1, which parses as is; IPv6 zone ids do not
    // name a relay client.
    t.parse::<IpAddr>()
        .map(canonical)
        .map_err(|_| Error::invalid(format!("invalid address '{s}'")))
}

/// An address or a prefix: `del` and `check` accept a lease key as `list` prints it.
pub fn parse_key(s: &str, v6_prefix: u8) -> Result<IpNet> {
    if s.contains('/') {
        let net: IpNet = s
            .trim()
            .parse()
            .map_err(|_| Error::invalid(format!("invalid address or prefix '{s}'")))?;
        match net {
            IpNet::V6(n) => {
                if let Some(v4) = n.addr().to_ipv4_mapped() {
                    let bits = n.prefix_len().saturating_sub(96);
                    return Ipv4Net::new(v4, bits)
                        .map(|n| IpNet::V4(n.trunc()))
                        .map_err(|_| Error::invalid(format!("invalid prefix '{s}'")));
                }
                Ok(IpNet::V6(n.trunc()))
            }
            v4 => Ok(v4.trunc()),
        }
    } else {
        parse_ip(s).map(|ip| lease_key(ip, v6_prefix))
    }
}

/// Parse a network for `--allow`/`--deny`; a bare address is a single host.
pub fn parse_net(s: &str) -> Result<IpNet> {
    if s.contains('/') {
        s.trim()
            .parse::<IpNet>()
            .map(|n| n.trunc())
            .map_err(|_| Error::invalid(format!("invalid network '{s}'")))
    } else {
        parse_ip(s).map(IpNet::from)
    }
}

/// Parse a humantime duration such as `30m` or `1h 30m`; zero is not a window.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| Error::invalid(format!("invalid duration '{s}': {e}")))?;
    if d.is_zero() {
        return Err(Error::invalid(format!(
            "invalid duration '{s}': must be more than zero"
        )));
    }
    if d > Duration::from_secs(10 * 365 * 86400) {
        return Err(Error::invalid(format!(
            "invalid duration '{s}': more than ten years"
        )));
    }
    Ok(d)
}

/// Who gets a lease and for how long: the settings every login is judged by.
#[derive(Clone, Debug)]
pub struct Rules {
    pub window: Duration,
    pub v6_prefix: u8,
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
    /// When set, only these users' logins create leases.
    pub users: Option<Arc<HashSet<String>>>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            window: Duration::from_secs(30 * 60),
            v6_prefix: 64,
            allow: Vec::new(),
            deny: Vec::new(),
            users: None,
        }
    }
}

/// What a login earns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Create or renew the lease on `net` until `deadline`.
    Grant { net: IpNet, deadline: Millis },
    /// The address is always allowed (`--allow`); nothing is stored.
    Static(IpNet),
    /// The address is in a `--deny` network.
    DeniedNet(IpNet),
    /// `--users` is set and does not list this user (or the login names none).
    DeniedUser,
    /// The login is older than the window: it would expire before it starts.
    Stale,
}

impl Rules {
    /// The `--allow` network holding `ip`, if any.
    pub fn static_net(&self, ip: IpAddr) -> Option<&IpNet> {
        let ip = canonical(ip);
        self.allow.iter().find(|n| n.contains(&ip))
    }

    fn window_ms(&self) -> Millis {
        self.window.as_millis().min(u64::MAX as u128) as Millis
    }

    /// The deadline a login at `at` earns, seen at `now`: counted from the login's own time,
    /// but never later than `now + window` (a clock ahead of ours grants no extra time).
    pub fn deadline(&self, at: Millis, now: Millis) -> Millis {
        let w = self.window_ms();
        at.saturating_add(w).min(now.saturating_add(w))
    }

    pub fn judge(&self, login: &Login, now: Millis) -> Verdict {
        let ip = canonical(login.ip);
        if let Some(net) = self.deny.iter().find(|n| n.contains(&ip)) {
            return Verdict::DeniedNet(*net);
        }
        if let Some(net) = self.static_net(ip) {
            return Verdict::Static(*net);
        }
        if let Some(users) = &self.users {
            match &login.user {
                Some(u) if users.contains(u) => {}
                _ => return Verdict::DeniedUser,
            }
        }
        let deadline = self.deadline(login.at, now);
        if deadline <= now {
            return Verdict::Stale;
        }
        Verdict::Grant {
            net: lease_key(ip, self.v6_prefix),
            deadline,
        }
    }
}

/// Parse a `--users` file: one user name per line; blank lines and `#` comments ignored.
pub fn parse_users(text: &str) -> HashSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// `27m left`, `1h 3m left`, `40s left`: the rest of a lease, to the second.
pub fn show_remaining(deadline: Millis, now: Millis) -> String {
    let secs = deadline.saturating_sub(now).div_ceil(1000);
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `show_key` wrote before it had its own writer: the standard `Display`.
    fn shown_by_display(net: &IpNet) -> String {
        if net.prefix_len() == net.max_prefix_len() {
            net.addr().to_string()
        } else {
            net.to_string()
        }
    }

    fn v6(groups: [u16; 8]) -> IpAddr {
        IpAddr::V6(std::net::Ipv6Addr::from(groups))
    }

    #[test]
    fn addresses_are_written_as_display_writes_them_at_the_edges() {
        let edges = [
            [0; 8],
            [0, 0, 0, 0, 0, 0, 0, 1],
            [1, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0207],
            [0, 0, 0, 0, 0, 0, 0xc000, 0x0207],
            [0x2001, 0xdb8, 0, 1, 0, 0, 0, 1],
            [0x2001, 0xdb8, 0, 0, 1, 0, 0, 1],
            [0x2001, 0xdb8, 0, 1, 1, 1, 1, 1],
            [0x2001, 0, 0, 1, 0, 0, 0, 1],
            [0xffff; 8],
            [0xabc, 0x10, 0x1, 0xf00, 0, 0xfff, 0, 0],
        ];
        for g in edges {
            let mut out = Vec::new();
            put_addr(&mut out, v6(g));
            assert_eq!(String::from_utf8(out).unwrap(), v6(g).to_string());
        }
        for a in ["0.0.0.0", "255.255.255.255", "192.0.2.7", "10.0.10.100"] {
            let ip: IpAddr = a.parse().unwrap();
            let mut out = Vec::new();
            put_addr(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), a);
        }
    }

    proptest::proptest! {
        /// Groups zero half the time, so that runs of zeros of every length and place come up.
        #[test]
        fn keys_are_written_as_display_writes_them(
            groups in proptest::array::uniform8(proptest::prop_oneof![
                proptest::strategy::Just(0u16),
                proptest::prelude::any::<u16>(),
            ]),
            v4 in proptest::prelude::any::<u32>(),
            prefix in 0u8..=128,
        ) {
            let nets = [
                IpNet::V6(Ipv6Net::new(std::net::Ipv6Addr::from(groups), prefix).unwrap()),
                IpNet::V4(Ipv4Net::new(std::net::Ipv4Addr::from(v4), prefix % 33).unwrap()),
            ];
            for net in nets {
                proptest::prop_assert_eq!(show_key(&net), shown_by_display(&net));
                let mut out = b"x".to_vec();
                put_addr(&mut out, net.addr());
                let want = format!("x{}", net.addr());
                proptest::prop_assert_eq!(out, want.into_bytes());
            }
        }
    }

    #[test]
    fn a_step_of_the_clock_is_seen_once_and_slewing_is_not_a_step() {
        let mut w = StepWatch::new(1_000_000, 10);
        assert_eq!(w.look(1_001_000, 1_010), None);
        // NTP's slewing: a few milliseconds over a second.
        assert_eq!(w.look(1_002_005, 2_010), None);
        assert_eq!(
            w.look(1_002_005 + 3_600_000 + 1_000, 3_010),
            Some(ClockStep::Forward(3_600_000))
        );
        assert_eq!(w.look(1_002_005 + 3_600_000 + 2_000, 4_010), None);
        assert_eq!(
            w.look(1_002_005 + 3_000, 5_010),
            Some(ClockStep::Back(3_600_000))
        );
    }

    #[test]
    fn a_bound_counts_the_length_as_granted_and_ends_a_deadline_beyond_it() {
        const HOUR: Millis = 3_600_000;
        let granted = 10 * HOUR;
        // Granted at mono 50 for an hour: bound at mono 50 + an hour + the slack.
        let b = mono_bound(granted + HOUR, granted, 50);
        assert_eq!(b, 50 + HOUR + CLOCK_SLACK);
        // Ten minutes on without a step: the wall deadline is the sooner one.
        let ten = HOUR / 6;
        assert_eq!(
            bounded_deadline(granted + HOUR, b, granted + ten, 50 + ten),
            granted + HOUR
        );
        // Ten minutes on, stepped back an hour: the bound ends it an hour sooner, slack and all.
        let now = granted + ten - HOUR;
        assert_eq!(
            bounded_deadline(granted + HOUR, b, now, 50 + ten),
            now + HOUR - ten + CLOCK_SLACK
        );
        assert_eq!(
            bounded_deadline(granted + HOUR, NO_BOUND, 0, Millis::MAX - 1),
            granted + HOUR
        );
    }

    fn login(ip: &str, user: Option<&str>, at: Millis) -> Login {
        Login {
            ip: parse_ip(ip).unwrap(),
            user: user.map(str::to_string),
            at,
            source: "/var/log/mail.log".into(),
        }
    }

    const MIN: Millis = 60_000;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn mapped_v6_is_the_v4_address() {
        let ip: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(canonical(ip), v4(192, 0, 2, 7));
        assert_eq!(show_key(&lease_key(ip, 64)), "192.0.2.7");
        assert_eq!(parse_ip("[::ffff:192.0.2.7]").unwrap(), v4(192, 0, 2, 7));
    }

    #[test]
    fn v6_is_grouped_by_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(lease_key(a, 64), lease_key(b, 64));
        assert_ne!(lease_key(a, 64), lease_key(c, 64));
        assert_eq!(show_key(&lease_key(a, 64)), "2001:db8:1:2::/64");
        assert_ne!(lease_key(a, 128), lease_key(b, 128));
        assert_eq!(show_key(&lease_key(a, 128)), "2001:db8:1:2:aaaa::1");
        // A prefix longer than 128 is treated as exact, not as an error.
        assert_eq!(lease_key(a, 200), lease_key(a, 128));
    }

    #[test]
    fn normalisation_is_idempotent() {
        for s in [
            "192.0.2.7",
            "::ffff:10.1.2.3",
            "2001:db8::1",
            "::1",
            "0:0:0:0:0:0:0:1",
        ] {
            let once = lease_key(parse_ip(s).unwrap(), 64);
            let twice = parse_key(&show_key(&once), 64).unwrap();
            assert_eq!(once, twice, "{s}");
        }
    }

    #[test]
    fn bad_addresses_are_named_in_the_error() {
        for s in ["", "300.1.1.1", "example.org", "1.2.3", "::g"] {
            let e = parse_ip(s).unwrap_err().to_string();
            assert!(e.contains(&format!("'{s}'")), "{e}");
        }
        assert!(parse_key("10.0.0.0/33", 64).is_err());
        assert!(parse_net("fe80::/129").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        for bad in ["", "0s", "soon", "-5m", "30"] {
            let e = parse_duration(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("'{bad}'")), "{e}");
        }
    }

    #[test]
    fn deadline_counts_from_the_login_time_but_not_past_now_plus_window() {
        let r = Rules::default();
        let now = 1_000 * MIN;
        // A login ten minutes ago earns twenty more minutes.
        assert_eq!(r.deadline(now - 10 * MIN, now), now + 20 * MIN);
        // A login stamped in the future (skewed clock) earns no more than a full window.
        assert_eq!(r.deadline(now + 60 * MIN, now), now + 30 * MIN);
    }

    #[test]
    fn a_login_older_than_the_window_grants_nothing() {
        let r = Rules::default();
        let now = 1_000 * MIN;
        assert_eq!(
            r.judge(&login("192.0.2.7", None, now - 40 * MIN), now),
            Verdict::Stale
        );
        assert_eq!(
            r.judge(&login("192.0.2.7", None, now - 30 * MIN), now),
            Verdict::Stale,
            "a deadline equal to now has already passed"
        );
        assert!(matches!(
            r.judge(&login("192.0.2.7", None, now - 29 * MIN), now),
            Verdict::Grant { .. }
        ));
    }

    #[test]
    fn deny_wins_over_allow_and_allow_is_static() {
        let r = Rules {
            allow: vec![parse_net("10.0.0.0/8").unwrap()],
            deny: vec![parse_net("10.9.0.0/16").unwrap()],
            ..Rules::default()
        };
        let now = 1_000 * MIN;
        assert_eq!(
            r.judge(&login("10.9.1.1", None, now), now),
            Verdict::DeniedNet(parse_net("10.9.0.0/16").unwrap())
        );
        assert_eq!(
            r.judge(&login("::ffff:10.1.1.1", None, now), now),
            Verdict::Static(parse_net("10.0.0.0/8").unwrap())
        );
    }

    #[test]
    fn users_file_limits_who_gets_a_lease() {
        let users = parse_users("# legacy accounts\nalice\n\n  bob  \n");
        assert_eq!(users.len(), 2);
        let r = Rules {
            users: Some(Arc::new(users)),
            ..Rules::default()
        };
        let now = 1_000 * MIN;
        assert!(matches!(
            r.judge(&login("192.0.2.1", Some("bob"), now), now),
            Verdict::Grant { .. }
        ));
        assert_eq!(
            r.judge(&login("192.0.2.1", Some("carol"), now), now),
            Verdict::DeniedUser
        );
        assert_eq!(
            r.judge(&login("192.0.2.1", None, now), now),
            Verdict::DeniedUser
        );
    }

    #[test]
    fn renewal_extends_and_counts_but_a_late_old_line_never_shortens() {
        let now = 1_000 * MIN;
        let first = login("192.0.2.7", Some("alice"), now);
        let mut lease = Lease::new(lease_key(first.ip, 64), &first, now + 30 * MIN);
        let later = login("192.0.2.7", Some("bob"), now + 5 * MIN);
        lease.renew(&later, now + 35 * MIN);
        assert_eq!(lease.deadline, now + 35 * MIN);
        assert_eq!(lease.user.as_deref(), Some("bob"));
        assert_eq!(lease.logins, 2);
        let old = login("192.0.2.7", Some("carol"), now - MIN);
        lease.renew(&old, now + 29 * MIN);
        assert_eq!(lease.deadline, now + 35 * MIN);
        assert_eq!(lease.user.as_deref(), Some("bob"));
        assert_eq!(lease.first_login, now - MIN);
        assert_eq!(lease.logins, 3);
    }

    #[test]
    fn remaining_time_reads_well() {
        assert_eq!(show_remaining(27 * MIN + 5_000, 0), "27m 5s");
        assert_eq!(show_remaining(40_000, 0), "40s");
        assert_eq!(show_remaining(90 * MIN, 0), "1h 30m");
        assert_eq!(show_remaining(0, 5), "0s");
    }
}
