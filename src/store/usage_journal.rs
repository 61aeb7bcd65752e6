//! The usage table's journal: each second's counts appended to a file with one write and one
//! `fdatasync`, so that the crash bound holds without rewriting every user's record each
//! second; the recorder folds a round of them into sled's records later, a few at a time.
//!
//! A round is one file, `usage-journal.ROUND` in the database directory. Its records in sled
//! carry the round that last wrote them ([`crate::usage::table::Record::folded`]), so a round
//! folded again after a crash (part of it written, its file not yet removed) adds nothing
//! twice. Entries are `[length u32][crc32 u32][payload]`; a torn or damaged entry ends what
//! is read of its file (a crash mid-write loses that entry only, which was never acknowledged
//! to anyone: counts are not).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::lease::Millis;
use crate::usage::table::{Batch, Delta, Items};

const PREFIX: &str = "usage-journal.";
/// An entry longer than this is taken as damage, not allocated.
const MAX_ENTRY: usize = 1 << 30;

/// One round read back from its file: its counts merged per subject.
#[derive(Debug)]
pub struct Round {
    pub round: u64,
    pub items: Items,
}

pub struct Journal {
    dir: PathBuf,
    /// The round being appended to.
    round: u64,
    file: Option<File>,
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        n |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

fn bytes<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if b.len() < n {
        return None;
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Some(head)
}

/// A time as its distance past `base` (0 for none).
fn put_time(out: &mut Vec<u8>, t: Option<Millis>, base: Millis) {
    put_varint(out, t.map_or(0, |t| t - base + 1));
}

fn time(b: &mut &[u8], base: Millis) -> Option<Option<Millis>> {
    match varint(b)? {
        0 => Some(None),
        n => Some(Some(base.checked_add(n - 1)?)),
    }
}

fn times(d: &Delta) -> [Option<Millis>; 5] {
    [
        d.first_login,
        d.last_login,
        d.first_relay,
        d.last_relay,
        d.last_addr.map(|(t, _)| t),
    ]
}

/// The payload of one entry (pure): the earliest time in it, then each subject's key and
/// counts, times as distances past that earliest one.
pub fn encode(items: &[(Vec<u8>, Delta)]) -> Vec<u8> {
    let base = items
        .iter()
        .flat_map(|(_, d)| times(d))
        .flatten()
        .min()
        .unwrap_or(0);
    let mut out = Vec::with_capacity(16 + items.len() * 32);
    put_varint(&mut out, base);
    put_varint(&mut out, items.len() as u64);
    for (key, d) in items {
        put_varint(&mut out, key.len() as u64);
        out.extend_from_slice(key);
        for n in [d.logins, d.messages, d.recipients, d.checks] {
            put_varint(&mut out, n);
        }
        for t in [d.first_login, d.last_login, d.first_relay, d.last_relay] {
            put_time(&mut out, t, base);
        }
        match d.last_addr {
            None => out.push(0),
            Some((t, IpAddr::V4(a))) => {
                out.push(4);
                put_time(&mut out, Some(t), base);
                out.extend_from_slice(&a.octets());
            }
            Some((t, IpAddr::V6(a))) => {
                out.push(6);
                put_time(&mut out, Some(t), base);
                out.extend_from_slice(&a.octets());
            }
        }
    }
    out
}

/// What [`encode`] wrote, or None for anything else.
pub fn decode(mut b: &[u8]) -> Option<Items> {
    let b = &mut b;
    let base = varint(b)?;
    let n = varint(b)?;
    // Each item takes at least 10 bytes: no count can ask for more room than the entry has.
    let mut items = Vec::with_capacity((n as usize).min(b.len() / 10));
    for _ in 0..n {
        let len = varint(b)? as usize;
        let key = bytes(b, len)?.to_vec();
        let mut d = Delta {
            logins: varint(b)?,
            messages: varint(b)?,
            recipients: varint(b)?,
            checks: varint(b)?,
            first_login: time(b, base)?,
            last_login: time(b, base)?,
            first_relay: time(b, base)?,
            last_relay: time(b, base)?,
            last_addr: None,
        };
        let (&tag, rest) = b.split_first()?;
        *b = rest;
        d.last_addr = match tag {
            0 => None,
            4 => {
                let t = time(b, base)??;
                let o: [u8; 4] = bytes(b, 4)?.try_into().ok()?;
                Some((t, IpAddr::from(o)))
            }
            6 => {
                let t = time(b, base)??;
                let o: [u8; 16] = bytes(b, 16)?.try_into().ok()?;
                Some((t, IpAddr::from(o)))
            }
            _ => return None,
        };
        items.push((key, d));
    }
    b.is_empty().then_some(items)
}

/// One entry as the file holds it.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The entries of a file's bytes, merged per subject, and whether the file ended in a torn
/// or damaged entry (where reading stopped).
pub fn read_entries(mut b: &[u8]) -> (Items, bool) {
    let mut merged = Batch::default();
    loop {
        if b.is_empty() {
            return (merged.take_all(), false);
        }
        let Some(items) = next_entry(&mut b) else {
            return (merged.take_all(), true);
        };
        merged.put_back(items);
    }
}

fn next_entry(b: &mut &[u8]) -> Option<Items> {
    let head = bytes(b, 8)?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[4..].try_into().ok()?);
    if len > MAX_ENTRY {
        return None;
    }
    let payload = bytes(b, len)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    decode(payload)
}

fn round_of(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?.parse().ok()
}

impl Journal {
    /// The journal in `dir`, and the rounds its files hold, oldest first. New counts go to a
    /// round after both those and `after` (the last round folded, as the table records it).
    pub fn open(dir: &Path, after: u64) -> Result<(Journal, Vec<Round>)> {
        let list = std::fs::read_dir(dir).map_err(|e| Error::io("read", dir, e))?;
        let mut rounds = Vec::new();
        for entry in list {
            let entry = entry.map_err(|e| Error::io("read", dir, e))?;
            if let Some(r) = entry.file_name().to_str().and_then(round_of) {
                rounds.push(r);
            }
        }
        rounds.sort_unstable();
        let mut out = Vec::with_capacity(rounds.len());
        for &round in &rounds {
            let path = Self::path_in(dir, round);
            let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
            let (items, torn) = read_entries(&bytes);
            if torn {
                tracing::warn!(file = %path.display(), "usage journal: the file ends in a torn or damaged entry (a crash while it was written): the counts before it are kept");
            }
            out.push(Round { round, items });
        }
        let last = rounds.last().copied().unwrap_or(0).max(after);
        let journal = Journal {
            dir: dir.to_path_buf(),
            round: last + 1,
            file: None,
        };
        Ok((journal, out))
    }

    fn path_in(dir: &Path, round: u64) -> PathBuf {
        dir.join(format!("{PREFIX}{round}"))
    }

    pub fn path(&self, round: u64) -> PathBuf {
        Self::path_in(&self.dir, round)
    }

    /// The round new counts go to.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// Append `items` to the current round and make them durable.
    pub fn append(&mut self, items: &[(Vec<u8>, Delta)]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let path = self.path(self.round);
        let file = match &mut self.file {
            Some(f) => f,
            none => {
                let f = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&path)
                    .map_err(|e| Error::io("create", &path, e))?;
                // The new name must survive a crash too.
                File::open(&self.dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| Error::io("sync", &self.dir, e))?;
                none.insert(f)
            }
        };
        let entry = frame(&encode(items));
        let r = file.write_all(&entry).and_then(|()| file.sync_data());
        if let Err(e) = r {
            // What part of the entry reached the file is torn: a new file for what follows.
            self.file = None;
            self.round += 1;
            return Err(Error::io("write", &path, e));
        }
        Ok(())
    }

    /// Close the current round (to be folded) and start the next; the round closed.
    pub fn rotate(&mut self) -> u64 {
        self.file = None;
        self.round += 1;
        self.round - 1
    }

    /// A round folded and flushed: its file goes.
    pub fn remove(&self, round: u64) -> Result<()> {
        let path = self.path(round);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", &path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Millis = 1_790_000_000_000;

    fn sample() -> Items {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let mut relay = Delta::relay(T + 40, v6, true, true);
        relay.merge(&Delta::relay(T + 90, v4, false, true));
        vec![
            (b"ualice".to_vec(), Delta::login(T + 5, v4)),
            (b"a192.0.2.0/24".to_vec(), relay),
            (b"u".to_vec(), Delta::default()),
        ]
    }

    #[test]
    fn counts_come_back_as_they_were_written() {
        let items = sample();
        assert_eq!(decode(&encode(&items)), Some(items));
        assert_eq!(decode(&encode(&[])), Some(vec![]));
    }

    #[test]
    fn a_payload_cut_short_or_with_bytes_after_it_is_refused() {
        let p = encode(&sample());
        for cut in 0..p.len() {
            assert_eq!(decode(&p[..cut]), None, "cut at {cut}");
        }
        let mut longer = p.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None);
    }

    #[test]
    fn reading_stops_at_a_torn_or_damaged_entry_and_keeps_what_came_before() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let one = frame(&encode(&[(b"ualice".to_vec(), Delta::login(T, v4))]));
        let two = frame(&encode(&[(b"ualice".to_vec(), Delta::login(T + 9, v4))]));
        let whole = [one.clone(), two.clone()].concat();
        let (items, torn) = read_entries(&whole);
        assert!(!torn);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].1.logins, 2);
        assert_eq!(items[0].1.last_login, Some(T + 9));
        for cut in one.len() + 1..whole.len() {
            let (items, torn) = read_entries(&whole[..cut]);
            assert!(torn, "cut at {cut}");
            assert_eq!(items[0].1.logins, 1, "cut at {cut}");
        }
        let mut flipped = whole.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let (items, torn) = read_entries(&flipped);
        assert!(torn);
        assert_eq!(items[0].1.logins, 1);
    }

    #[test]
    fn rounds_survive_a_reopen_and_new_counts_go_to_a_later_round() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, old) = Journal::open(dir.path(), 0).unwrap();
        assert!(old.is_empty());
        assert_eq!(j.round(), 1);
        j.append(&sample()).unwrap();
        assert_eq!(j.rotate(), 1);
        j.append(&sample()).unwrap();
        j.append(&[]).unwrap();
        drop(j);
        let (j, rounds) = Journal::open(dir.path(), 0).unwrap();
        let got: Vec<(u64, usize)> = rounds.iter().map(|r| (r.round, r.items.len())).collect();
        assert_eq!(got, [(1, 3), (2, 3)]);
        assert_eq!(j.round(), 3);
        j.remove(1).unwrap();
        j.remove(1).unwrap();
        let (j, rounds) = Journal::open(dir.path(), 7).unwrap();
        assert_eq!(rounds.len(), 1);
        assert_eq!(j.round(), 8, "after the last round the table folded");
    }
}
