//! A writer (and a small reader) for D. J. Bernstein's constant database, the file tcpserver reads.
//!
//! The layout, as cdbmake and tcprules write it:
//!
//! - a 2048-byte header: 256 pairs of little-endian u32 `(table position, table slots)`;
//! - the records in the order given: `klen` u32, `dlen` u32, key bytes, data bytes;
//! - 256 hash tables, one after another. Table `h & 255` holds `2 * n` slots for its `n`
//!   records; a slot is `(hash, record position)`, `(0, 0)` when empty. A record goes into the
//!   first free slot from `(h >> 8) % slots` on, wrapping, taking records in file order.
//!
//! Because records are placed in file order, a reader that probes from the same slot meets an
//! earlier record with the same key first: with duplicate keys, the first one wins.
//!
//! Every position is a u32, so a cdb cannot exceed 4 GiB; [`planned_size`] checks that from the
//! record lengths alone, before anything is allocated.

use crate::error::Error;

/// The largest cdb: every position, including the end of the last table, must fit in a u32.
pub const MAX_SIZE: u64 = u32::MAX as u64;

const HEADER: u64 = 2048;
/// Per record: `klen` and `dlen`.
const RECORD_HEAD: u64 = 8;
/// Per record: two hash-table slots of 8 bytes each.
const SLOTS_PER_RECORD: u64 = 16;

/// The cdb hash: `h = 5381; h = ((h << 5) + h) ^ c` over the key bytes, in u32 arithmetic.
pub fn hash(key: &[u8]) -> u32 {
    key.iter()
        .fold(5381u32, |h, &c| (h << 5).wrapping_add(h) ^ u32::from(c))
}

/// The size in bytes of a cdb holding records of these `(key length, data length)`, or an
/// error when it would not fit in [`MAX_SIZE`]. Lengths are u64 so that tests can ask about
/// sizes no test could allocate.
pub fn planned_size<I>(lens: I) -> Result<u64, Error>
where
    I: IntoIterator<Item = (u64, u64)>,
{
    let mut size = HEADER;
    for (count, (klen, dlen)) in (1u64..).zip(lens) {
        size = RECORD_HEAD
            .checked_add(klen)
            .and_then(|r| r.checked_add(dlen))
            .and_then(|r| r.checked_add(SLOTS_PER_RECORD))
            .and_then(|r| r.checked_add(size))
            .filter(|&s| s <= MAX_SIZE)
            .ok_or_else(|| too_big(count))?;
    }
    Ok(size)
}

fn too_big(count: u64) -> Error {
    Error::invalid(format!(
        "cdb would exceed the format's 4 GiB limit (at record {count}); write fewer rules"
    ))
}

/// The bytes of a cdb holding `records` in this order, exactly as cdbmake writes them.
///
/// The whole file is built in memory: the size is known before the first byte (see
/// [`planned_size`]), and callers write it to a temporary file and rename it into place.
pub fn build(records: &[(&[u8], &[u8])]) -> Result<Vec<u8>, Error> {
    let size = planned_size(
        records
            .iter()
            .map(|(k, d)| (k.len() as u64, d.len() as u64)),
    )?;
    // `planned_size` proved every position fits in a u32 (and so in usize).
    let mut b = Builder::with_capacity(records.len(), size as usize);
    for (key, data) in records {
        b.push(key, data)?;
    }
    let out = b.finish();
    debug_assert_eq!(out.len() as u64, size);
    Ok(out)
}

/// Builds a cdb one record at a time, for callers that make their records on the fly
/// (the tcprules rebuild) rather than holding them all first. Same bytes as [`build`].
pub struct Builder {
    out: Vec<u8>,
    /// (hash, position) of every record, in file order.
    entries: Vec<(u32, u32)>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::with_capacity(0, 0)
    }
}

impl Builder {
    /// Room for `records` records and `bytes` bytes of file, allocated up front.
    pub fn with_capacity(records: usize, bytes: usize) -> Builder {
        let mut out = Vec::with_capacity(bytes.max(HEADER as usize));
        out.resize(HEADER as usize, 0);
        Builder {
            out,
            entries: Vec::with_capacity(records),
        }
    }

    /// Append a record; returns its position, or an error when the file would pass
    /// [`MAX_SIZE`] (checked with the slots this record adds, as [`planned_size`] does).
    pub fn push(&mut self, key: &[u8], data: &[u8]) -> Result<u32, Error> {
        let count = self.entries.len() as u64 + 1;
        let size = (self.out.len() as u64)
            .checked_add(RECORD_HEAD)
            .and_then(|s| s.checked_add(key.len() as u64))
            .and_then(|s| s.checked_add(data.len() as u64))
            .and_then(|s| s.checked_add(SLOTS_PER_RECORD * count))
            .filter(|&s| s <= MAX_SIZE)
            .ok_or_else(|| too_big(count))?;
        debug_assert!(size <= MAX_SIZE);
        let pos = self.out.len() as u32;
        self.entries.push((hash(key), pos));
        self.out
            .extend_from_slice(&(key.len() as u32).to_le_bytes());
        self.out
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.out.extend_from_slice(key);
        self.out.extend_from_slice(data);
        Ok(pos)
    }

    /// The key of the record at `pos` (a value [`Builder::push`] returned).
    pub fn key_at(&self, pos: u32) -> &[u8] {
        let p = pos as usize;
        let klen = u32_at(&self.out, p).unwrap_or(0) as usize;
        self.out.get(p + 8..p + 8 + klen).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Write the hash tables and the header; the finished file.
    pub fn finish(self) -> Vec<u8> {
        let Builder { mut out, entries } = self;
        // Group the records by table, keeping file order within each (a stable counting
        // sort): the order the slots are filled in decides which duplicate key wins.
        let mut starts = [0usize; 257];
        for &(h, _) in &entries {
            starts[(h & 255) as usize + 1] += 1;
        }
        for i in 0..256 {
            starts[i + 1] += starts[i];
        }
        let mut next = starts;
        let mut grouped = vec![(0u32, 0u32); entries.len()];
        for &(h, p) in &entries {
            let t = (h & 255) as usize;
            grouped[next[t]] = (h, p);
            next[t] += 1;
        }
        out.reserve(entries.len() * SLOTS_PER_RECORD as usize);
        let mut slots: Vec<(u32, u32)> = Vec::new();
        for i in 0..256 {
            let table = &grouped[starts[i]..starts[i + 1]];
            let len = table.len() * 2;
            let pos = out.len() as u32;
            out[i * 8..i * 8 + 4].copy_from_slice(&pos.to_le_bytes());
            out[i * 8 + 4..i * 8 + 8].copy_from_slice(&(len as u32).to_le_bytes());
            slots.clear();
            slots.resize(len, (0, 0));
            for &(h, p) in table {
                let mut at = (h >> 8) as usize % len;
                while slots[at].1 != 0 {
                    at = (at + 1) % len;
                }
                slots[at] = (h, p);
            }
            for &(h, p) in &slots {
                out.extend_from_slice(&h.to_le_bytes());
                out.extend_from_slice(&p.to_le_bytes());
            }
        }
        out
    }
}

fn u32_at(cdb: &[u8], pos: usize) -> Option<u32> {
    let b = cdb.get(pos..pos.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The data of the first record whose key is `key`, as tcpserver finds it; `None` when there
/// is none or the bytes are not a well-formed cdb. For tests and diagnostics: it never panics
/// on a damaged file.
pub fn get<'a>(cdb: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let h = hash(key);
    let entry = (h & 255) as usize * 8;
    let table = u32_at(cdb, entry)? as usize;
    let len = u32_at(cdb, entry + 4)? as usize;
    if len == 0 {
        return None;
    }
    let mut at = (h >> 8) as usize % len;
    for _ in 0..len {
        let slot = table.checked_add(at.checked_mul(8)?)?;
        let slot_hash = u32_at(cdb, slot)?;
        let pos = u32_at(cdb, slot + 4)? as usize;
        if pos == 0 {
            return None;
        }
        if slot_hash == h {
            let klen = u32_at(cdb, pos)? as usize;
            let dlen = u32_at(cdb, pos + 4)? as usize;
            let kstart = pos.checked_add(8)?;
            let dstart = kstart.checked_add(klen)?;
            if cdb.get(kstart..dstart)? == key {
                return cdb.get(dstart..dstart.checked_add(dlen)?);
            }
        }
        at = (at + 1) % len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32s(b: &[u8]) -> Vec<u32> {
        b.chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    #[test]
    fn hash_matches_the_published_function() {
        assert_eq!(hash(b""), 5381);
        // 5381 * 33 ^ 'a' = 177573 ^ 97
        assert_eq!(hash(b"a"), 177_573 ^ 97);
        // Wraps in u32: an overflow would panic in this (debug) test build.
        let long = vec![0xffu8; 1000];
        let _ = hash(&long);
    }

    #[test]
    fn empty_cdb_is_a_header_of_empty_tables() {
        let cdb = build(&[]).unwrap();
        assert_eq!(cdb.len(), 2048);
        for pair in u32s(&cdb).chunks(2) {
            assert_eq!(
                pair,
                [2048, 0],
                "every table starts at the end and has no slots"
            );
        }
        assert_eq!(get(&cdb, b""), None);
        assert_eq!(get(&cdb, b"x"), None);
    }

    #[test]
    fn one_record_layout() {
        let cdb = build(&[(b"127.", b"+RELAYCLIENT=\0")]).unwrap();
        // header + record (8 + 4 + 14) + one table of two slots
        assert_eq!(cdb.len(), 2048 + 26 + 16);
        assert_eq!(&cdb[2048..2056], &[4, 0, 0, 0, 14, 0, 0, 0]);
        assert_eq!(&cdb[2056..2060], b"127.");
        let h = hash(b"127.");
        let t = (h & 255) as usize;
        let head = u32s(&cdb[t * 8..t * 8 + 8]);
        assert_eq!(head, [2048 + 26, 2]);
        let slot = ((h >> 8) % 2) as usize;
        let s = u32s(&cdb[2074 + slot * 8..2074 + slot * 8 + 8]);
        assert_eq!(s, [h, 2048]);
        assert_eq!(get(&cdb, b"127."), Some(&b"+RELAYCLIENT=\0"[..]));
        assert_eq!(get(&cdb, b"127"), None);
    }

    #[test]
    fn hundred_thousand_records_read_back() {
        let keys: Vec<String> = (0..100_000u32)
            .map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255))
            .collect();
        let datas: Vec<String> = (0..100_000u32).map(|i| format!("+N={i}\0")).collect();
        let records: Vec<(&[u8], &[u8])> = keys
            .iter()
            .zip(&datas)
            .map(|(k, d)| (k.as_bytes(), d.as_bytes()))
            .collect();
        let cdb = build(&records).unwrap();
        let lens = records
            .iter()
            .map(|(k, d)| (k.len() as u64, d.len() as u64));
        assert_eq!(cdb.len() as u64, planned_size(lens).unwrap());
        for (k, d) in &records {
            assert_eq!(get(&cdb, k), Some(*d), "{}", String::from_utf8_lossy(k));
        }
        assert_eq!(get(&cdb, b"10.2.0.0"), None);
        assert_eq!(get(&cdb, b"10.1.134.160"), None, "one past the last key");
    }

    #[test]
    fn duplicate_keys_resolve_to_the_first_record() {
        let cdb = build(&[(b"k", b"first"), (b"other", b""), (b"k", b"second")]).unwrap();
        assert_eq!(get(&cdb, b"k"), Some(&b"first"[..]));
    }

    #[test]
    fn size_limit_is_checked_before_allocating() {
        // Exactly at the limit: header + one record whose key fills the rest.
        let fill = MAX_SIZE - 2048 - 8 - 16;
        assert_eq!(planned_size([(fill, 0)]).unwrap(), MAX_SIZE);
        assert_eq!(planned_size([(fill - 10, 10)]).unwrap(), MAX_SIZE);
        // One byte more is refused with a message, not a panic or a wrapped u32.
        let e = planned_size([(fill, 1)]).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
        assert!(e.to_string().contains("4 GiB"), "{e}");
        // Many records that are each small but add up.
        let many = std::iter::repeat_n((1_000_000u64, 1_000_000u64), 2_200);
        let e = planned_size(many).unwrap_err().to_string();
        assert!(e.contains("at record 2148"), "{e}");
        // Lengths that would overflow u64 arithmetic are refused too.
        assert!(planned_size([(u64::MAX, u64::MAX)]).is_err());
        // The slots count against the limit: 16 bytes for each record.
        assert_eq!(
            planned_size([(1, 1), (1, 1)]).unwrap(),
            2048 + 2 * (10 + 16)
        );
    }

    #[test]
    fn reader_survives_damaged_files() {
        let good = build(&[(b"a", b"b"), (b"c", b"d")]).unwrap();
        for cut in [0, 7, 2048, 2050, good.len() - 1] {
            let _ = get(&good[..cut], b"a");
            let _ = get(&good[..cut], b"c");
        }
        let mut bad = good.clone();
        // Point every table far outside the file.
        for i in 0..256 {
            bad[i * 8..i * 8 + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            bad[i * 8 + 4..i * 8 + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        }
        assert_eq!(get(&bad, b"a"), None);
    }
}
