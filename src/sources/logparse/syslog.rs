//! The syslog envelope: timestamp, host, program tag and pid, and where the message starts.

use super::{Millis, Stamp};

/// Where the message of a line starts, and who wrote it.
pub(crate) struct Envelope<'a> {
    pub(crate) stamp: RawStamp<'a>,
    pub(crate) body: Body<'a>,
}

pub(crate) enum Body<'a> {
    /// Dovecot's own `log_path` file: the timestamp is followed directly by the process
    /// (`pop3-login: Info: ...`), with no host and no syslog tag.
    DovecotNative(&'a [u8]),
    /// `host tag[pid]: msg`.
    Tagged {
        tag: &'a [u8],
        pid: Option<u32>,
        msg: &'a [u8],
    },
}

/// The timestamp's bytes, parsed only for the few lines that become events.
#[derive(Clone, Copy)]
pub(crate) enum RawStamp<'a> {
    /// RFC 3164 `Nov 22 03:09:57`.
    Bsd(&'a [u8]),
    /// RFC 3339 `2026-11-22T03:09:57.790849+00:00`.
    Iso(&'a [u8]),
    /// None in the message: its time comes with it from elsewhere (a journal entry).
    None,
}

impl RawStamp<'_> {
    pub(crate) fn parse(self) -> Option<Stamp> {
        match self {
            RawStamp::Bsd(b) => parse_bsd(b),
            RawStamp::Iso(b) => parse_iso(b),
            RawStamp::None => None,
        }
    }
}

/// Split a line into its envelope, or `None` when it is not a syslog-style line. Runs on
/// every line, so it only looks at fixed positions and scans for two spaces and a colon.
pub(crate) fn envelope(line: &[u8]) -> Option<Envelope<'_>> {
    let (stamp, rest) = split_stamp(line)?;
    if rest.starts_with(b"pop3-login: ")
        || rest.starts_with(b"imap-login: ")
        || rest.starts_with(b"pop3(")
        || rest.starts_with(b"imap(")
    {
        // A syslog host name never ends in a colon or holds a parenthesis, so this is
        // Dovecot's own file (a login process, or a mail process's `imap(user)<pid>...`).
        return Some(Envelope {
            stamp,
            body: Body::DovecotNative(rest),
        });
    }
    let sp = memchr::memchr(b' ', rest)?;
    let (tag, pid, msg) = split_tag(&rest[sp + 1..])?;
    Some(Envelope {
        stamp,
        body: Body::Tagged { tag, pid, msg },
    })
}

/// The leading timestamp and what follows its space.
pub(crate) fn split_stamp(line: &[u8]) -> Option<(RawStamp<'_>, &[u8])> {
    if is_bsd(line) {
        return Some((RawStamp::Bsd(&line[..15]), &line[16..]));
    }
    if line.len() > 20 && line[0].is_ascii_digit() && line[4] == b'-' && line[10] == b'T' {
        let sp = memchr::memchr(b' ', line)?;
        return Some((RawStamp::Iso(&line[..sp]), &line[sp + 1..]));
    }
    None
}

fn is_bsd(l: &[u8]) -> bool {
    l.len() > 16 && l[15] == b' ' && bsd_shape(&l[..15])
}

/// `Mmm dd hh:mm:ss` (the day space- or zero-padded), by position only.
fn bsd_shape(l: &[u8]) -> bool {
    l.len() == 15
        && l[3] == b' '
        && l[6] == b' '
        && l[9] == b':'
        && l[12] == b':'
        && l[0].is_ascii_uppercase()
        && (l[4] == b' ' || l[4].is_ascii_digit())
        && [5, 7, 8, 10, 11, 13, 14]
            .iter()
            .all(|&i| l[i].is_ascii_digit())
}

/// `tag[pid]: ` or `tag: `. A tag is short and has no spaces; anything else is not a
/// program's message (for example rsyslog's `last message repeated` lines).
fn split_tag(s: &[u8]) -> Option<(&[u8], Option<u32>, &[u8])> {
    let limit = s.len().min(64);
    let end = s[..limit]
        .iter()
        .position(|&c| c == b'[' || c == b':' || c == b' ')?;
    if end == 0 || s[end] == b' ' {
        return None;
    }
    let tag = &s[..end];
    let (pid, after) = if s[end] == b'[' {
        let window = &s[end + 1..s.len().min(end + 13)];
        let close = memchr::memchr(b']', window)?;
        let pid = parse_u32(&window[..close])?;
        let colon = end + 1 + close + 1;
        if s.get(colon) != Some(&b':') {
            return None;
        }
        (Some(pid), &s[colon + 1..])
    } else {
        (None, &s[end + 1..])
    };
    Some((tag, pid, after.strip_prefix(b" ").unwrap_or(after)))
}

fn parse_u32(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 10 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(c - b'0');
    }
    u32::try_from(n).ok()
}

fn num(b: &[u8]) -> Option<u32> {
    parse_u32(b)
}

fn parse_bsd(b: &[u8]) -> Option<Stamp> {
    if !bsd_shape(b) {
        return None;
    }
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let month = MONTHS.iter().position(|m| &b[..3] == *m)? as u8 + 1;
    let day = if b[4] == b' ' {
        num(&b[5..6])?
    } else {
        num(&b[4..6])?
    };
    let (hour, min, sec) = (num(&b[7..9])?, num(&b[10..12])?, num(&b[13..15])?);
    if !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    Some(Stamp::Syslog {
        month,
        day: day as u8,
        hour: hour as u8,
        min: min as u8,
        sec: sec as u8,
    })
}

/// RFC 3339 as rsyslog writes it, resolved to Unix milliseconds on the spot: the zone is
/// in the stamp, so no local-time guess is needed.
fn parse_iso(b: &[u8]) -> Option<Stamp> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = num(&b[0..4])? as i64;
    let (month, day) = (num(&b[5..7])?, num(&b[8..10])?);
    let (hour, min, sec) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut ms: u64 = 0;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        for i in 0..3 {
            ms = ms * 10
                + frac
                    .get(i)
                    .filter(|_| i < n)
                    .map_or(0, |c| u64::from(c - b'0'));
        }
        rest = &frac[n..];
    }
    let offset: i64 = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] | [sign @ (b'+' | b'-'), h1, h2, m1, m2] => {
            let h = i64::from(num(&[*h1, *h2])?);
            let m = i64::from(num(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'+' { secs } else { -secs }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + min * 60 + sec) - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(Stamp::Unix(secs * 1000 + ms))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const DAY_MS: Millis = 86_400_000;

/// The Unix time of a stamp, read at `now`. RFC 3164 stamps are local time without a
/// year: they belong to the current year unless that puts them more than a day in the
/// future, which happens when a Dec 31 line is read on Jan 1.
pub fn resolve_stamp(stamp: &Stamp, now: Millis) -> Option<Millis> {
    match *stamp {
        Stamp::Unix(ms) => Some(ms),
        Stamp::Syslog {
            month,
            day,
            hour,
            min,
            sec,
        } => {
            let year = local_year(now)?;
            let this_year = local_mktime(year, month, day, hour, min, sec);
            match this_year {
                Some(t) if t <= now.saturating_add(DAY_MS) => Some(t),
                // Too far ahead, or a date this year does not have (Feb 29).
                _ => local_mktime(year - 1, month, day, hour, min, sec),
            }
        }
    }
}

fn local_year(now: Millis) -> Option<i32> {
    crate::lease::local_tm(now).map(|tm| tm.tm_year + 1900)
}

/// Local wall-clock time to Unix ms, letting the C library pick summer or winter time.
pub(crate) fn local_mktime(
    year: i32,
    month: u8,
    day: u8,
    hour: u8,
    min: u8,
    sec: u8,
) -> Option<Millis> {
    // SAFETY: as in local_year; mktime reads and normalises the struct it is given.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = year - 1900;
    tm.tm_mon = i32::from(month) - 1;
    tm.tm_mday = i32::from(day);
    tm.tm_hour = i32::from(hour);
    tm.tm_min = i32::from(min);
    tm.tm_sec = i32::from(sec);
    tm.tm_isdst = -1;
    let t = unsafe { libc::mktime(&mut tm) };
    // mktime moves impossible dates (Nov 31, Feb 29 of a common year) into the next month.
    if t < 0 || tm.tm_mon != i32::from(month) - 1 || tm.tm_mday != i32::from(day) {
        return None;
    }
    u64::try_from(t).ok().map(|s| s * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(line: &[u8]) -> (Vec<u8>, Option<u32>, Vec<u8>) {
        match envelope(line).map(|e| e.body) {
            Some(Body::Tagged { tag, pid, msg }) => (tag.to_vec(), pid, msg.to_vec()),
            _ => panic!("not tagged: {}", String::from_utf8_lossy(line)),
        }
    }

    #[test]
    fn bsd_envelope() {
        let (tag, pid, msg) = tagged(b"Nov 22 02:34:22 vm cyrus/pop3[9071]: login: [1.2.3.4] a b");
        assert_eq!(tag, b"cyrus/pop3");
        assert_eq!(pid, Some(9071));
        assert_eq!(msg, b"login: [1.2.3.4] a b");
        let (tag, pid, msg) = tagged(b"Nov  2 02:34:22 vm dovecot: imap-login: x");
        assert_eq!((tag.as_slice(), pid), (&b"dovecot"[..], None));
        assert_eq!(msg, b"imap-login: x");
    }

    #[test]
    fn iso_envelope_and_stamp() {
        let line = b"2026-11-22T03:09:57.790849+00:00 vm dovecot: pop3-login: Login: x";
        let e = envelope(line).unwrap();
        // 2026-11-22T03:09:57Z, checked with `date -ud @1795316997`.
        assert_eq!(e.stamp.parse(), Some(Stamp::Unix(1_795_316_997_790)));
        let plus2 = split_stamp(b"2026-11-22T05:09:57+02:00 x").unwrap().0;
        assert_eq!(plus2.parse(), Some(Stamp::Unix(1_795_316_997_000)));
        let z = split_stamp(b"1970-01-01T00:00:01.5Z x").unwrap().0;
        assert_eq!(z.parse(), Some(Stamp::Unix(1_500)));
        for bad in [
            &b"2026-13-22T03:09:57Z x"[..],
            b"2026-11-22T03:09:57 x",
            b"2026-11-22T03:09:57+0x:00 x",
            b"2026-11-22T03:09:57.Z x",
        ] {
            let s = split_stamp(bad).unwrap().0;
            assert_eq!(s.parse(), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn native_dovecot_has_no_host() {
        let e = envelope(b"Nov 22 03:09:57 pop3-login: Info: Login: user=<a>").unwrap();
        assert!(matches!(e.body, Body::DovecotNative(m) if m.starts_with(b"pop3-login: Info")));
        assert_eq!(
            e.stamp.parse(),
            Some(Stamp::Syslog {
                month: 11,
                day: 22,
                hour: 3,
                min: 9,
                sec: 57
            })
        );
    }

    #[test]
    fn not_a_syslog_line() {
        for l in [
            &b""[..],
            b"garbage",
            b"Nov 22 03:09:57",
            b"Nov 22 03:09:57 vm last message repeated 3 times",
            b"Nov 22 03:09:57 vm prog[12x]: msg",
            b"Nov 22 03:09:57 vm prog[99999999999]: msg",
            b"Nov 22 03:09:57 vm prog[12] msg",
            b"nov 22 03:09:57 vm prog: msg",
        ] {
            assert!(
                !matches!(envelope(l).map(|e| e.body), Some(Body::Tagged { .. })),
                "{}",
                String::from_utf8_lossy(l)
            );
        }
    }

    #[test]
    fn bad_bsd_stamps_parse_to_none() {
        assert_eq!(RawStamp::Bsd(b"Foo 22 03:09:57").parse(), None);
        assert_eq!(RawStamp::Bsd(b"Nov 32 03:09:57").parse(), None);
        assert_eq!(RawStamp::Bsd(b"Nov 22 24:09:57").parse(), None);
        assert_eq!(RawStamp::Bsd(b"Nov 2").parse(), None);
    }

    fn syslog(month: u8, day: u8, hour: u8, min: u8, sec: u8) -> Stamp {
        Stamp::Syslog {
            month,
            day,
            hour,
            min,
            sec,
        }
    }

    // These tests build `now` with the same local clock the code uses, so they hold in any
    // time zone the tests run in.
    #[test]
    fn syslog_stamp_is_local_time_this_year() {
        let now = local_mktime(2026, 11, 22, 3, 10, 0).unwrap();
        assert_eq!(
            resolve_stamp(&syslog(11, 22, 3, 9, 57), now),
            Some(now - 3_000)
        );
        // Up to a day ahead (a clock slightly off) still counts as this year.
        assert_eq!(
            resolve_stamp(&syslog(11, 22, 23, 0, 0), now),
            local_mktime(2026, 11, 22, 23, 0, 0)
        );
    }

    #[test]
    fn dec_31_read_on_jan_1_is_last_year() {
        let now = local_mktime(2027, 1, 1, 0, 0, 30).unwrap();
        let got = resolve_stamp(&syslog(12, 31, 23, 59, 59), now).unwrap();
        assert_eq!(got, now - 31_000);
    }

    #[test]
    fn feb_29_in_a_common_year_is_the_last_leap_day() {
        let now = local_mktime(2025, 1, 2, 12, 0, 0).unwrap();
        assert_eq!(
            resolve_stamp(&syslog(2, 29, 1, 0, 0), now),
            local_mktime(2024, 2, 29, 1, 0, 0)
        );
        assert_eq!(resolve_stamp(&syslog(11, 31, 1, 0, 0), now), None);
    }

    #[test]
    fn unix_stamps_pass_through() {
        assert_eq!(resolve_stamp(&Stamp::Unix(42), 7), Some(42));
    }
}
