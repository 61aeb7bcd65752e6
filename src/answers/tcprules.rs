//! tcpserver's rules cdb: the administrator's tcprules text plus one allow rule per lease.
//!
//! Everything here was checked against Debian's ucspi-tcp-ipv6 (1:0.88-7), not its manual
//! alone; the tests run the real `tcprules` and `tcprulescheck`.
//!
//! # What tcprules writes
//!
//! One cdb record per address (a range line gives several), in file order:
//!
//! - key: the text before the first `:` that is followed by `allow` or `deny`, byte for byte
//!   (leading and inner spaces kept: ` 1.2.3.4:allow` has the key ` 1.2.3.4`);
//! - data: `D\0` for `deny`, nothing for `allow`, then `+NAME=VALUE\0` for each variable.
//!
//! After `allow`/`deny` come `,NAME=` and a value between two copies of one delimiter byte:
//! `X="a b"`, `X=/a"b/` and `X=vav` (value `a`) are all valid. There are no escapes, and an
//! unquoted `X=value` is not a plain value: `v` is its delimiter and the line fails. A name is
//! everything up to the next `=`, so `,,Y="2"` sets a variable named `,Y`. Trailing spaces and
//! tabs are ignored, a carriage return is not. Lines that are empty or start with `#` are
//! skipped; ` # note` (leading space) and a line of blanks are not comments.
//!
//! Ranges: in a key without `=` or `@`, the first `-` must sit between two (possibly empty)
//! decimal numbers, the left one after a `.` or at the start, the right one before a `.` or at
//! the end: `1.2.3.37-53`, `10.2-3.`, `-5` (= `0-5`). Each number from left to right, stopping
//! at 255, replaces the range: `250-260` gives 250..=255, `5-3` gives nothing, leading zeros
//! disappear (`04-05` gives `4`, `5`). Only the first `-` counts: `1.2-3.4-5` gives `1.2.4-5`
//! and `1.3.4-5`. Numbers wrap like C's unsigned long.
//!
//! tcprules loops forever (it never exits) on a line with no `:allow`/`:deny`, including a
//! line of blanks, ` # note`, `1.2.3.4: allow` and `:ALLOW`; [`parse_rules`] rejects those.
//! It also refuses CR line ends, which [`parse_rules`] refuses too rather than guess.
//!
//! # How tcpserver looks a client up
//!
//! `TCPREMOTEIP` is the text [`tcpremoteip`] returns. With TCPREMOTEINFO and TCPREMOTEHOST
//! unset, tcpserver tries the whole string, then every shorter prefix that ends in `.` or `:`
//! (longest first), then the empty key; the first record found for a key wins. With them set it
//! tries `INFO@IP` first and `=HOST` right after the whole address, before the prefixes.
//!
//! IPv4 is dotted decimal. IPv6 is lower-case hex without leading zeros in which the longest
//! run of zero groups, even a single one, becomes `::` (the first run when two are equally
//! long): `2001:db8:0:1:2:3:4:5` is `2001:db8::1:2:3:4:5`, not RFC 5952's form. An IPv4-mapped
//! client is written as plain IPv4, except under `tcpserver -6`, which writes `::ffff:1.2.3.4`
//! and then looks rules up under that string (the manual says otherwise; it is wrong).
//! Lease keys here assume tcpserver runs without `-6`.
//!
//! # How a lease becomes keys
//!
//! See [`lease_keys`]. An IPv6 prefix can only be matched group by group, and a `::` in the
//! address text hides how many zero groups it stands for, so some prefixes cannot be written
//! exactly; the keys then cover part of the prefix and never anything outside it.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::answers::cdb;
use crate::error::Error;
use crate::lease::{put_decimal, put_hex_group};

/// What tcpserver does with a matching client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Allow,
    Deny,
}

/// One cdb record: a key and what tcpserver does for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// An address, an address prefix ending in `.` or `:`, `=host`, `info@address`, or empty.
    pub key: Vec<u8>,
    pub access: Access,
    /// Variables tcpserver sets, in order: (name, value).
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Rule {
    /// The record's data as tcprules encodes it.
    pub fn data(&self) -> Vec<u8> {
        let mut d = Vec::new();
        if self.access == Access::Deny {
            d.extend_from_slice(b"D\0");
        }
        for (name, value) in &self.env {
            d.push(b'+');
            d.extend_from_slice(name);
            d.push(b'=');
            d.extend_from_slice(value);
            d.push(0);
        }
        d
    }

    /// A tcprules line that compiles to exactly this record, or an error when none does
    /// (a key tcprules would split, expand as a range or read as a comment; a newline).
    pub fn to_line(&self) -> Result<Vec<u8>, Error> {
        let mut line = self.key.clone();
        line.extend_from_slice(match self.access {
            Access::Allow => b":allow",
            Access::Deny => b":deny",
        });
        for (name, value) in &self.env {
            let delim = b"\"'/|%!^~"
                .iter()
                .copied()
                .find(|d| !value.contains(d))
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "no delimiter available for the value '{}'",
                        String::from_utf8_lossy(value)
                    ))
                })?;
            line.push(b',');
            line.extend_from_slice(name);
            line.push(b'=');
            line.push(delim);
            line.extend_from_slice(value);
            line.push(delim);
        }
        // Check by parsing it back: the cheapest proof that tcprules reads the same record.
        match parse_line(&line, 1) {
            _ if line.contains(&b'\n') => Err(Error::invalid(format!(
                "a tcprules rule cannot contain a newline: '{}'",
                String::from_utf8_lossy(&line)
            ))),
            Ok(back) if back.len() == 1 && back[0] == *self => Ok(line),
            _ => Err(Error::invalid(format!(
                "no tcprules line means the rule '{}'",
                String::from_utf8_lossy(&line)
            ))),
        }
    }
}

/// Parse tcprules text into the records tcprules would write, in its order. The error names
/// the 1-based line and its text.
pub fn parse_rules(text: &[u8]) -> Result<Vec<Rule>, Error> {
    let mut rules = Vec::new();
    let mut lines = text.split(|&b| b == b'\n').enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        // The empty piece after a final newline is not a line.
        if line.is_empty() && lines.peek().is_none() {
            break;
        }
        rules.extend(parse_line(line, i + 1)?);
    }
    Ok(rules)
}

fn bad(lineno: usize, line: &[u8], why: &str) -> Error {
    Error::invalid(format!(
        "rules line {lineno}: {why}: '{}'",
        String::from_utf8_lossy(line)
    ))
}

/// One line of tcprules text: no records for a comment or an empty line, several for a range.
fn parse_line(line: &[u8], lineno: usize) -> Result<Vec<Rule>, Error> {
    if line.is_empty() || line[0] == b'#' {
        return Ok(Vec::new());
    }
    if line.contains(&0) {
        return Err(bad(lineno, line, "NUL byte in the line"));
    }
    if line.contains(&b'\r') {
        return Err(bad(
            lineno,
            line,
            "carriage return (tcprules refuses CRLF files)",
        ));
    }
    // tcprules splits at the first ':' that is followed by an instruction.
    let (split, access) = (0..line.len())
        .find_map(|i| {
            let rest = line[i..].strip_prefix(b":")?;
            if rest.starts_with(b"allow") {
                Some((i, Access::Allow))
            } else if rest.starts_with(b"deny") {
                Some((i, Access::Deny))
            } else {
                None
            }
        })
        .ok_or_else(|| {
            bad(
                lineno,
                line,
                "expected ADDRESS:allow or ADDRESS:deny (tcprules would hang on this line)",
            )
        })?;
    let key = &line[..split];
    let word = match access {
        Access::Allow => "allow".len(),
        Access::Deny => "deny".len(),
    };
    let mut rest = &line[split + 1 + word..];
    while let Some((&last, init)) = rest.split_last() {
        if last != b' ' && last != b'\t' {
            break;
        }
        rest = init;
    }
    let mut env = Vec::new();
    while !rest.is_empty() {
        let r = rest
            .strip_prefix(b",")
            .ok_or_else(|| bad(lineno, line, "expected ',' or the end of the line"))?;
        let eq = r
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad(lineno, line, "expected NAME=\"VALUE\" after ','"))?;
        let name = &r[..eq];
        let after = &r[eq + 1..];
        let (&delim, after) = after
            .split_first()
            .ok_or_else(|| bad(lineno, line, "a value needs a delimiter, as in X=\"value\""))?;
        let close = after.iter().position(|&b| b == delim).ok_or_else(|| {
            bad(
                lineno,
                line,
                &format!(
                    "value of '{}' has no closing '{}' (there are no escapes)",
                    String::from_utf8_lossy(name),
                    delim as char
                ),
            )
        })?;
        env.push((name.to_vec(), after[..close].to_vec()));
        rest = &after[close + 1..];
    }
    let keys = expand_range(key).map_err(|why| bad(lineno, line, why))?;
    Ok(keys
        .into_iter()
        .map(|key| Rule {
            key,
            access,
            env: env.clone(),
        })
        .collect())
}

/// tcprules' address ranges; see the module documentation for the exact rule.
fn expand_range(key: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    let dash = match key.iter().position(|&b| b == b'-') {
        Some(d) if !key.contains(&b'=') && !key.contains(&b'@') => d,
        _ => return Ok(vec![key.to_vec()]),
    };
    let mut left = dash;
    while left > 0 && key[left - 1].is_ascii_digit() {
        left -= 1;
    }
    if left > 0 && key[left - 1] != b'.' {
        return Err("a range's first number must follow a '.' or start the address");
    }
    let mut right = dash + 1;
    while right < key.len() && key[right].is_ascii_digit() {
        right += 1;
    }
    if right < key.len() && key[right] != b'.' {
        return Err("a range's last number must be followed by a '.' or end the address");
    }
    let number = |digits: &[u8]| {
        digits.iter().fold(0u64, |n, &d| {
            n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'))
        })
    };
    let (from, to) = (number(&key[left..dash]), number(&key[dash + 1..right]));
    Ok((from..=to.min(255))
        .map(|n| {
            let mut k = key[..left].to_vec();
            k.extend_from_slice(n.to_string().as_bytes());
            k.extend_from_slice(&key[right..]);
            k
        })
        .collect())
}

/// The `TCPREMOTEIP` tcpserver (without `-6`) sets for a client, which is also the string its
/// rule lookup starts from. See the module documentation for the IPv6 form.
pub fn tcpremoteip(ip: IpAddr) -> String {
    match crate::lease::canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => v6_text(&v6.segments()),
    }
}

/// Hex groups, with the longest run of zero groups (the first of equals; even one group)
/// written as `::`: the form ucspi-tcp-ipv6 prints.
fn v6_text(groups: &[u16; 8]) -> String {
    let (mut best, mut best_len) = (0, 0);
    let mut i = 0;
    while i < 8 {
        let start = i;
        while i < 8 && groups[i] == 0 {
            i += 1;
        }
        if i - start > best_len {
            (best, best_len) = (start, i - start);
        }
        i += 1;
    }
    let hex = |gs: &[u16]| {
        gs.iter()
            .map(|g| format!("{g:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    if best_len == 0 {
        hex(groups)
    } else {
        format!(
            "{}::{}",
            hex(&groups[..best]),
            hex(&groups[best + best_len..])
        )
    }
}

/// The key tcpserver finds for a client whose `TCPREMOTEIP` is `remote_ip`, and its data,
/// following the walk in the module documentation (address rules only: no `INFO@` or `=HOST`).
pub fn lookup<'c, 'i>(cdb: &'c [u8], remote_ip: &'i str) -> Option<(&'i str, &'c [u8])> {
    let candidates = std::iter::once(remote_ip.len())
        .chain(
            remote_ip
                .char_indices()
                .rev()
                .filter(|&(i, c)| (c == '.' || c == ':') && i + 1 < remote_ip.len())
                .map(|(i, _)| i + 1),
        )
        .chain(std::iter::once(0));
    candidates
        .map(|len| &remote_ip[..len])
        .find_map(|key| cdb::get(cdb, key.as_bytes()).map(|data| (key, data)))
}

/// The keys written for one lease, and whether they reach every address in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseKeys {
    /// In ascending address order.
    pub keys: Vec<String>,
    /// False when some addresses in the lease cannot be matched by any key that matches
    /// nothing outside it (see [`lease_keys`]); the caller should say so once.
    pub complete: bool,
}

/// How a lease is written for tcpserver.
///
/// - IPv4 `/32`: the address, `192.0.2.7`. A shorter IPv4 prefix becomes one `a.b.c.` key per
///   whole-octet prefix inside it (a `/23` gives two `/24` keys), which tcpserver's walk
///   matches for every address in it.
/// - IPv6 `/128`: the address as tcpserver writes it ([`tcpremoteip`]), unless that text ends
///   in `::` (`2001:db8:1::`): tcpserver would also take it as a prefix of `2001:db8:1::5`, so
///   such an address gets no key and `complete == false`.
/// - An IPv6 prefix: for every whole-group prefix `g0:…:gn-1` inside it (a `/56` gives 256
///   `/64`s, a `/64` one), the key `g0:…:gn-1:` — it matches exactly the addresses whose text
///   shows those n groups — and, when gn-1 is zero and gn-2 is not, the key `g0:…:gn-2::`,
///   which matches exactly the addresses whose `::` starts at group n-1. An address whose `::`
///   starts earlier (possible only when one of g0..gn-2 is zero) cannot be matched: its text
///   `2001:db8::5:…` does not tell how many zero groups `::` stands for, so a key for it would
///   also let in `2001:db8:0:0:5:…`. Those leases have `complete == false`; addresses in them
///   whose zero run is elsewhere still match, and nothing outside the lease ever does.
///   For example `2001:db8:0:5::/64` is incomplete: `2001:db8:0:5:a:b:c:d` is written
///   `2001:db8::5:a:b:c:d` and tcpserver cannot tell it from `2001:db8:0:0:5:…`.
///
/// An IPv4-mapped IPv6 network is its IPv4 network. A `/0` is refused: its key would be the
/// empty key, which is every client of either family.
pub fn lease_keys(net: &IpNet) -> Result<LeaseKeys, Error> {
    let mut keys = Vec::new();
    let complete = each_key(net, &mut Vec::new(), &mut |k| {
        keys.push(String::from_utf8_lossy(k).into_owned())
    })?;
    Ok(LeaseKeys { keys, complete })
}

/// [`lease_keys`] without the allocations: each key is handed to `f` in turn, built in
/// `buf`. Returns `complete`. The tcprules rebuild calls this for every lease.
fn each_key(net: &IpNet, buf: &mut Vec<u8>, f: &mut dyn FnMut(&[u8])) -> Result<bool, Error> {
    match *net {
        IpNet::V4(n) => v4_keys(n, buf, f),
        IpNet::V6(n) => match n.addr().to_ipv4_mapped() {
            Some(v4) if n.prefix_len() >= 96 => {
                let n4 = Ipv4Net::new(v4, n.prefix_len() - 96)
                    .map_err(|_| Error::invalid(format!("invalid lease {net}")))?;
                v4_keys(n4, buf, f)
            }
            _ => v6_keys(n, buf, f),
        },
    }
}

fn refuse_everything(net: &IpNet) -> Error {
    Error::invalid(format!(
        "refusing a tcprules lease for {net}: it would let every client relay"
    ))
}

fn v4_keys(net: Ipv4Net, buf: &mut Vec<u8>, f: &mut dyn FnMut(&[u8])) -> Result<bool, Error> {
    let net = net.trunc();
    let p = net.prefix_len();
    if p == 0 {
        return Err(refuse_everything(&IpNet::V4(net)));
    }
    let whole = p.div_ceil(8) * 8;
    let base = u32::from(net.network());
    let step = 1u64 << (32 - whole);
    let count = 1u64 << (whole - p);
    for i in 0..count {
        let o = Ipv4Addr::from((u64::from(base) + i * step) as u32).octets();
        buf.clear();
        for (j, &octet) in o[..usize::from(whole / 8)].iter().enumerate() {
            if j > 0 {
                buf.push(b'.');
            }
            put_decimal(buf, octet);
        }
        if whole < 32 {
            buf.push(b'.');
        }
        f(buf);
    }
    Ok(true)
}

fn v6_keys(net: Ipv6Net, buf: &mut Vec<u8>, f: &mut dyn FnMut(&[u8])) -> Result<bool, Error> {
    let net = net.trunc();
    let p = net.prefix_len();
    if p == 0 {
        return Err(refuse_everything(&IpNet::V6(net)));
    }
    let whole = p.div_ceil(16) * 16;
    let base = u128::from(net.network());
    let count = 1u128 << (whole - p);
    let step = if whole == 128 {
        1
    } else {
        1u128 << (128 - whole)
    };
    let n = usize::from(whole / 16);
    let mut complete = true;
    let hex = |buf: &mut Vec<u8>, gs: &[u16]| {
        for &g in gs {
            put_hex_group(buf, g);
            buf.push(b':');
        }
    };
    for i in 0..count {
        let g = Ipv6Addr::from(base + i * step).segments();
        if n == 8 {
            let text = v6_text(&g);
            // `2001:db8:1::` as a key is also a prefix of `2001:db8:1::5`, so an address
            // written with a trailing `::` cannot be leased alone.
            if text.ends_with(':') {
                complete = false;
            } else {
                f(text.as_bytes());
            }
            continue;
        }
        buf.clear();
        hex(buf, &g[..n]);
        f(buf);
        if g[n - 1] == 0 && (n == 1 || g[n - 2] != 0) {
            buf.clear();
            hex(buf, &g[..n - 1]);
            buf.extend_from_slice(if n == 1 { b"::" } else { b":" });
            f(buf);
        }
        if g[..n - 1].contains(&0) {
            complete = false;
        }
    }
    Ok(complete)
}

/// The rules leases add to `base`: `KEY:allow` with `env` (`RELAYCLIENT=""` when `env` is
/// empty) for every key of every lease, skipping a key `base` or an earlier lease already has.
/// A static rule for the same key therefore wins; a static rule for a shorter prefix (such as
/// `:deny`) does not, since tcpserver tries the longest key first.
pub fn lease_rules(
    base: &[Rule],
    leases: &[IpNet],
    env: &[(String, String)],
) -> Result<Vec<Rule>, Error> {
    let env = lease_env(env)?;
    let mut seen: HashSet<Vec<u8>> = base.iter().map(|r| r.key.clone()).collect();
    let mut added = Vec::new();
    let mut buf = Vec::new();
    for net in leases {
        let mut keys = Vec::new();
        each_key(net, &mut buf, &mut |k| keys.push(k.to_vec()))?;
        for key in keys {
            if seen.insert(key.clone()) {
                added.push(Rule {
                    key,
                    access: Access::Allow,
                    env: env.clone(),
                });
            }
        }
    }
    Ok(added)
}

/// A variable tcpserver sets: (name, value).
type Var = (Vec<u8>, Vec<u8>);

/// The variables a lease sets: `env` checked, or `RELAYCLIENT=""` when it is empty.
fn lease_env(env: &[(String, String)]) -> Result<Vec<Var>, Error> {
    if env.is_empty() {
        return Ok(vec![(b"RELAYCLIENT".to_vec(), Vec::new())]);
    }
    env.iter()
        .map(|(n, v)| check_var(n, v).map(|()| (n.as_bytes().to_vec(), v.as_bytes().to_vec())))
        .collect()
}

/// A variable tcpserver can set and tcprules can write: `NAME=` would end the name early, NUL
/// would end the entry, a newline would end the line.
fn check_var(name: &str, value: &str) -> Result<(), Error> {
    let bad = |why: &str| Error::invalid(format!("invalid variable {name}={value:?}: {why}"));
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    if name.contains(['=', '\0', '\n', ',']) {
        return Err(bad("the name may not contain '=', ',', NUL or a newline"));
    }
    if value.contains(['\0', '\n']) {
        return Err(bad("the value may not contain NUL or a newline"));
    }
    Ok(())
}

/// The cdb tcpserver reads: `base` as written, then [`lease_rules`]. Byte for byte what
/// `tcprules` writes for the base text followed by those rules' lines.
///
/// Runs on every change to the leased set, so it makes the records straight into the cdb:
/// no [`Rule`] per lease, and the keys already written serve as the set of keys seen.
pub fn build_rules(
    base: &[Rule],
    leases: &[IpNet],
    env: &[(String, String)],
) -> Result<Vec<u8>, Error> {
    build_rules_marked(base, leases, env, &[])
}

/// [`build_rules`] where the lease `leases[i]` also sets `TCPREMOTEINFO` to `marks[i]` when
/// that is `Some` (`--mark-header`: qmail-smtpd writes it into its Received header).
pub fn build_rules_marked(
    base: &[Rule],
    leases: &[IpNet],
    env: &[(String, String)],
    marks: &[Option<String>],
) -> Result<Vec<u8>, Error> {
    let data = Rule {
        key: Vec::new(),
        access: Access::Allow,
        env: lease_env(env)?,
    }
    .data();
    // Most leases are one key of at most 15 (IPv4) or 20 (IPv6 /64) bytes.
    let records = base.len() + leases.len();
    let mut cdb = cdb::Builder::with_capacity(records, 2048 + records * (8 + 20 + 16 + data.len()));
    let mut seen = KeySet::with_capacity(records);
    for r in base {
        let pos = cdb.push(&r.key, &r.data())?;
        seen.insert_new(&cdb, &r.key, pos);
    }
    let mut buf = Vec::with_capacity(64);
    let mut failed = None;
    let mut marked = Vec::new();
    for (i, net) in leases.iter().enumerate() {
        let data = match marks.get(i) {
            Some(Some(info)) => {
                check_var("TCPREMOTEINFO", info)?;
                marked.clear();
                marked.extend_from_slice(&data);
                marked.extend_from_slice(b"+TCPREMOTEINFO=");
                marked.extend_from_slice(info.as_bytes());
                marked.push(0);
                &marked
            }
            _ => &data,
        };
        each_key(net, &mut buf, &mut |key| {
            if failed.is_some() {
                return;
            }
            let h = cdb::hash(key);
            if seen.contains(&cdb, key, h) {
                return;
            }
            match cdb.push(key, data) {
                Ok(pos) => seen.insert(h, pos),
                Err(e) => failed = Some(e),
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(cdb.finish())
}

/// The keys already in a [`cdb::Builder`], by record position: an open-addressing table of
/// `(cdb hash, position)` whose keys are read back from the builder, so no key is copied.
struct KeySet {
    slots: Vec<(u32, u32)>,
    len: usize,
}

/// Marks an empty slot; no record starts at 0 (the header is there).
const EMPTY: u32 = 0;

impl KeySet {
    fn with_capacity(n: usize) -> KeySet {
        KeySet {
            slots: vec![(0, EMPTY); (n * 2).next_power_of_two().max(16)],
            len: 0,
        }
    }

    fn home(&self, h: u32) -> usize {
        // The cdb hash's low byte picks the cdb table; mix so the slot uses every bit.
        (h.wrapping_mul(0x9e37_79b1).rotate_left(16) as usize) & (self.slots.len() - 1)
    }

    fn contains(&self, cdb: &cdb::Builder, key: &[u8], h: u32) -> bool {
        let mask = self.slots.len() - 1;
        let mut at = self.home(h);
        loop {
            let (sh, pos) = self.slots[at];
            if pos == EMPTY {
                return false;
            }
            if sh == h && cdb.key_at(pos) == key {
                return true;
            }
            at = (at + 1) & mask;
        }
    }

    /// Add a key known not to be in the set yet.
    fn insert(&mut self, h: u32, pos: u32) {
        if (self.len + 1) * 2 > self.slots.len() {
            let old = std::mem::take(&mut self.slots);
            self.slots = vec![(0, EMPTY); old.len() * 2];
            self.len = 0;
            for (oh, opos) in old {
                if opos != EMPTY {
                    self.insert(oh, opos);
                }
            }
        }
        let mask = self.slots.len() - 1;
        let mut at = self.home(h);
        while self.slots[at].1 != EMPTY {
            at = (at + 1) & mask;
        }
        self.slots[at] = (h, pos);
        self.len += 1;
    }

    /// Add a key unless an equal one is there (base rules may repeat a key).
    fn insert_new(&mut self, cdb: &cdb::Builder, key: &[u8], pos: u32) {
        let h = cdb::hash(key);
        if !self.contains(cdb, key, h) {
            self.insert(h, pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// Start one of the ucspi-tcp tools; these tests compare with them, so a missing tool is a
    /// failure, never a skip.
    fn spawn(cmd: &mut Command, name: &str) -> Child {
        match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot run `{name}` ({e}): these tests compare with the real ucspi-tcp tools; \
                 install them (Debian: apt-get install ucspi-tcp-ipv6)"
            ),
        }
    }

    /// Wait up to `limit`; `None` (after killing it) when the child is still running.
    fn wait_for(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait for child") {
                return Some(status);
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Run the real `tcprules out.cdb out.tmp < text`: the cdb's bytes, or its complaint.
    fn real_tcprules(text: &[u8]) -> Result<Vec<u8>, String> {
        let dir = tempfile::tempdir().unwrap();
        let (cdb, tmp) = (dir.path().join("out.cdb"), dir.path().join("out.tmp"));
        let mut child = spawn(
            Command::new("tcprules")
                .arg(&cdb)
                .arg(&tmp)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
            "tcprules",
        );
        child.stdin.take().unwrap().write_all(text).unwrap();
        let status = wait_for(&mut child, Duration::from_secs(20)).ok_or("tcprules hung")?;
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        if status.success() {
            Ok(std::fs::read(&cdb).unwrap())
        } else {
            Err(format!("{status}: {err}"))
        }
    }

    /// What `tcprulescheck` says about a client with this TCPREMOTEIP (this build reads the
    /// address from the environment; the manual's argument form is ignored).
    fn real_check(cdb_path: &std::path::Path, remote_ip: &str) -> String {
        let out = spawn(
            Command::new("tcprulescheck")
                .arg(cdb_path)
                .env("TCPREMOTEIP", remote_ip)
                .env_remove("TCPREMOTEINFO")
                .env_remove("TCPREMOTEHOST")
                .stdin(Stdio::null())
                .stdout(Stdio::piped()),
            "tcprulescheck",
        )
        .wait_with_output()
        .unwrap();
        assert!(out.status.success(), "tcprulescheck failed: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn records(rules: &[Rule]) -> Vec<(String, String)> {
        rules
            .iter()
            .map(|r| {
                (
                    String::from_utf8_lossy(&r.key).into_owned(),
                    String::from_utf8_lossy(&r.data()).into_owned(),
                )
            })
            .collect()
    }

    fn build_base(rules: &[Rule]) -> Vec<u8> {
        build_rules(rules, &[], &[]).unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    /// Lines tcprules accepts, each with the records it wrote for it (read back from its cdb).
    const ACCEPTED: &[(&str, &[(&str, &str)])] = &[
        (
            "127.:allow,RELAYCLIENT=\"\"",
            &[("127.", "+RELAYCLIENT=\0")],
        ),
        ("=host.example:deny", &[("=host.example", "D\0")]),
        (":deny,X=\"y\"", &[("", "D\0+X=y\0")]),
        (":allow,X=\"a:b\"", &[("", "+X=a:b\0")]),
        (":allow,X=:a:", &[("", "+X=a\0")]),
        (":allow,X=vav", &[("", "+X=a\0")]),
        (":allow,X=\"a,b\",Y=\"c\"", &[("", "+X=a,b\0+Y=c\0")]),
        (":allow,=\"\"", &[("", "+=\0")]),
        (
            "1.2.3.4:allow,X=\":deny,Y=:\"",
            &[("1.2.3.4", "+X=:deny,Y=:\0")],
        ),
        (
            "1.2.3.4:allow,X=\"1\",,Y=\"2\"",
            &[("1.2.3.4", "+X=1\0+,Y=2\0")],
        ),
        ("1.2.3.4:allow, X=\"1\"", &[("1.2.3.4", "+ X=1\0")]),
        ("1.2.3.4:allow,X =\"1\"", &[("1.2.3.4", "+X =1\0")]),
        ("1.2.3.4:allow,X===", &[("1.2.3.4", "+X=\0")]),
        (
            "1.2.3.4:allow,X=,a,,Y=\"1\"",
            &[("1.2.3.4", "+X=a\0+Y=1\0")],
        ),
        ("1.2.3.4:allow,X=, ,", &[("1.2.3.4", "+X= \0")]),
        ("1.2.3.4:allow,X=\"1\"\t \t", &[("1.2.3.4", "+X=1\0")]),
        ("1.2.3.4:deny  ", &[("1.2.3.4", "D\0")]),
        (" 1.2.3.4:allow", &[(" 1.2.3.4", "")]),
        ("1.2.3.4 :allow", &[("1.2.3.4 ", "")]),
        ("a:b:c:deny", &[("a:b:c", "D\0")]),
        ("::allow", &[(":", "")]),
        (":::allow", &[("::", "")]),
        ("::1:allow,A=\"x\",B=/y/", &[("::1", "+A=x\0+B=y\0")]),
        ("2001:db8:1:2::allow", &[("2001:db8:1:2:", "")]),
        ("joe@1.2.3.4-5:allow", &[("joe@1.2.3.4-5", "")]),
        ("=host-name.example:deny", &[("=host-name.example", "D\0")]),
        ("x=1-2:allow", &[("x=1-2", "")]),
        (
            "1.2.3.37-40:allow",
            &[
                ("1.2.3.37", ""),
                ("1.2.3.38", ""),
                ("1.2.3.39", ""),
                ("1.2.3.40", ""),
            ],
        ),
        (
            "10.2-3.:allow,X=\"1\"",
            &[("10.2.", "+X=1\0"), ("10.3.", "+X=1\0")],
        ),
        ("1-2.3.4.5:allow", &[("1.3.4.5", ""), ("2.3.4.5", "")]),
        ("1.2-3.4-5:allow", &[("1.2.4-5", ""), ("1.3.4-5", "")]),
        ("1.2.5-3:allow", &[]),
        ("1.2.3.5-:allow", &[]),
        (
            "1.2.3.-2:deny",
            &[("1.2.3.0", "D\0"), ("1.2.3.1", "D\0"), ("1.2.3.2", "D\0")],
        ),
        ("1.2.3.04-05:allow", &[("1.2.3.4", ""), ("1.2.3.5", "")]),
        ("-:allow", &[("0", "")]),
        (".1-2:allow", &[(".1", ""), (".2", "")]),
        ("a.1-2:allow", &[("a.1", ""), ("a.2", "")]),
        (
            "1.2.3.1-3.4:allow",
            &[("1.2.3.1.4", ""), ("1.2.3.2.4", ""), ("1.2.3.3.4", "")],
        ),
        (
            "1.2.3.253-260:allow",
            &[("1.2.3.253", ""), ("1.2.3.254", ""), ("1.2.3.255", "")],
        ),
        ("1.2.3.256-300:allow", &[]),
        (
            "1.2.3.254-18446744073709551871:allow",
            &[("1.2.3.254", ""), ("1.2.3.255", "")],
        ),
        ("1.2.3.200-18446744073709551616:allow", &[]),
        ("#1.2.3.4:allow", &[]),
        ("#", &[]),
        ("", &[]),
        (":allow", &[("", "")]),
    ];

    /// Lines tcprules refuses with "unable to parse this line".
    const REFUSED: &[&str] = &[
        ":allow,",
        ":allow,X",
        ":allow,X=",
        ":allow,X=\"abc",
        ":allow,X=value",
        ":allow,X=\"a\\\"b\"",
        ":allow,X=\"a\"junk",
        ":allow,X=\"a\"Y=\"b\"",
        ":allow,X=Y=\"1\"",
        ":allowx",
        ":denyx",
        ":deny,allow",
        "1:deny:allow,X=\"1\"",
        "1:allowed:allow",
        "1.2.3.4:allow#x",
        "1.2.3.4:allow\r",
        "1.2.3.4:allow,X= a ",
        "1.2.3.4:allow,X=\"1\" ,Y=\"2\"",
        "1.2.3.5-x:allow",
        "host-name.example:deny",
        "a:1-3:allow",
        "1.a-2:allow",
        "1.2.3.1-2-3:allow",
        "1.2.3.1--3:allow",
        " 1-2:allow",
        "1-2 :allow",
        "2001:db8::1-3:allow",
    ];

    /// Lines on which tcprules never exits.
    const HANG: &[&str] = &[
        ":foo",
        ":ALLOW",
        "nocolon",
        " # comment",
        "   ",
        "\t",
        "1.2.3.4: allow",
        "1.2.3.4:",
        "1.2.3.4:X=\"1\",allow",
    ];

    #[test]
    fn parse_gives_the_records_tcprules_writes() {
        for (line, want) in ACCEPTED {
            let got = parse_rules(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(k, d)| (k.to_string(), d.to_string()))
                .collect();
            assert_eq!(records(&got), want, "{line}");
        }
    }

    #[test]
    fn every_accepted_line_compiles_to_the_same_bytes_as_real_tcprules() {
        let text: String = ACCEPTED.iter().map(|(l, _)| format!("{l}\n")).collect();
        let ours = build_base(&parse_rules(text.as_bytes()).unwrap());
        assert_eq!(ours, real_tcprules(text.as_bytes()).unwrap());
        // The last line may lack its newline.
        let text = "1.2.3.4:allow\n5.6.7.8:deny";
        let ours = build_base(&parse_rules(text.as_bytes()).unwrap());
        assert_eq!(ours, real_tcprules(text.as_bytes()).unwrap());
        assert_eq!(parse_rules(text.as_bytes()).unwrap().len(), 2);
    }

    #[test]
    fn refused_lines_are_refused_by_both_with_line_number_and_text() {
        for line in REFUSED {
            let text = format!("127.:allow\n{line}\n:deny\n");
            let e = parse_rules(text.as_bytes()).unwrap_err();
            assert!(matches!(e, Error::Invalid(_)));
            let msg = e.to_string();
            assert!(msg.starts_with("rules line 2: "), "{line}: {msg}");
            assert!(msg.ends_with(&format!("'{line}'")), "{line}: {msg}");
            let real = real_tcprules(text.as_bytes());
            assert!(
                matches!(&real, Err(e) if e.contains("unable to parse this line")),
                "{line}: tcprules said {real:?}"
            );
        }
    }

    #[test]
    fn lines_that_hang_tcprules_are_refused() {
        for line in HANG {
            let e = parse_rules(format!("{line}\n").as_bytes())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("rules line 1: expected ADDRESS:allow"),
                "{line}: {e}"
            );
            assert!(e.contains("would hang"), "{e}");
        }
        // Start them all at once so the suite waits one second, not one per line.
        let dir = tempfile::tempdir().unwrap();
        let mut children: Vec<(&str, Child)> = HANG
            .iter()
            .enumerate()
            .map(|(i, line)| {
                let mut child = spawn(
                    Command::new("tcprules")
                        .arg(dir.path().join(format!("{i}.cdb")))
                        .arg(dir.path().join(format!("{i}.tmp")))
                        .stdin(Stdio::piped())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null()),
                    "tcprules",
                );
                let mut stdin = child.stdin.take().unwrap();
                stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
                (*line, child)
            })
            .collect();
        std::thread::sleep(Duration::from_secs(1));
        for (line, child) in &mut children {
            let status = wait_for(child, Duration::ZERO);
            assert!(status.is_none(), "tcprules exited ({status:?}) on {line:?}");
        }
    }

    #[test]
    fn nul_bytes_are_refused() {
        let e = parse_rules(b"1.2.3.4:allow,X=\"a\0b\"\n").unwrap_err();
        assert!(e.to_string().contains("rules line 1: NUL"), "{e}");
    }

    /// The administrator's rules used with leases below.
    const BASE: &str = "# relay for the LAN and this host
127.:allow,RELAYCLIENT=\"\"
10.0.0.1-50:allow,RELAYCLIENT=\"\"
10.2-3.:allow,RELAYCLIENT=\"\",TCPREMOTEHOST=/lan/
=spammer.example:deny
joe@192.0.2.9:allow,RELAYCLIENT=\"\"
192.0.2.66:deny
192.0.2.77:allow,X=vav,Y=:a\"b:,Z=\"\"   
2001:db8:ffff::allow,RELAYCLIENT=\"\"
::1:allow,RELAYCLIENT=\"\"

:allow
";

    /// A mix of lease shapes: IPv4 hosts, complete and incomplete /64s, a /56, /128s,
    /// duplicates and keys the base file already has.
    fn many_leases(n: usize) -> Vec<IpNet> {
        let mut v = Vec::new();
        for i in 0..n {
            let x = i as u32;
            v.push(match i % 10 {
                0..=4 => IpNet::from(IpAddr::from(Ipv4Addr::from(0xc633_6400 + x))),
                5 => net(&format!("2001:db8:{:x}:{:x}::/64", x % 7, x)),
                6 => net(&format!("2001:db8:1:{:x}:{:x}::1/128", x, x % 3)),
                7 => net(&format!("2001:db8:0:{:x}::/64", x % 50)),
                8 => net("192.0.2.66/32"),
                _ => net(&format!("2001:db8:{:x}:{:x}00::/56", x % 3, x % 2)),
            });
        }
        v
    }

    fn equivalent_text(base: &[Rule], leases: &[IpNet], env: &[(String, String)]) -> Vec<u8> {
        let mut text = BASE.as_bytes().to_vec();
        for rule in lease_rules(base, leases, env).unwrap() {
            text.extend(rule.to_line().unwrap());
            text.push(b'\n');
        }
        text
    }

    #[test]
    fn leases_compile_to_the_same_bytes_as_real_tcprules() {
        let base = parse_rules(BASE.as_bytes()).unwrap();
        for n in [0, 1, 1000] {
            let leases = many_leases(n);
            let ours = build_rules(&base, &leases, &[]).unwrap();
            let text = equivalent_text(&base, &leases, &[]);
            let real = real_tcprules(&text).unwrap();
            assert_eq!(ours.len(), real.len(), "{n} leases");
            assert!(ours == real, "{n} leases: bytes differ");
        }
        let env = vec![
            ("RELAYCLIENT".to_string(), "@relay.example".to_string()),
            (
                "QMAILQUEUE".to_string(),
                "/usr/lib/\"quoted\"/queue".to_string(),
            ),
        ];
        let leases = many_leases(20);
        let ours = build_rules(&base, &leases, &env).unwrap();
        assert_eq!(
            ours,
            real_tcprules(&equivalent_text(&base, &leases, &env)).unwrap()
        );
    }

    #[test]
    fn build_rules_writes_exactly_base_then_lease_rules() {
        // Overlapping leases, a lease key the base already has, repeated base keys, every
        // key shape: the single-pass rebuild must equal the two-step definition.
        let base =
            parse_rules(b"10.0.1.:deny\n10.0.1.:allow\n192.0.2.7:allow,X=\"1\"\n:deny\n").unwrap();
        let leases: Vec<IpNet> = [
            "10.0.0.0/23",
            "10.0.1.0/24",
            "192.0.2.7/32",
            "192.0.2.8/32",
            "192.0.2.8/32",
            "2001:db8:1::/64",
            "2001:db8::/56",
            "2001:db8:0:5::/64",
            "2001:db8::5/128",
            "2001:db8:1::/128",
            "::ffff:198.51.100.0/120",
            "10.0.0.0/9",
        ]
        .iter()
        .map(|s| net(s))
        .chain(many_leases(300))
        .collect();
        for env in [vec![], vec![("RELAYCLIENT".to_string(), "@x".to_string())]] {
            let added = lease_rules(&base, &leases, &env).unwrap();
            let datas: Vec<(Vec<u8>, Vec<u8>)> = base
                .iter()
                .chain(&added)
                .map(|r| (r.key.clone(), r.data()))
                .collect();
            let records: Vec<(&[u8], &[u8])> = datas
                .iter()
                .map(|(k, d)| (k.as_slice(), d.as_slice()))
                .collect();
            assert_eq!(
                build_rules(&base, &leases, &env).unwrap(),
                cdb::build(&records).unwrap()
            );
        }
        assert!(build_rules(&[], &[net("0.0.0.0/0")], &[]).is_err());
        let bad_env = [("A=B".to_string(), String::new())];
        assert!(build_rules(&[], &leases, &bad_env).is_err());
    }

    #[test]
    fn lease_lines_read_as_expected() {
        let rules = lease_rules(&[], &[net("192.0.2.7/32"), net("2001:db8:1::/64")], &[]).unwrap();
        let lines: Vec<String> = rules
            .iter()
            .map(|r| String::from_utf8(r.to_line().unwrap()).unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                "192.0.2.7:allow,RELAYCLIENT=\"\"",
                "2001:db8:1:0::allow,RELAYCLIENT=\"\"",
                "2001:db8:1:::allow,RELAYCLIENT=\"\"",
            ]
        );
    }

    #[test]
    fn bad_variables_are_refused() {
        for (n, v) in [
            ("", "x"),
            ("A=B", ""),
            ("A", "a\nb"),
            ("A\0", ""),
            ("A,B", ""),
        ] {
            let env = vec![(n.to_string(), v.to_string())];
            let e = lease_rules(&[], &[net("192.0.2.7/32")], &env).unwrap_err();
            assert!(e.to_string().contains("invalid variable"), "{e}");
        }
    }

    #[test]
    fn to_line_refuses_rules_tcprules_cannot_express() {
        let rule = |key: &str| Rule {
            key: key.as_bytes().to_vec(),
            access: Access::Allow,
            env: vec![],
        };
        for key in ["#x", "1.2-3", "a:allow", "a\nb", "10.0.0.1-2"] {
            assert!(rule(key).to_line().is_err(), "{key:?}");
        }
        // A value holding the usual quote gets another delimiter.
        let r = Rule {
            env: vec![(b"X".to_vec(), b"say \"hi\"".to_vec())],
            ..rule("=host.example")
        };
        assert_eq!(r.to_line().unwrap(), b"=host.example:allow,X='say \"hi\"'");
    }

    /// What real tcpserver set as TCPREMOTEIP for these client addresses (run in a network
    /// namespace with local routes, one connection per address, while writing this module).
    const OBSERVED_TCPREMOTEIP: &[(&str, &str)] = &[
        ("2001:db8::1", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"),
        ("2001:db8:0:0:1:2:3:4", "2001:db8::1:2:3:4"),
        ("2001:db8:1:0:0:1:0:0", "2001:db8:1::1:0:0"),
        ("2001:db8:0:1:2:3:4:5", "2001:db8::1:2:3:4:5"),
        ("2001:db8:aBcD:0:0:0:0:0", "2001:db8:abcd::"),
        ("2001:db8:0001:0:0:0:0:1", "2001:db8:1::1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6"),
        ("2001:db8:0:0:1:1:0:0", "2001:db8::1:1:0:0"),
        ("2001:db8:0:1:1:0:0:0", "2001:db8:0:1:1::"),
        ("2001:db8:1:0:1:0:1:0", "2001:db8:1::1:0:1:0"),
        ("1:0:1:1:1:1:1:0", "1::1:1:1:1:1:0"),
        ("1:0:0:1:0:0:0:0", "1:0:0:1::"),
        ("::1.2.3.4", "::102:304"),
        ("::ffff:0:1.2.3.4", "::ffff:0:102:304"),
        ("64:ff9b::1.2.3.4", "64:ff9b::102:304"),
        ("0:1:2:3:4:5:6:7", "::1:2:3:4:5:6:7"),
        ("0:1:0:0:0:0:0:0", "0:1::"),
        ("0:0:0:0:1:0:0:0", "::1:0:0:0"),
        ("::2", "::2"),
        ("127.0.0.1", "127.0.0.1"),
        // An IPv4 client of tcpserver's dual-stack socket.
        ("::ffff:127.0.0.1", "127.0.0.1"),
    ];

    #[test]
    fn tcpremoteip_matches_what_tcpserver_sets() {
        for (addr, shown) in OBSERVED_TCPREMOTEIP {
            let ip: IpAddr = addr.parse().unwrap();
            assert_eq!(tcpremoteip(ip), *shown, "{addr}");
        }
        assert_eq!(tcpremoteip("::".parse().unwrap()), "::");
        assert_eq!(tcpremoteip("::1".parse().unwrap()), "::1");
    }

    #[test]
    fn lease_keys_per_shape() {
        let keys = |s: &str| lease_keys(&net(s)).unwrap();
        let k = |v: &[&str], complete| LeaseKeys {
            keys: v.iter().map(|s| s.to_string()).collect(),
            complete,
        };
        assert_eq!(keys("192.0.2.7/32"), k(&["192.0.2.7"], true));
        assert_eq!(keys("10.1.0.0/16"), k(&["10.1."], true));
        assert_eq!(keys("10.0.0.0/23"), k(&["10.0.0.", "10.0.1."], true));
        assert_eq!(keys("192.0.2.6/31"), k(&["192.0.2.6", "192.0.2.7"], true));
        assert_eq!(keys("::ffff:192.0.2.7/128"), k(&["192.0.2.7"], true));
        assert_eq!(keys("2001:db8:1:2::9/128"), k(&["2001:db8:1:2::9"], true));
        // Its text would also be a prefix of 2001:db8:abcd::1, so it gets no key at all.
        assert_eq!(keys("2001:db8:abcd::/128"), k(&[], false));
        assert_eq!(keys("2001:db8:1:2::/64"), k(&["2001:db8:1:2:"], true));
        assert_eq!(
            keys("2001:db8:1::/64"),
            k(&["2001:db8:1:0:", "2001:db8:1::"], true)
        );
        assert_eq!(keys("2001:db8:0:5::/64"), k(&["2001:db8:0:5:"], false));
        assert_eq!(keys("2001:db8::/64"), k(&["2001:db8:0:0:"], false));
        assert_eq!(keys("2001:db8::/32"), k(&["2001:db8:"], true));
        assert_eq!(keys("::/16"), k(&["0:", "::"], true));
        let slash56 = keys("2001:db8:1:200::/56");
        assert_eq!(slash56.keys.len(), 256);
        assert_eq!(slash56.keys[0], "2001:db8:1:200:");
        assert_eq!(slash56.keys[255], "2001:db8:1:2ff:");
        let slash120 = keys("2001:db8::100/120");
        assert_eq!(slash120.keys.len(), 256);
        assert_eq!(slash120.keys[0], "2001:db8::100");
        for everyone in ["0.0.0.0/0", "::/0"] {
            let e = lease_keys(&net(everyone)).unwrap_err().to_string();
            assert!(e.contains("every client"), "{e}");
        }
    }

    /// (client address, whether tcpserver should give it the lease's RELAYCLIENT)
    const V6_CLIENTS: &[(&str, bool)] = &[
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", true),
        ("2001:db8:1:2::1", true),
        ("2001:db8:1:2::", true),
        ("2001:db8:1:3::1", false),
        // 2001:db8:1::/64 is written two ways; both reach it.
        ("2001:db8:1:0:a:b:c:d", true),
        ("2001:db8:1:0:a:0:0:d", true),
        ("2001:db8:1::1", true),
        ("2001:db8:1::", true),
        // In the incomplete 2001:db8:0:5::/64 only addresses whose '::' comes later match.
        ("2001:db8:0:5::1", true),
        ("2001:db8:0:5:a:0:0:d", true),
        ("2001:db8:0:5:a:b:c:d", false),
        // ...and its neighbours never do.
        ("2001:db8:0:0:5:a:b:c", false),
        ("2001:db8:0:6::1", false),
        ("2001:db8:7::9", true),
        ("2001:db8:7::8", false),
        ("::ffff:192.0.2.7", true),
        ("192.0.2.7", true),
        ("192.0.2.8", false),
        ("192.0.2.66", false),
    ];

    #[test]
    fn tcprulescheck_finds_leases_and_only_leases() {
        let base = parse_rules(BASE.as_bytes()).unwrap();
        let leases = [
            net("2001:db8:1:2::/64"),
            net("2001:db8:1::/64"),
            net("2001:db8:0:5::/64"),
            net("2001:db8:7::9/128"),
            net("192.0.2.7/32"),
            net("192.0.2.66/32"),
        ];
        let cdb = build_rules(&base, &leases, &[]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.cdb");
        std::fs::write(&path, &cdb).unwrap();
        for (client, leased) in V6_CLIENTS {
            let ip = tcpremoteip(client.parse().unwrap());
            let said = real_check(&path, &ip);
            if *leased {
                assert!(said.starts_with("rule "), "{client}: {said}");
                assert!(
                    said.ends_with(":\nset environment variable RELAYCLIENT=\nallow connection\n"),
                    "{client} ({ip}): {said}"
                );
            } else {
                assert!(!said.contains("RELAYCLIENT"), "{client} ({ip}): {said}");
            }
        }
        assert_eq!(
            real_check(&path, "192.0.2.7"),
            "rule 192.0.2.7:\nset environment variable RELAYCLIENT=\nallow connection\n"
        );
        assert_eq!(real_check(&path, "192.0.2.8"), "rule :\nallow connection\n");
        // The static deny for the same key wins, and the lease adds no second record for it.
        assert_eq!(
            real_check(&path, "192.0.2.66"),
            "rule 192.0.2.66:\ndeny connection\n"
        );
        let added = lease_rules(&base, &leases, &[]).unwrap();
        assert!(added.iter().all(|r| r.key != b"192.0.2.66"));
        assert_eq!(
            lookup(&cdb, "192.0.2.66"),
            Some(("192.0.2.66", &b"D\0"[..]))
        );
    }

    /// A small deterministic generator, so the sampled addresses are the same on every run.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        /// A group that is often zero or small, so zero runs and '::' turn up everywhere.
        fn group(&mut self) -> u16 {
            match self.next() % 6 {
                0..=2 => 0,
                3 => 1,
                4 => 0xdb8,
                _ => self.next() as u16,
            }
        }
        fn v6(&mut self) -> Ipv6Addr {
            let mut g = [0u16; 8];
            g.iter_mut().for_each(|x| *x = self.group());
            Ipv6Addr::from(g)
        }
        /// An address in `net` with a random tail.
        fn inside(&mut self, net: &Ipv6Net) -> Ipv6Addr {
            let host = u128::from(self.v6()) & u128::from(net.hostmask());
            Ipv6Addr::from(u128::from(net.network()) | host)
        }
    }

    #[test]
    fn lookup_agrees_with_tcprulescheck() {
        let base = parse_rules(BASE.as_bytes()).unwrap();
        let leases = many_leases(200);
        let cdb = build_rules(&base, &leases, &[]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.cdb");
        std::fs::write(&path, &cdb).unwrap();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut clients: Vec<String> = (0..150).map(|_| tcpremoteip(rng.v6().into())).collect();
        for l in leases.iter().take(100) {
            if let IpNet::V6(n) = l {
                clients.push(tcpremoteip(rng.inside(n).into()));
            }
        }
        clients.extend(
            [
                "10.0.0.7",
                "10.3.9.9",
                "127.0.0.1",
                "::1",
                "198.51.100.4",
                "9.9.9.9",
            ]
            .map(String::from),
        );
        for ip in &clients {
            let said = real_check(&path, ip);
            let want = match lookup(&cdb, ip) {
                None => "default:\n".to_string(),
                Some((key, _)) => format!("rule {key}:\n"),
            };
            assert!(
                said.starts_with(&want),
                "{ip}: we found {want:?}, tcprulescheck said {said:?}"
            );
        }
    }

    /// Never a lease key outside its lease; every address of a complete lease.
    #[test]
    fn lease_keys_are_sound_and_complete_where_they_say_so() {
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let mut incomplete = 0;
        for _ in 0..1500 {
            // Prefix lengths whose enumeration stays small.
            let len = match rng.next() % 4 {
                0 => 64,
                1 => (rng.next() % 8 + 1) as u8 * 16,
                2 => (rng.next() % 8) as u8 * 16 + 8 + (rng.next() % 8) as u8,
                _ => 128,
            };
            let lease = Ipv6Net::new(rng.v6(), len.clamp(1, 128)).unwrap().trunc();
            let keys = lease_keys(&IpNet::V6(lease)).unwrap();
            incomplete += usize::from(!keys.complete);
            let cdb = build_rules(&[], &[IpNet::V6(lease)], &[]).unwrap();
            for i in 0..40 {
                let addr = if i % 2 == 0 {
                    rng.inside(&lease)
                } else {
                    rng.v6()
                };
                let found = lookup(&cdb, &tcpremoteip(addr.into())).is_some();
                let inside = lease.contains(&addr);
                assert!(!found || inside, "{addr} is outside {lease} but matched");
                assert!(
                    !keys.complete || found == inside,
                    "{addr} in {lease} not matched"
                );
            }
        }
        assert!(
            incomplete > 100,
            "the sample should exercise incomplete leases too"
        );
    }
}
