//! The per-user usage table's records and the `usage` report (pure): who logged in, who
//! relayed through a lease, and the `--users` file of a freeze.
//!
//! A record adds up: counts are sums, first times are minimums and last times maximums, so a
//! batch of uses merges into the stored record the same way whichever host or batch it came
//! from, and every SMTP host's counts add up in one shared table.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::lease::Millis;

/// Whose record: a user name, or for logins without one (the hook without `$USER`, log
/// formats that name none) the address as `list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    User(String),
    Addr(String),
}

impl Subject {
    /// The record's key in a store: `u` or `a`, then the name.
    pub fn key(&self) -> Vec<u8> {
        let (tag, name) = match self {
            Subject::User(u) => (b'u', u),
            Subject::Addr(a) => (b'a', a),
        };
        let mut k = Vec::with_capacity(1 + name.len());
        k.push(tag);
        k.extend_from_slice(name.as_bytes());
        k
    }

    pub fn from_key(k: &[u8]) -> Option<Subject> {
        let (tag, name) = k.split_first()?;
        let name = std::str::from_utf8(name).ok()?.to_string();
        match tag {
            b'u' => Some(Subject::User(name)),
            b'a' => Some(Subject::Addr(name)),
            _ => None,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Subject::User(s) | Subject::Addr(s) => s,
        }
    }
}

/// One user's (or address's) usage, or a batch of it to add to the stored record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(default)]
    pub logins: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_login: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login: Option<Millis>,
    /// Messages relayed through a lease (the Postfix policy service: distinct messages).
    #[serde(default)]
    pub messages: u64,
    /// Their recipients (the Postfix policy service).
    #[serde(default)]
    pub recipients: u64,
    /// Relay checks answered yes through a lease by the socketmap, Exim's `CHECK` and
    /// smtp-wrap, whose questions do not say which message they are for.
    #[serde(default)]
    pub checks: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_relay: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_relay: Option<Millis>,
    /// The address of the latest login or relay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_address: Option<String>,
    /// The last journal round folded into this record (see [`crate::store::usage_journal`]):
    /// a round folded again after a crash adds nothing twice. Not part of the report.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub folded: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn min_opt(a: Option<Millis>, b: Option<Millis>) -> Option<Millis> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

impl Record {
    pub fn login(at: Millis, addr: String) -> Record {
        Record {
            logins: 1,
            first_login: Some(at),
            last_login: Some(at),
            last_address: Some(addr),
            ..Record::default()
        }
    }

    /// One relay: a new message (`message`), a recipient of one (`recipient`), or a check.
    pub fn relay(at: Millis, addr: String, message: bool, recipient: bool) -> Record {
        Record {
            messages: message as u64,
            recipients: recipient as u64,
            checks: (!message && !recipient) as u64,
            first_relay: Some(at),
            last_relay: Some(at),
            last_address: Some(addr),
            ..Record::default()
        }
    }

    /// The latest login or relay.
    pub fn last_active(&self) -> Millis {
        self.last_login
            .unwrap_or(0)
            .max(self.last_relay.unwrap_or(0))
    }

    pub fn relayed(&self) -> bool {
        self.messages + self.checks > 0
    }

    /// Uses (recipients and checks) in this record, as counted when a batch is lost.
    pub fn uses(&self) -> u64 {
        self.recipients + self.checks
    }

    /// Add `other` to this record.
    pub fn merge(&mut self, other: &Record) {
        let newer = other.last_active() >= self.last_active();
        self.logins = self.logins.saturating_add(other.logins);
        self.messages = self.messages.saturating_add(other.messages);
        self.recipients = self.recipients.saturating_add(other.recipients);
        self.checks = self.checks.saturating_add(other.checks);
        self.first_login = min_opt(self.first_login, other.first_login);
        self.first_relay = min_opt(self.first_relay, other.first_relay);
        self.last_login = self.last_login.max(other.last_login);
        self.last_relay = self.last_relay.max(other.last_relay);
        if newer && other.last_address.is_some() {
            self.last_address.clone_from(&other.last_address);
        }
        self.folded = self.folded.max(other.folded);
    }
}

/// A quick hash for the recorder's own maps, which hold a second's subjects or a daemon's
/// connections, not keys an outsider picks at will.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fast;

#[derive(Clone, Copy, Debug, Default)]
pub struct FastHasher(u64);

impl std::hash::BuildHasher for Fast {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

impl FastHasher {
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(w) ^ (rest.len() as u64) << 56);
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    /// The state, mixed so that every input bit reaches the low bits: a hash table picks
    /// the bucket by them, and a multiply alone leaves them depending on the key's first
    /// bytes only (every `u1234...` in a handful of buckets; found profiling the recorder:
    /// 40% of its time was comparing keys). MurmurHash3's finalizer.
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// What one batch adds to a record: [`Record`] without text, so that counting a use
/// allocates nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    pub logins: u64,
    pub messages: u64,
    pub recipients: u64,
    pub checks: u64,
    pub first_login: Option<Millis>,
    pub last_login: Option<Millis>,
    pub first_relay: Option<Millis>,
    pub last_relay: Option<Millis>,
    /// The latest activity's address, and when.
    pub last_addr: Option<(Millis, std::net::IpAddr)>,
}

impl Delta {
    pub fn login(at: Millis, addr: std::net::IpAddr) -> Delta {
        Delta {
            logins: 1,
            first_login: Some(at),
            last_login: Some(at),
            last_addr: Some((at, addr)),
            ..Delta::default()
        }
    }

    /// One relay: a new message (`message`), a recipient of one (`recipient`), or a check.
    pub fn relay(at: Millis, addr: std::net::IpAddr, message: bool, recipient: bool) -> Delta {
        Delta {
            messages: message as u64,
            recipients: recipient as u64,
            checks: (!message && !recipient) as u64,
            first_relay: Some(at),
            last_relay: Some(at),
            last_addr: Some((at, addr)),
            ..Delta::default()
        }
    }

    pub fn merge(&mut self, o: &Delta) {
        self.logins = self.logins.saturating_add(o.logins);
        self.messages = self.messages.saturating_add(o.messages);
        self.recipients = self.recipients.saturating_add(o.recipients);
        self.checks = self.checks.saturating_add(o.checks);
        self.first_login = min_opt(self.first_login, o.first_login);
        self.first_relay = min_opt(self.first_relay, o.first_relay);
        self.last_login = self.last_login.max(o.last_login);
        self.last_relay = self.last_relay.max(o.last_relay);
        if o.last_addr.map(|a| a.0) >= self.last_addr.map(|a| a.0) && o.last_addr.is_some() {
            self.last_addr = o.last_addr;
        }
    }

    pub fn uses(&self) -> u64 {
        self.recipients + self.checks
    }

    pub fn record(&self) -> Record {
        Record {
            logins: self.logins,
            first_login: self.first_login,
            last_login: self.last_login,
            messages: self.messages,
            recipients: self.recipients,
            checks: self.checks,
            first_relay: self.first_relay,
            last_relay: self.last_relay,
            last_address: self.last_addr.map(|(_, a)| a.to_string()),
            folded: 0,
        }
    }
}

/// A batch's counts by subject key, as [`Batch::take`] gives them.
pub type Items = Vec<(Vec<u8>, Delta)>;

/// Counts waiting to be written, merged per subject (by [`Subject::key`]).
#[derive(Debug, Default)]
pub struct Batch {
    map: HashMap<Vec<u8>, Delta, Fast>,
    /// The key being looked up, reused so that adding to a known subject allocates nothing.
    key: Vec<u8>,
}

impl Batch {
    /// Add `d` to the subject `tag` (`b'u'` or `b'a'`) + `name`.
    pub fn add(&mut self, tag: u8, name: &str, d: Delta) {
        self.key.clear();
        self.key.push(tag);
        self.key.extend_from_slice(name.as_bytes());
        self.add_to_key(d);
    }

    /// Add `d` to the address subject of the lease `net` (as [`crate::lease::show_key`]
    /// names it), with no text made on the way.
    pub fn add_addr(&mut self, net: &ipnet::IpNet, d: Delta) {
        self.key.clear();
        self.key.push(b'a');
        crate::lease::put_key(&mut self.key, net);
        self.add_to_key(d);
    }

    fn add_to_key(&mut self, d: Delta) {
        match self.map.get_mut(self.key.as_slice()) {
            Some(old) => old.merge(&d),
            None => {
                self.map.insert(self.key.clone(), d);
            }
        }
    }

    /// Add `d` to the subject [`Self::add`] was last given.
    pub fn add_to_last(&mut self, d: Delta) {
        if let Some(old) = self.map.get_mut(self.key.as_slice()) {
            old.merge(&d);
        }
    }

    pub fn add_subject(&mut self, s: &Subject, d: Delta) {
        match s {
            Subject::User(u) => self.add(b'u', u, d),
            Subject::Addr(a) => self.add(b'a', a, d),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Delta)> {
        self.map.iter()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn get(&self, s: &Subject) -> Option<&Delta> {
        self.map.get(&s.key())
    }

    pub fn remove(&mut self, s: &Subject) -> bool {
        self.map.remove(&s.key()).is_some()
    }

    /// Everything, emptying the batch.
    pub fn take(&mut self) -> Items {
        self.map.drain().collect()
    }

    /// Everything, and the room it took (a large batch that is not refilled at once).
    pub fn take_all(&mut self) -> Items {
        std::mem::take(&mut self.map).into_iter().collect()
    }

    /// Put back what [`Self::take`] gave (a write that failed).
    pub fn put_back(&mut self, items: Items) {
        for (k, d) in items {
            match self.map.get_mut(&k) {
                Some(old) => old.merge(&d),
                None => {
                    self.map.insert(k, d);
                }
            }
        }
    }

    pub fn uses(&self) -> u64 {
        self.map.values().map(Delta::uses).sum()
    }

    /// The batch as records of subjects, for the store.
    pub fn records(items: &[(Vec<u8>, Delta)]) -> Vec<(Subject, Record)> {
        items
            .iter()
            .filter_map(|(k, d)| Some((Subject::from_key(k)?, d.record())))
            .collect()
    }
}

/// One line of the report: a subject and its record, as the control socket carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(flatten)]
    pub record: Record,
}

impl Row {
    pub fn new(subject: Subject, record: Record) -> Row {
        let (user, address) = match subject {
            Subject::User(u) => (Some(u), None),
            Subject::Addr(a) => (None, Some(a)),
        };
        // The journal's bookkeeping is no part of the report.
        Row {
            user,
            address,
            record: Record {
                folded: 0,
                ..record
            },
        }
    }

    pub fn subject(&self) -> Subject {
        match (&self.user, &self.address) {
            (Some(u), _) => Subject::User(u.clone()),
            (None, a) => Subject::Addr(a.clone().unwrap_or_default()),
        }
    }

    /// The name shown: the user, or the address in brackets.
    pub fn shown(&self) -> String {
        match (&self.user, &self.address) {
            (Some(u), _) => u.clone(),
            (None, Some(a)) => format!("[{a}]"),
            (None, None) => "-".into(),
        }
    }
}

/// Stored records and the batch not yet written, merged: what the report shows.
pub fn merged<'a>(
    stored: Vec<(Subject, Record)>,
    pending: impl Iterator<Item = (&'a Vec<u8>, &'a Delta)>,
) -> Vec<Row> {
    let mut all: HashMap<Subject, Record> = stored.into_iter().collect();
    for (k, d) in pending {
        if let Some(s) = Subject::from_key(k) {
            all.entry(s).or_default().merge(&d.record());
        }
    }
    all.into_iter().map(|(s, r)| Row::new(s, r)).collect()
}

/// Most recent relay first; those that never relayed after them, latest login first.
pub fn sort(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        b.record
            .last_relay
            .cmp(&a.record.last_relay)
            .then(b.record.last_login.cmp(&a.record.last_login))
            .then_with(|| a.shown().cmp(&b.shown()))
    });
}

/// Rows active (a login or a relay) at or after `since`, and within the retention.
pub fn active_since(rows: Vec<Row>, since: Option<Millis>, kept_from: Millis) -> Vec<Row> {
    let from = since.unwrap_or(0).max(kept_from);
    rows.into_iter()
        .filter(|r| r.record.last_active() >= from)
        .collect()
}

/// The report for a person: one line per user, most recent relay first.
pub fn render_text(rows: &[Row], time: &dyn Fn(Option<Millis>) -> String) -> String {
    let head = [
        "USER",
        "LOGINS",
        "LAST LOGIN",
        "MESSAGES",
        "RECIPIENTS",
        "CHECKS",
        "LAST RELAY",
        "LAST ADDRESS",
        "",
    ]
    .map(String::from);
    let table: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            let x = &r.record;
            [
                crate::error::one_line(&r.shown()).into_owned(),
                x.logins.to_string(),
                time(x.last_login),
                x.messages.to_string(),
                x.recipients.to_string(),
                x.checks.to_string(),
                time(x.last_relay),
                x.last_address.clone().unwrap_or_else(|| "-".into()),
                if x.relayed() {
                    String::new()
                } else {
                    "never relayed".into()
                },
            ]
        })
        .collect();
    let mut width = [0usize; 9];
    for r in std::iter::once(&head).chain(&table) {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&head).chain(&table) {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(width).enumerate() {
            // Counts line up on the right, text on the left.
            let numeric = matches!(i, 1 | 3 | 4 | 5);
            let _ = if numeric {
                write!(line, "{c:>w$}  ")
            } else {
                write!(line, "{c:<w$}  ")
            };
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if table.is_empty() {
        out.push_str("(no logins recorded)\n");
    } else {
        let never = rows.iter().filter(|r| !r.record.relayed()).count();
        let _ = writeln!(
            out,
            "{} users, {never} of them logged in but never relayed through a lease (they do not need POP-before-SMTP)",
            rows.len()
        );
    }
    out
}

/// One JSON object: `now`, `since` and every row with `never_relayed`.
pub fn render_json(rows: &[Row], now: Millis, since: Option<Millis>) -> String {
    let users: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("never_relayed".into(), (!r.record.relayed()).into());
            }
            v
        })
        .collect();
    serde_json::json!({ "now": now, "since": since, "users": users }).to_string()
}

/// RFC 3339 in UTC, to the second; empty for none.
pub fn utc(ms: Option<Millis>) -> String {
    match ms {
        Some(ms) => {
            let mut v = Vec::with_capacity(20);
            put_utc(&mut v, ms);
            String::from_utf8(v).unwrap_or_default()
        }
        None => String::new(),
    }
}

/// `ms` as RFC 3339 in UTC to the second (`2026-09-21T14:13:20Z`), appended to `out`, with
/// no formatter and no allocation: every audit line shows a login time, and few share one.
///
/// A year past 9999, which RFC 3339 cannot write, is written with its sign as ISO 8601
/// writes expanded years (`+10000-01-01T00:00:00Z`): such a time can only come from a
/// damaged or foreign record, and it is shown, never a reason to stop.
pub fn put_utc(out: &mut Vec<u8>, ms: Millis) {
    let secs = ms / 1000;
    let (days, day_secs) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (the proleptic Gregorian calendar), by eras of
    // 400 years that start on 1 March, so that a leap day ends its year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let two = |v: u64| [b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8];
    if year > 9999 {
        out.push(b'+');
        out.extend_from_slice(year.to_string().as_bytes());
    } else {
        out.extend_from_slice(&two(year / 100));
        out.extend_from_slice(&two(year));
    }
    let [mo0, mo1] = two(month);
    let [d0, d1] = two(day);
    let [h0, h1] = two(day_secs / 3600);
    let [mi0, mi1] = two(day_secs / 60 % 60);
    let [s0, s1] = two(day_secs % 60);
    out.extend_from_slice(&[
        b'-', mo0, mo1, b'-', d0, d1, b'T', h0, h1, b':', mi0, mi1, b':', s0, s1, b'Z',
    ]);
}

/// A CSV field, quoted when it must be (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// CSV with a header line, times in UTC, for spreadsheets.
pub fn render_csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "user,address,logins,first_login,last_login,messages,recipients,checks,first_relay,last_relay,last_address,never_relayed\n",
    );
    for r in rows {
        let x = &r.record;
        let fields = [
            csv_field(r.user.as_deref().unwrap_or("")),
            csv_field(r.address.as_deref().unwrap_or("")),
            x.logins.to_string(),
            utc(x.first_login),
            utc(x.last_login),
            x.messages.to_string(),
            x.recipients.to_string(),
            x.checks.to_string(),
            utc(x.first_relay),
            utc(x.last_relay),
            csv_field(x.last_address.as_deref().unwrap_or("")),
            (!x.relayed()).to_string(),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// Can `user` stand on a line of a `--users` file and be read back as itself?
fn fits_users_file(user: &str) -> bool {
    !user.is_empty()
        && user.trim() == user
        && !user.starts_with('#')
        && !user.chars().any(char::is_control)
}

/// The freeze: a `--users` file listing the users who relayed through a lease since
/// `since`, with comments saying when and how it was made.
pub fn render_users_file(rows: &[Row], now: Millis, since: Option<Millis>, how: &str) -> String {
    let mut users: Vec<&str> = Vec::new();
    let (mut addresses, mut unfit) = (0usize, 0usize);
    for r in rows {
        if !r.record.relayed() || r.record.last_relay < Some(since.unwrap_or(0)) {
            continue;
        }
        match &r.user {
            Some(u) if fits_users_file(u) => users.push(u),
            Some(_) => unfit += 1,
            None => addresses += 1,
        }
    }
    users.sort_unstable();
    users.dedup();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# relaylease --users file: the users who relayed mail through a POP-before-SMTP lease"
    );
    let period = match since {
        Some(s) => format!("since {}", utc(Some(s))),
        None => "in the whole usage table".into(),
    };
    let _ = writeln!(out, "# {period}. Made {} by `{how}`.", utc(Some(now)));
    let _ = writeln!(
        out,
        "# Only these users' logins grant a lease once the daemon runs with --users pointing here"
    );
    let _ = writeln!(out, "# and has re-read it (SIGHUP). {} users.", users.len());
    if addresses > 0 {
        let _ = writeln!(
            out,
            "# {addresses} addresses relayed through leases of logins without a user name; --users refuses those."
        );
    }
    if unfit > 0 {
        let _ = writeln!(
            out,
            "# {unfit} user names cannot be written on a line of this file and are left out."
        );
    }
    for u in users {
        out.push_str(u);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Times read as humantime writes RFC 3339 (what `utc` used until it was written here):
    /// across leap days, centuries, the ends of days and years; and past year 9999, which
    /// humantime refuses, with the year's sign, never a panic.
    #[test]
    fn times_read_as_rfc3339_writes_them_and_far_ones_do_not_stop_anything() {
        let day: Millis = 86_400_000;
        let last = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
        let mut times = vec![0, 999, 1_000, day - 1, last];
        // Every day of 1999-2001 (2000 a leap year), 2099-2101 (2100 not one) and 2399-2401
        // (2400 one), from each 1 January (days since 1970), each at another time of day.
        for start in [10_592u64, 47_117, 156_689] {
            for d in 0..3 * 366 + 1 {
                times.push((start + d) * day + (d * 7_919_000) % day);
            }
        }
        for ms in times {
            let theirs = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
            );
            assert_eq!(utc(Some(ms)), theirs.to_string(), "{ms}");
        }
        assert_eq!(utc(Some(last + 1)), "+10000-01-01T00:00:00Z");
        assert_eq!(
            utc(Some(last + 1 + 59 * day + 3_723_000)),
            "+10000-02-29T01:02:03Z"
        );
        assert_eq!(utc(Some(u64::MAX)), "+584556019-04-03T14:25:51Z");
        assert_eq!(utc(None), "");
    }

    const T: Millis = 1_790_000_000_000;

    fn rec(
        logins: u64,
        last_login: Option<Millis>,
        msgs: u64,
        last_relay: Option<Millis>,
    ) -> Record {
        Record {
            logins,
            first_login: last_login,
            last_login,
            messages: msgs,
            recipients: msgs * 2,
            first_relay: last_relay,
            last_relay,
            last_address: Some("192.0.2.1".into()),
            ..Record::default()
        }
    }

    #[test]
    fn subjects_round_trip_through_their_keys() {
        for s in [
            Subject::User("alice@example.net".into()),
            Subject::User(String::new()),
            Subject::Addr("2001:db8::/64".into()),
        ] {
            assert_eq!(Subject::from_key(&s.key()), Some(s));
        }
        assert_eq!(Subject::from_key(b"xalice"), None);
        assert_eq!(Subject::from_key(b""), None);
        assert_eq!(Subject::from_key(b"u\xff"), None);
    }

    #[test]
    fn records_add_up_whichever_order_the_batches_come_in() {
        let a = Record::login(T, "192.0.2.1".into());
        let b = Record::relay(T + 5, "192.0.2.2".into(), true, true);
        let c = Record::relay(T + 9, "192.0.2.3".into(), false, true);
        let d = Record::relay(T + 2, "192.0.2.4".into(), false, false);
        let mut one = Record::default();
        for r in [&a, &b, &c, &d] {
            one.merge(r);
        }
        let mut other = d.clone();
        for r in [&c, &a, &b] {
            other.merge(r);
        }
        assert_eq!(one, other);
        assert_eq!(
            one,
            Record {
                logins: 1,
                first_login: Some(T),
                last_login: Some(T),
                messages: 1,
                recipients: 2,
                checks: 1,
                first_relay: Some(T + 2),
                last_relay: Some(T + 9),
                last_address: Some("192.0.2.3".into()),
                folded: 0,
            }
        );
        assert!(one.relayed());
        assert_eq!(one.uses(), 3);
        assert!(!a.relayed());
    }

    /// A hash table takes the bucket from the hash's low bits: names that differ only after
    /// their first bytes (`u10000`, `u10001`, ...) must spread over them, not share a few.
    #[test]
    fn subjects_spread_over_a_tables_buckets() {
        use std::hash::BuildHasher;
        let n = 1 << 16;
        let buckets: std::collections::HashSet<u64> = (0..n)
            .map(|i| Fast.hash_one(format!("u{}", 100_000 + i).into_bytes()) & (n - 1))
            .collect();
        // Random hashes fill 63% of as many buckets as keys (1 - 1/e).
        assert!(
            buckets.len() as u64 > n * 58 / 100,
            "{} of {n} buckets used",
            buckets.len()
        );
    }

    #[test]
    fn a_batch_adds_up_like_records_do() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let mut b = Batch::default();
        b.add(b'u', "alice", Delta::login(T, ip("192.0.2.1")));
        b.add(
            b'u',
            "alice",
            Delta::relay(T + 9, ip("192.0.2.3"), true, true),
        );
        b.add(
            b'u',
            "alice",
            Delta::relay(T + 5, ip("192.0.2.2"), false, true),
        );
        b.add(
            b'a',
            "192.0.2.9",
            Delta::relay(T, ip("192.0.2.9"), false, false),
        );
        assert_eq!((b.len(), b.uses()), (2, 3));
        let mut want = Record::login(T, "192.0.2.1".into());
        want.merge(&Record::relay(T + 9, "192.0.2.3".into(), true, true));
        want.merge(&Record::relay(T + 5, "192.0.2.2".into(), false, true));
        assert_eq!(
            b.get(&Subject::User("alice".into())).map(Delta::record),
            Some(want)
        );
        let items = b.take();
        assert!(b.is_empty());
        let records = Batch::records(&items);
        assert_eq!(records.len(), 2);
        b.put_back(items);
        assert!(b.remove(&Subject::Addr("192.0.2.9".into())));
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn a_stored_record_reads_back_and_older_fields_default() {
        let r = rec(3, Some(T), 2, Some(T + 1));
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), r);
        let bare: Record = serde_json::from_str(r#"{"logins":2}"#).unwrap();
        assert_eq!((bare.logins, bare.last_relay), (2, None));
    }

    #[test]
    fn the_report_puts_the_latest_relay_first_and_marks_who_never_relayed() {
        let mut rows = vec![
            Row::new(Subject::User("bob".into()), rec(4, Some(T + 50), 0, None)),
            Row::new(
                Subject::User("alice".into()),
                rec(2, Some(T), 3, Some(T + 10)),
            ),
            Row::new(
                Subject::Addr("192.0.2.9".into()),
                rec(1, Some(T), 1, Some(T + 20)),
            ),
            Row::new(Subject::User("old".into()), rec(1, Some(T - 100), 0, None)),
        ];
        sort(&mut rows);
        let order: Vec<String> = rows.iter().map(Row::shown).collect();
        assert_eq!(order, ["[192.0.2.9]", "alice", "bob", "old"]);
        let text = render_text(&rows, &|t| {
            t.map_or("-".into(), |t| (t as i64 - T as i64).to_string())
        });
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("USER "), "{text}");
        assert!(
            lines[3].starts_with("bob ") && lines[3].ends_with("never relayed"),
            "{text}"
        );
        assert!(!lines[2].contains("never relayed"), "{text}");
        assert!(
            text.contains("4 users, 2 of them logged in but never relayed"),
            "{text}"
        );
        // Filtered by activity since a time, and by retention.
        let recent = active_since(rows.clone(), Some(T + 15), 0);
        assert_eq!(recent.len(), 2, "bob's login and the address's relay");
        assert_eq!(active_since(rows, None, T).len(), 3);
    }

    #[test]
    fn json_and_csv_carry_every_field() {
        let rows = vec![
            Row::new(
                Subject::User("a,\"b\"".into()),
                rec(2, Some(T), 1, Some(T + 1000)),
            ),
            Row::new(Subject::Addr("192.0.2.9".into()), rec(1, Some(T), 0, None)),
        ];
        let v: serde_json::Value =
            serde_json::from_str(&render_json(&rows, T + 5, Some(T))).unwrap();
        assert_eq!(v["now"], T + 5);
        assert_eq!(v["users"][0]["user"], "a,\"b\"");
        assert_eq!(v["users"][0]["recipients"], 2);
        assert_eq!(v["users"][0]["never_relayed"], false);
        assert_eq!(v["users"][1]["address"], "192.0.2.9");
        assert_eq!(v["users"][1]["never_relayed"], true);
        let back: Row = serde_json::from_value(v["users"][0].clone()).unwrap();
        assert_eq!(back, rows[0]);
        let csv = render_csv(&rows);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("\"a,\"\"b\"\"\",,2,"), "{csv}");
        assert!(lines[1].contains(",2026-09-21T"), "{csv}");
        assert!(
            lines[2].starts_with(",192.0.2.9,1,") && lines[2].ends_with(",true"),
            "{csv}"
        );
    }

    #[test]
    fn the_users_file_lists_who_relayed_in_the_period_and_reads_back() {
        let rows = vec![
            Row::new(
                Subject::User("alice".into()),
                rec(2, Some(T), 3, Some(T + 10)),
            ),
            Row::new(
                Subject::User("carol".into()),
                rec(2, Some(T), 3, Some(T - 10)),
            ),
            Row::new(Subject::User("bob".into()), rec(4, Some(T + 50), 0, None)),
            Row::new(Subject::User("#x".into()), rec(1, Some(T), 1, Some(T + 10))),
            Row::new(
                Subject::Addr("192.0.2.9".into()),
                rec(1, Some(T), 1, Some(T + 20)),
            ),
        ];
        let text = render_users_file(
            &rows,
            T + 60,
            Some(T),
            "relaylease usage --since 180d --users-file",
        );
        let users = crate::lease::parse_users(&text);
        assert_eq!(users, ["alice".to_string()].into_iter().collect());
        assert!(text.contains("--since 180d --users-file"), "{text}");
        assert!(text.contains("1 addresses relayed"), "{text}");
        assert!(text.contains("1 user names cannot be written"), "{text}");
        assert!(
            text.lines().all(|l| l == "alice" || l.starts_with("# ")),
            "{text}"
        );
    }
}
