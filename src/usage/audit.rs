//! The audit lines: one info line per message relayed through a lease (and per relay check
//! of the other methods), in the daemon's log format.
//!
//! They are formatted here into one buffer and written to stderr once per recorder tick,
//! not one `tracing` event each: at tens of thousands of relayed messages a second, the
//! subscriber's per-event formatting and write took more CPU than the answers themselves.
//! The lines read exactly as the subscriber of `main.rs` writes its own (text with or without
//! the time stamp under systemd, or `--log-format json`); a test holds the two together.

use std::fmt::Write as _;
use std::io::Write as _;

use super::message::Finished;
use super::table::put_utc;
use super::{Text, Use};
use crate::cli::LogFormat;
use crate::lease::put_key;

/// The largest single write to a pipe or a stream socket (journald): they keep a write of
/// up to this many bytes in one piece.
const CHUNK: usize = 4096;
/// The largest single write to a regular file, where any write keeps its lines whole
/// (the file's offset is taken under a lock): fewer and larger writes cost the kernel less
/// a page than pieces of 4 KiB, which share their pages with the next.
const FILE_CHUNK: usize = 256 * 1024;

/// The message of a relayed message's line, and of a relay check's.
pub const RELAYED: &str = "relayed through a lease";
pub const GRANTED: &str = "relay granted through a lease";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    Text { time: bool },
    Json,
}

/// Text that both `str`'s Debug form and JSON write as it is between quotes: printable ASCII
/// other than the quote and the backslash. (Every byte is looked at, without stopping at
/// the first that is not: a loop the compiler makes vector code of.)
fn plain(s: &str) -> bool {
    s.bytes().fold(true, |ok, b| {
        ok & (0x20..0x7f).contains(&b) & (b != b'"') & (b != b'\\')
    })
}

/// `v` in decimal.
fn put_number(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// `buf`'s whole lines in pieces of at most `chunk` bytes (a longer line is a piece of its
/// own).
fn pieces(buf: &[u8], chunk: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = if rest.len() <= chunk {
            rest.len()
        } else {
            match rest[..chunk].iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => rest[chunk..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |i| chunk + i + 1),
            }
        };
        let (piece, after) = rest.split_at(cut);
        rest = after;
        Some(piece)
    })
}

/// Is the daemon's stderr a regular file (not a pipe, a socket or a terminal)?
fn stderr_is_a_file() -> bool {
    use std::os::fd::AsFd;
    std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata())
        .is_ok_and(|m| m.file_type().is_file())
}

/// Audit lines waiting to be written.
pub struct Audit {
    style: Style,
    buf: Vec<u8>,
    scratch: String,
    /// The time stamp of the lines of this tick, made once per [`Audit::stamp`].
    stamp: String,
    /// The largest write [`Audit::flush`] makes.
    chunk: usize,
}

impl Audit {
    /// Lines as `main.rs` sets up the log: `format`, and no time stamp in text under systemd
    /// (`JOURNAL_STREAM` set), where the journal stamps each line.
    pub fn new(format: LogFormat) -> Audit {
        let journal = std::env::var_os("JOURNAL_STREAM").is_some();
        let mut audit = Audit::with(format, !journal);
        if stderr_is_a_file() {
            audit.chunk = FILE_CHUNK;
        }
        audit
    }

    fn with(format: LogFormat, time: bool) -> Audit {
        Audit {
            style: match format {
                LogFormat::Json => Style::Json,
                LogFormat::Text => Style::Text { time },
            },
            buf: Vec::with_capacity(64 * 1024),
            scratch: String::new(),
            stamp: String::new(),
            chunk: CHUNK,
        }
    }

    /// Stamp the lines made from now on with the time now (once per tick: the lines of one
    /// tick share it, as they are written together).
    pub fn stamp(&mut self) {
        self.stamp.clear();
        let now = humantime::format_rfc3339_micros(std::time::SystemTime::now());
        let _ = write!(self.stamp, "{now}");
    }

    /// Does the log take info lines (not with `-q`)?
    pub fn enabled() -> bool {
        tracing::enabled!(tracing::Level::INFO)
    }

    fn begin(&mut self, message: &str) {
        if self.stamp.is_empty() {
            self.stamp();
        }
        match self.style {
            Style::Text { time } => {
                if time {
                    self.buf.extend_from_slice(self.stamp.as_bytes());
                    self.buf.push(b' ');
                }
                self.buf.extend_from_slice(b" INFO ");
                self.buf.extend_from_slice(message.as_bytes());
            }
            Style::Json => {
                self.buf.extend_from_slice(b"{\"timestamp\":\"");
                self.buf.extend_from_slice(self.stamp.as_bytes());
                self.buf
                    .extend_from_slice(b"\",\"level\":\"INFO\",\"fields\":{\"message\":");
                self.json_string(message);
            }
        }
    }

    fn json_string(&mut self, v: &str) {
        if plain(v) {
            self.buf.push(b'"');
            self.buf.extend_from_slice(v.as_bytes());
            self.buf.push(b'"');
        } else {
            let _ = serde_json::to_writer(&mut self.buf, v);
        }
    }

    fn name(&mut self, name: &str) {
        match self.style {
            Style::Text { .. } => {
                self.buf.push(b' ');
                self.buf.extend_from_slice(name.as_bytes());
                self.buf.push(b'=');
            }
            Style::Json => {
                self.buf.extend_from_slice(b",\"");
                self.buf.extend_from_slice(name.as_bytes());
                self.buf.extend_from_slice(b"\":");
            }
        }
    }

    /// A text field: quoted and escaped in text (as `tracing` writes a `&str`), a string in
    /// JSON.
    fn text(&mut self, name: &str, v: &str) {
        self.name(name);
        match self.style {
            Style::Text { .. } if plain(v) => {
                self.buf.push(b'"');
                self.buf.extend_from_slice(v.as_bytes());
                self.buf.push(b'"');
            }
            Style::Text { .. } => {
                let _ = write!(self.buf, "{v:?}");
            }
            Style::Json => self.json_string(v),
        }
    }

    fn number(&mut self, name: &str, v: u64) {
        self.name(name);
        put_number(&mut self.buf, v);
    }

    fn end(&mut self) {
        if self.style == Style::Json {
            self.buf.extend_from_slice(b"}}");
        }
        self.buf.push(b'\n');
    }

    /// An address or a lease's key: shown as it is in text, a string in JSON.
    fn key(&mut self, name: &str, net: &ipnet::IpNet) {
        self.name(name);
        let json = self.style == Style::Json;
        if json {
            self.buf.push(b'"');
        }
        put_key(&mut self.buf, net);
        if json {
            self.buf.push(b'"');
        }
    }

    fn lease_fields(&mut self, u: &Use) {
        self.key("client", &u.client.into());
        self.text("user", u.user().unwrap_or("-"));
        self.key("lease", &u.net);
        self.text("login_source", u.text(Text::Source));
        self.name("login_at");
        match self.style {
            Style::Text { .. } => put_utc(&mut self.buf, u.login_at),
            Style::Json => {
                self.buf.push(b'"');
                put_utc(&mut self.buf, u.login_at);
                self.buf.push(b'"');
            }
        }
        self.text("method", u.method.name());
    }

    /// The line of a message relayed through a lease.
    pub fn message(&mut self, m: &Finished) {
        fn dash(s: &str) -> &str {
            if s.is_empty() { "-" } else { s }
        }
        self.begin(RELAYED);
        self.lease_fields(&m.first);
        self.text("sender", dash(m.first.text(Text::Sender)));
        let mut recipients = std::mem::take(&mut self.scratch);
        recipients.clear();
        for (i, r) in m.recipients().enumerate() {
            if i > 0 {
                recipients.push(',');
            }
            recipients.push_str(r);
        }
        if m.count > 1 + m.more.len() as u64 {
            recipients.push_str(",...");
        }
        self.text("recipients", &recipients);
        self.scratch = recipients;
        self.number("rcpt_count", m.count);
        self.text("queue_id", dash(m.queue_id()));
        self.text("instance", dash(m.first.text(Text::Instance)));
        self.end();
    }

    /// The line of a relay check answered yes through a lease (socketmap, Exim, smtp-wrap).
    pub fn check(&mut self, u: &Use) {
        self.begin(GRANTED);
        self.lease_fields(u);
        self.end();
    }

    /// Write what is waiting, in pieces of whole lines.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let mut err = std::io::stderr().lock();
        for piece in pieces(&self.buf, self.chunk) {
            if err.write_all(piece).is_err() {
                break;
            }
        }
        self.buf.clear();
    }

    /// Drop the lines made since the last [`Audit::flush`] without writing them; how many
    /// bytes they were (for benchmarks).
    pub fn discard(&mut self) -> usize {
        let n = self.buf.len();
        self.buf.clear();
        n
    }

    #[cfg(test)]
    fn take(&mut self) -> String {
        String::from_utf8(std::mem::take(&mut self.buf)).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LeaseRef;
    use crate::usage::Method;
    use crate::usage::message::Messages;

    fn a_use(user: Option<&str>, conn: u64, to: &str) -> Use {
        let l = LeaseRef {
            net: "192.0.2.7/32".parse().unwrap(),
            user,
            source: "/var/log/mail \"x\".log",
            last_login: 1_790_000_000_000,
        };
        Use::new(
            &l,
            1_790_000_060_000,
            "192.0.2.7".parse().unwrap(),
            Method::PostfixPolicy,
            conn,
            ["1a2b.66f0e0a1.9c3d4.0", "alice@example.net", to, ""],
        )
    }

    /// The same event through the `tracing` subscriber `main.rs` sets up, for comparison.
    fn through_tracing(format: LogFormat, time: bool, f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let out = sink.clone();
        let b = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_target(false)
            .with_ansi(false);
        let dispatch = match (format, time) {
            (LogFormat::Json, _) => tracing::Dispatch::new(b.json().finish()),
            (LogFormat::Text, false) => tracing::Dispatch::new(b.without_time().finish()),
            (LogFormat::Text, true) => tracing::Dispatch::new(b.finish()),
        };
        tracing::dispatcher::with_default(&dispatch, f);
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    /// Time stamps differ by when each line was made; everything else must not.
    fn without_stamp(line: &str) -> String {
        match line.find("\"timestamp\":\"") {
            Some(i) => {
                let end = line[i + 13..].find('"').unwrap() + i + 13;
                format!("{}{}", &line[..i + 13], &line[end..])
            }
            None => line
                .split_once("Z ")
                .map_or(line, |(_, rest)| rest)
                .to_string(),
        }
    }

    proptest::proptest! {
        /// The pieces are the buffer, each of whole lines and within the chunk, but for a
        /// line longer than the chunk, which is a piece of its own.
        #[test]
        fn flushes_are_pieces_of_whole_lines(
            lines in proptest::collection::vec(0usize..300, 0..40),
            chunk in 1usize..400,
        ) {
            let mut buf = Vec::new();
            for (i, len) in lines.iter().enumerate() {
                buf.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, *len));
                buf.push(b'\n');
            }
            let got: Vec<&[u8]> = pieces(&buf, chunk).collect();
            proptest::prop_assert_eq!(got.concat(), buf.clone());
            for p in got {
                proptest::prop_assert_eq!(p.last(), Some(&b'\n'));
                let one_line = p.iter().filter(|&&b| b == b'\n').count() == 1;
                proptest::prop_assert!(p.len() <= chunk || one_line, "{} > {chunk}", p.len());
            }
        }
    }

    #[test]
    fn audit_lines_read_exactly_as_the_log_subscriber_writes_them() {
        let mut msgs = Messages::default();
        msgs.rcpt(a_use(Some("al\"ice\n"), 1, "b@remote.example"));
        msgs.rcpt(a_use(Some("al\"ice\n"), 1, "c@remote.example"));
        let m = msgs.finish_all().remove(0);
        let check = a_use(None, 0, "");
        for (format, time) in [
            (LogFormat::Text, true),
            (LogFormat::Text, false),
            (LogFormat::Json, true),
        ] {
            let mut a = Audit::with(format, time);
            a.message(&m);
            a.check(&check);
            let ours = a.take();
            let theirs = through_tracing(format, time, || {
                tracing::info!(
                    client = %m.first.client,
                    user = "al\"ice\n",
                    lease = %"192.0.2.7",
                    login_source = "/var/log/mail \"x\".log",
                    login_at = %"2026-09-21T14:13:20Z",
                    method = "postfix-policy",
                    sender = "alice@example.net",
                    recipients = "b@remote.example,c@remote.example",
                    rcpt_count = 2u64,
                    queue_id = "-",
                    instance = "1a2b.66f0e0a1.9c3d4.0",
                    "relayed through a lease"
                );
                tracing::info!(
                    client = %check.client,
                    user = "-",
                    lease = %"192.0.2.7",
                    login_source = "/var/log/mail \"x\".log",
                    login_at = %"2026-09-21T14:13:20Z",
                    method = "postfix-policy",
                    "relay granted through a lease"
                );
            });
            let ours: Vec<String> = ours.lines().map(without_stamp).collect();
            let theirs: Vec<String> = theirs.lines().map(without_stamp).collect();
            assert_eq!(ours, theirs, "{format:?} time {time}");
            assert_eq!(ours.len(), 2);
        }
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "10.0.0.255",
            "192.0.2.7",
            "100.64.10.9",
            "2001:db8::1",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            let mut a = Audit::with(LogFormat::Text, false);
            a.key("client", &ip.into());
            assert_eq!(a.take(), format!(" client={ip}"));
            let mut a = Audit::with(LogFormat::Json, false);
            a.key("client", &ip.into());
            assert_eq!(a.take(), format!(",\"client\":\"{ip}\""));
        }
    }

    #[test]
    fn numbers_read_as_display_writes_them() {
        for v in [0u64, 7, 10, 99, 100, 4_294_967_296, u64::MAX] {
            let mut ours = Vec::new();
            put_number(&mut ours, v);
            assert_eq!(ours, v.to_string().into_bytes());
        }
    }

    #[test]
    fn long_lists_end_in_dots_and_json_lines_parse() {
        let mut msgs = Messages::default();
        for i in 0..30 {
            msgs.rcpt(a_use(Some("alice"), 1, &format!("r{i}@remote.example")));
        }
        let m = msgs.finish_all().remove(0);
        let mut a = Audit::with(LogFormat::Json, true);
        a.message(&m);
        let line = a.take();
        assert!(plain("alice@example.net") && !plain("a\"b") && !plain("ü") && !plain("a\\b"));
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["fields"]["message"], RELAYED);
        assert_eq!(v["fields"]["rcpt_count"], 30);
        let listed = v["fields"]["recipients"].as_str().unwrap();
        assert!(listed.ends_with(",..."), "{listed}");
        assert_eq!(listed.split(',').count(), 21);
    }
}
