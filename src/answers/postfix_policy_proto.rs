//! The Postfix policy delegation protocol at the byte level: requests in, `action=` replies out.
//!
//! Postfix writes `name=value\n` lines and ends a request with an empty line; the server answers
//! `action=...\n\n`, and the connection carries the next request. Parsing is a plain function
//! over a buffer so that partial reads, pipelining and hostile input are unit-tested here.
//!
//! Decisions where Postfix leaves room:
//!
//! - A line ending in `\r\n` counts as ending in `\n` (someone testing by hand with telnet);
//!   `\r\n` alone ends the request.
//! - A line without `=`, an empty attribute name or a name that is not UTF-8 is an error: the
//!   peer is not Postfix, or the stream lost its framing, and the connection should be closed.
//!   Such a line is reported as soon as it is complete, without waiting for the empty line.
//! - Values are raw bytes, and unknown attributes are skipped without looking at their value.
//!   A kept value that is not UTF-8 is kept lossily (U+FFFD), which never parses as an address.
//! - When an attribute repeats, the last one counts, as in Postfix's own attribute tables.
//! - An empty line with no attributes before it is a request with nothing in it: the caller
//!   answers it (DUNNO, since it names no client) rather than dropping the connection.

use std::net::IpAddr;

/// The largest request, including its terminating empty line. Postfix 3.7's requests are
/// about 1 KiB; the cap bounds what one connection can make the server buffer.
pub const MAX_REQUEST: usize = 64 * 1024;

/// The attributes relaylease uses; Postfix sends about thirty, the rest are skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// `smtpd_access_policy` for the requests this service answers.
    pub request: Option<String>,
    /// `RCPT`, `DATA`, ...: the SMTP stage the check runs at.
    pub protocol_state: Option<String>,
    /// As Postfix sent it; see [`client_ip`] for the parsed address.
    pub client_address: Option<String>,
    pub client_name: Option<String>,
    pub sasl_username: Option<String>,
    /// Postfix's id for one SMTP transaction, for logging.
    pub instance: Option<String>,
    /// The envelope sender, for the audit line of a relayed message.
    pub sender: Option<String>,
    /// The recipient asked about (at RCPT).
    pub recipient: Option<String>,
    /// Postfix's queue id once it has one (after the first accepted recipient).
    pub queue_id: Option<String>,
}

/// Why a buffer is not a policy request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("policy request is larger than {MAX_REQUEST} bytes")]
    TooLarge,
    #[error("policy request line {line} has no '=': '{text}'")]
    NoEquals { line: usize, text: String },
    #[error("policy request line {line} has an empty attribute name: '{text}'")]
    EmptyName { line: usize, text: String },
    #[error("policy request line {line}: attribute name is not UTF-8: '{text}'")]
    BadName { line: usize, text: String },
}

/// The answers this service gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// The client may relay: `action=OK`.
    Ok,
    /// No opinion; Postfix goes on with its other restrictions: `action=DUNNO`.
    Dunno,
    /// `--unleased-action defer`: a refusal later in the list becomes 450 instead of 554.
    DeferIfReject,
}

/// What [`Action::DeferIfReject`] says; Postfix shows it in the 450 reply.
pub const DEFER_TEXT: &str =
    "4.7.1 Relaying needs a recent POP3/IMAP login: fetch your mail, then send again";

/// The reply bytes for an action, terminator included.
pub fn reply(action: Action) -> &'static [u8] {
    match action {
        Action::Ok => b"action=OK\n\n",
        Action::Dunno => b"action=DUNNO\n\n",
        Action::DeferIfReject => concat!(
            "action=DEFER_IF_REJECT ",
            "4.7.1 Relaying needs a recent POP3/IMAP login: fetch your mail, then send again",
            "\n\n"
        )
        .as_bytes(),
    }
}

/// `action=PREPEND NAME: VALUE`: a header for the message (at DATA only; Postfix cannot
/// prepend at END-OF-MESSAGE). The caller keeps newlines out of both.
pub fn write_prepend(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(b"action=PREPEND ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// Attributes kept, as indices into the slot array filled while scanning.
const REQUEST: usize = 0;
const PROTOCOL_STATE: usize = 1;
const CLIENT_ADDRESS: usize = 2;
const CLIENT_NAME: usize = 3;
const SASL_USERNAME: usize = 4;
const INSTANCE: usize = 5;
const SENDER: usize = 6;
const RECIPIENT: usize = 7;
const QUEUE_ID: usize = 8;
const SLOTS: usize = 9;

fn slot(name: &[u8]) -> Option<usize> {
    match name {
        b"request" => Some(REQUEST),
        b"protocol_state" => Some(PROTOCOL_STATE),
        b"client_address" => Some(CLIENT_ADDRESS),
        b"client_name" => Some(CLIENT_NAME),
        b"sasl_username" => Some(SASL_USERNAME),
        b"instance" => Some(INSTANCE),
        b"sender" => Some(SENDER),
        b"recipient" => Some(RECIPIENT),
        b"queue_id" => Some(QUEUE_ID),
        _ => None,
    }
}

/// Parse the first request in `buf`.
///
/// `Ok(None)`: the empty line has not arrived yet; read more and call again with the longer
/// buffer. `Ok(Some((request, consumed)))`: drop `consumed` bytes and call again, since the
/// next request may already be in the buffer. `Err`: close the connection.
///
/// Nothing is allocated until the request is complete, and a Postfix request arrives in one
/// read. Each call scans from the start of the buffer, so a peer trickling a request a byte at
/// a time costs O(n^2) up to [`MAX_REQUEST`]; a caller can skip calls after reads that
/// brought no `\n`.
pub fn parse_request(buf: &[u8]) -> Result<Option<(Request, usize)>, ProtoError> {
    Ok(parse_request_ref(buf)?.map(|(r, n)| (r.to_request(), n)))
}

/// A request's attributes as they lie in the buffer, not yet copied: the policy service
/// needs only `client_address` to answer, and copies the rest only to log a problem.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestRef<'a> {
    slots: [Option<&'a [u8]>; SLOTS],
}

impl<'a> RequestRef<'a> {
    /// `client_address` as Postfix sent it.
    pub fn client_address(&self) -> Option<&'a [u8]> {
        self.slots[CLIENT_ADDRESS]
    }

    /// `protocol_state`: `RCPT`, `DATA`, `END-OF-MESSAGE`, ...
    pub fn protocol_state(&self) -> Option<&'a [u8]> {
        self.slots[PROTOCOL_STATE]
    }

    pub fn instance(&self) -> Option<&'a [u8]> {
        self.slots[INSTANCE]
    }

    pub fn sender(&self) -> Option<&'a [u8]> {
        self.slots[SENDER]
    }

    pub fn recipient(&self) -> Option<&'a [u8]> {
        self.slots[RECIPIENT]
    }

    pub fn queue_id(&self) -> Option<&'a [u8]> {
        self.slots[QUEUE_ID]
    }

    pub fn to_request(&self) -> Request {
        request_from(&self.slots)
    }
}

/// [`parse_request`] without copying any attribute: the same results, with the request
/// borrowed from `buf`.
pub fn parse_request_ref(buf: &[u8]) -> Result<Option<(RequestRef<'_>, usize)>, ProtoError> {
    // Only the first MAX_REQUEST bytes can belong to an acceptable request.
    let window = &buf[..buf.len().min(MAX_REQUEST)];
    let mut slots: [Option<&[u8]>; SLOTS] = [None; SLOTS];
    let mut marks = Marks::new(window);
    let mut start = 0;
    let mut line_no = 0;
    // Per line, two lookups in masks made 64 bytes at a time ([`Marks`]): its first '=' (or
    // its end, when it has none) and its end. A line is judged only once its end has arrived.
    while let Some(at) = marks.next(start, true) {
        line_no += 1;
        if window[at] == b'\n' {
            let raw = &window[start..at];
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            if line.is_empty() {
                return Ok(Some((RequestRef { slots }, at + 1)));
            }
            return Err(ProtoError::NoEquals {
                line: line_no,
                text: show_line(line),
            });
        }
        let eq = at;
        let Some(end) = marks.next(eq + 1, false) else {
            break;
        };
        let raw = &window[start..end];
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let name = &window[start..eq];
        if name.is_empty() {
            return Err(ProtoError::EmptyName {
                line: line_no,
                text: show_line(line),
            });
        }
        if !name.is_ascii() && std::str::from_utf8(name).is_err() {
            return Err(ProtoError::BadName {
                line: line_no,
                text: show_line(line),
            });
        }
        if let Some(i) = slot(name) {
            // The value ends where the line does (a '\r' before the '\n' is not in it).
            slots[i] = Some(window.get(eq + 1..start + line.len()).unwrap_or_default());
        }
        start = end + 1;
    }
    if buf.len() >= MAX_REQUEST {
        Err(ProtoError::TooLarge)
    } else {
        Ok(None)
    }
}

/// Where the '\n's and '='s of a buffer are, found 64 bytes at a time: one mask of each per
/// block, made when a lookup first reaches the block. A Postfix request's ~30 lines are
/// short, so a search per line would cost more in calls, and a byte or a word at a time more
/// in steps, than the bytes themselves.
struct Marks<'a> {
    buf: &'a [u8],
    /// Where the block of `nl` and `eq` starts (a multiple of 64; `usize::MAX`: none yet).
    base: usize,
    /// Bit i set: byte `base + i` is a '\n'.
    nl: u64,
    /// Bit i set: byte `base + i` is a '='.
    eq: u64,
}

impl<'a> Marks<'a> {
    fn new(buf: &'a [u8]) -> Marks<'a> {
        Marks {
            buf,
            base: usize::MAX,
            nl: 0,
            eq: 0,
        }
    }

    /// The first '\n' at or after `from`, or the first of a '\n' and a '=' when `or_eq`.
    /// Inlined for the usual case, a mark in the block already held.
    #[inline(always)]
    fn next(&mut self, from: usize, or_eq: bool) -> Option<usize> {
        let block = from & !63;
        if block == self.base {
            let found = self.found(or_eq) & (!0u64 << (from - block));
            if found != 0 {
                return Some(block + found.trailing_zeros() as usize);
            }
        }
        self.next_in_later_blocks(from, or_eq)
    }

    #[inline(always)]
    fn found(&self, or_eq: bool) -> u64 {
        if or_eq { self.nl | self.eq } else { self.nl }
    }

    /// [`Marks::next`] past the block held, making the masks of each block it reaches.
    #[inline(never)]
    fn next_in_later_blocks(&mut self, from: usize, or_eq: bool) -> Option<usize> {
        let mut block = from & !63;
        let mut skip = from - block;
        while block < self.buf.len() {
            if block != self.base {
                let rest = &self.buf[block..];
                (self.nl, self.eq) = match rest.first_chunk::<64>() {
                    Some(b) => block_masks(b),
                    None => {
                        // The last few bytes, padded with zeros (which are not marks).
                        let mut b = [0u8; 64];
                        b[..rest.len()].copy_from_slice(rest);
                        block_masks(&b)
                    }
                };
                self.base = block;
            }
            let found = self.found(or_eq) & (!0u64 << skip);
            if found != 0 {
                return Some(block + found.trailing_zeros() as usize);
            }
            block += 64;
            skip = 0;
        }
        None
    }
}

/// The '\n' and '=' masks of a block, sixteen bytes at a time (SSE2).
#[cfg(target_arch = "x86_64")]
fn block_masks(b: &[u8; 64]) -> (u64, u64) {
    // SAFETY: SSE2 is part of x86_64 itself: every x86_64 CPU has it.
    unsafe { block_masks_sse2(b) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn block_masks_sse2(b: &[u8; 64]) -> (u64, u64) {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    let nl = _mm_set1_epi8(b'\n' as i8);
    let eq = _mm_set1_epi8(b'=' as i8);
    let (mut n, mut e) = (0u64, 0u64);
    for (i, chunk) in b.chunks_exact(16).enumerate() {
        // SAFETY: `chunk` is 16 readable bytes, and this load has no alignment requirement.
        let v = unsafe { _mm_loadu_si128(chunk.as_ptr().cast()) };
        n |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, nl)) as u16) << (16 * i);
        e |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, eq)) as u16) << (16 * i);
    }
    (n, e)
}

#[cfg(not(target_arch = "x86_64"))]
fn block_masks(b: &[u8; 64]) -> (u64, u64) {
    block_masks_plain(b)
}

/// [`block_masks`] a byte at a time: what other architectures use, and what the SSE2 one is
/// held to.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn block_masks_plain(b: &[u8; 64]) -> (u64, u64) {
    let (mut n, mut e) = (0u64, 0u64);
    for (i, &c) in b.iter().enumerate() {
        n |= u64::from(c == b'\n') << i;
        e |= u64::from(c == b'=') << i;
    }
    (n, e)
}

/// A bad line for an error message: at most 100 bytes of it, since it may be 64 KiB.
fn show_line(line: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(&line[..line.len().min(100)]).into_owned();
    if line.len() > 100 {
        s.push_str("...");
    }
    s
}

fn request_from(slots: &[Option<&[u8]>; SLOTS]) -> Request {
    let take = |i: usize| {
        slots[i].map(|v| match std::str::from_utf8(v) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(v).into_owned(),
        })
    };
    Request {
        request: take(REQUEST),
        protocol_state: take(PROTOCOL_STATE),
        client_address: take(CLIENT_ADDRESS),
        client_name: take(CLIENT_NAME),
        sasl_username: take(SASL_USERNAME),
        instance: take(INSTANCE),
        sender: take(SENDER),
        recipient: take(RECIPIENT),
        queue_id: take(QUEUE_ID),
    }
}

/// The client's address, IPv4-mapped IPv6 as IPv4; `None` when Postfix sent none, an empty
/// one, `unknown` (its word for "no address") or anything that does not parse. The caller
/// answers DUNNO then: a request it cannot place must never earn OK.
pub fn client_ip(req: &Request) -> Option<IpAddr> {
    client_ip_bytes(req.client_address.as_deref().map(str::as_bytes))
}

/// [`client_ip`] of a [`RequestRef`]'s `client_address`. Bytes that are not UTF-8 are no
/// address, as their lossy copy in a [`Request`] is not.
pub fn client_ip_bytes(addr: Option<&[u8]>) -> Option<IpAddr> {
    match std::str::from_utf8(addr?).ok()? {
        "" | "unknown" => None,
        addr => crate::lease::parse_ip(addr).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// A request as Postfix 3.7 sends it for RCPT TO, every attribute present.
    fn postfix_request(client: &str, instance: &str) -> Vec<u8> {
        format!(
            "request=smtpd_access_policy\n\
             protocol_state=RCPT\n\
             protocol_name=ESMTP\n\
             helo_name=laptop.example.net\n\
             queue_id=\n\
             sender=alice@example.net\n\
             recipient=bob@example.org\n\
             recipient_count=0\n\
             client_address={client}\n\
             client_name=dsl-7.isp.example\n\
             reverse_client_name=dsl-7.isp.example\n\
             instance={instance}\n\
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
             server_address=192.0.2.1\n\
             server_port=25\n\
             compatibility_level=3.6\n\
             mail_version=3.7.11\n\
             client_port=51234\n\
             \n"
        )
        .into_bytes()
    }

    fn complete(buf: &[u8]) -> (Request, usize) {
        parse_request(buf).unwrap().expect("a complete request")
    }

    #[test]
    fn postfix_request_keeps_what_we_use() {
        let buf = postfix_request("192.0.2.7", "1a2b.66f0e0a1.9c3d4.0");
        let (req, used) = complete(&buf);
        assert_eq!(used, buf.len());
        assert_eq!(
            req,
            Request {
                request: Some("smtpd_access_policy".into()),
                protocol_state: Some("RCPT".into()),
                client_address: Some("192.0.2.7".into()),
                client_name: Some("dsl-7.isp.example".into()),
                sasl_username: Some(String::new()),
                instance: Some("1a2b.66f0e0a1.9c3d4.0".into()),
                sender: Some("alice@example.net".into()),
                recipient: Some("bob@example.org".into()),
                queue_id: Some(String::new()),
            }
        );
        assert_eq!(
            client_ip(&req),
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)))
        );
    }

    #[test]
    fn every_split_point_waits_for_the_empty_line() {
        let buf = postfix_request("2001:db8::7", "i1");
        for cut in 0..buf.len() {
            assert_eq!(parse_request(&buf[..cut]), Ok(None), "cut at {cut}");
        }
        let (req, used) = complete(&buf);
        assert_eq!(used, buf.len());
        assert_eq!(req.client_address.as_deref(), Some("2001:db8::7"));
    }

    #[test]
    fn pipelined_requests_come_out_one_by_one_whatever_the_read_sizes() {
        let mut stream = Vec::new();
        for (i, ip) in ["192.0.2.1", "2001:db8::2", "unknown"].iter().enumerate() {
            stream.extend(postfix_request(ip, &format!("i{i}")));
        }
        for chunk in [1, 2, 7, 100, 4096] {
            let mut buf = Vec::new();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some((req, used)) = parse_request(&buf).unwrap() {
                    got.push(req.instance.unwrap());
                    buf.drain(..used);
                }
            }
            assert!(buf.is_empty(), "chunk {chunk}: {} bytes left", buf.len());
            assert_eq!(got, ["i0", "i1", "i2"], "chunk {chunk}");
        }
        // Two whole requests and a partial third in one read.
        let mut buf = stream.clone();
        buf.truncate(stream.len() - 5);
        let (first, used) = complete(&buf);
        assert_eq!(first.client_address.as_deref(), Some("192.0.2.1"));
        let (second, used2) = complete(&buf[used..]);
        assert_eq!(second.client_address.as_deref(), Some("2001:db8::2"));
        assert_eq!(parse_request(&buf[used + used2..]), Ok(None));
    }

    #[test]
    fn size_cap_is_enforced_without_waiting_for_the_terminator() {
        // An endless attribute: refused as soon as the cap is reached.
        let mut endless = b"request=smtpd_access_policy\nsender=".to_vec();
        endless.resize(MAX_REQUEST - 1, b'a');
        assert_eq!(parse_request(&endless), Ok(None));
        endless.push(b'a');
        assert_eq!(parse_request(&endless), Err(ProtoError::TooLarge));
        // Endless well-formed lines, never an empty one.
        let many: Vec<u8> = b"x=y\n"
            .iter()
            .copied()
            .cycle()
            .take(MAX_REQUEST + 8)
            .collect();
        assert_eq!(parse_request(&many), Err(ProtoError::TooLarge));
        // Exactly at the cap is fine; one byte over is not, even when complete.
        let mut at_cap = b"client_address=192.0.2.7\nsender=".to_vec();
        at_cap.resize(MAX_REQUEST - 2, b'a');
        at_cap.extend_from_slice(b"\n\n");
        assert_eq!(at_cap.len(), MAX_REQUEST);
        let (req, used) = complete(&at_cap);
        assert_eq!(
            (req.client_address.as_deref(), used),
            (Some("192.0.2.7"), MAX_REQUEST)
        );
        let mut over = b"helo_name=x\n".to_vec();
        over.extend_from_slice(&at_cap);
        assert_eq!(parse_request(&over), Err(ProtoError::TooLarge));
        // The cap is per request: a second one after a full-size first is measured on its own.
        let mut two = at_cap.clone();
        two.extend(postfix_request("192.0.2.8", "i"));
        let (_, used) = complete(&two);
        assert_eq!(
            complete(&two[used..]).0.client_address.as_deref(),
            Some("192.0.2.8")
        );
    }

    #[test]
    fn malformed_lines_are_errors_as_soon_as_they_are_complete() {
        assert_eq!(
            parse_request(b"request=smtpd_access_policy\nclient_address\n"),
            Err(ProtoError::NoEquals {
                line: 2,
                text: "client_address".into()
            })
        );
        // An incomplete bad line is not judged yet.
        assert_eq!(
            parse_request(b"request=smtpd_access_policy\nclient_addr"),
            Ok(None)
        );
        assert_eq!(
            parse_request(b"=192.0.2.7\n\n"),
            Err(ProtoError::EmptyName {
                line: 1,
                text: "=192.0.2.7".into()
            })
        );
        assert!(matches!(
            parse_request(b"client\xff=1\n\n"),
            Err(ProtoError::BadName { line: 1, .. })
        ));
        let e = parse_request(b"GET / HTTP/1.1\r\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "policy request line 1 has no '=': 'GET / HTTP/1.1'");
    }

    #[test]
    fn odd_but_valid_requests() {
        // Binary junk in an attribute we skip is no reason to refuse an answer.
        let (req, _) = complete(b"helo_name=\xff\xfe\nclient_address=192.0.2.7\n\n");
        assert_eq!(
            client_ip(&req),
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)))
        );
        // A kept value that is not UTF-8 cannot pass for an address.
        let (req, _) = complete(b"client_address=192.0.2.7\xff\n\n");
        assert_eq!(client_ip(&req), None);
        // Values may contain '='.
        let (req, _) = complete(b"sasl_username=a=b\n\n");
        assert_eq!(req.sasl_username.as_deref(), Some("a=b"));
        // The last copy of a repeated attribute counts.
        let (req, _) = complete(b"client_address=192.0.2.1\nclient_address=192.0.2.2\n\n");
        assert_eq!(req.client_address.as_deref(), Some("192.0.2.2"));
        // An empty request is a request, consumed, with nothing in it.
        assert_eq!(complete(b"\nrequest=x\n\n"), (Request::default(), 1));
        // CRLF from a person typing into telnet.
        let (req, used) = complete(b"request=smtpd_access_policy\r\nclient_address=::1\r\n\r\nx");
        assert_eq!(used, 51);
        assert_eq!(req.request.as_deref(), Some("smtpd_access_policy"));
        assert_eq!(client_ip(&req), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    }

    /// The parse as first written (one line search per line), to hold the faster one to.
    fn reference(buf: &[u8]) -> Result<Option<(RequestRef<'_>, usize)>, ProtoError> {
        // Only the first MAX_REQUEST bytes can belong to an acceptable request.
        let window = &buf[..buf.len().min(MAX_REQUEST)];
        let mut slots: [Option<&[u8]>; SLOTS] = [None; SLOTS];
        let mut pos = 0;
        // One search for line ends over the buffer rather than one per line: Postfix's ~30
        // lines are short, and the policy service parses a request for every SMTP command.
        for (i, end) in memchr::memchr_iter(b'\n', window).enumerate() {
            let line_no = i + 1;
            let raw = &window[pos..end];
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            pos = end + 1;
            if line.is_empty() {
                return Ok(Some((RequestRef { slots }, pos)));
            }
            let shown = || show_line(line);
            // Names are short: a plain scan finds the '=' sooner than a vectorised search.
            let eq = line
                .iter()
                .position(|&b| b == b'=')
                .ok_or_else(|| ProtoError::NoEquals {
                    line: line_no,
                    text: shown(),
                })?;
            let name = &line[..eq];
            if name.is_empty() {
                return Err(ProtoError::EmptyName {
                    line: line_no,
                    text: shown(),
                });
            }
            if !name.is_ascii() && std::str::from_utf8(name).is_err() {
                return Err(ProtoError::BadName {
                    line: line_no,
                    text: shown(),
                });
            }
            if let Some(i) = slot(name) {
                slots[i] = Some(&line[eq + 1..]);
            }
        }
        if buf.len() >= MAX_REQUEST {
            Err(ProtoError::TooLarge)
        } else {
            Ok(None)
        }
    }

    proptest::proptest! {
        /// Any bytes, pieces of requests among them, parse as the plain version parses them:
        /// the same requests, the same errors, the same "not yet".
        #[test]
        fn the_block_at_a_time_parse_agrees_with_the_plain_one(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                &b"client_address="[..], b"192.0.2.1", b"protocol_state=RCPT", b"instance=",
                b"x", b"=", b"\n", b"\r", b"\r\n", b"\n\n", b"\xff", b"\xc3\xa9", b"\x8a", b"\xbd", b"a=b=c",
                b"queue_id", b"0123456", b"sender=s@example.net",
            ]), 0..40)
        ) {
            let buf: Vec<u8> = parts.concat();
            proptest::prop_assert_eq!(parse_request_ref(&buf), reference(&buf));
            for cut in 0..buf.len() {
                proptest::prop_assert_eq!(parse_request_ref(&buf[..cut]), reference(&buf[..cut]));
            }
        }
    }

    proptest::proptest! {
        /// The SSE2 masks are the byte-at-a-time ones, for any block.
        #[test]
        fn the_block_masks_agree_with_a_byte_at_a_time(
            bytes in proptest::collection::vec(proptest::sample::select(vec![
                b'\n', b'=', b'a', 0, 0xff, b'\r', 0x0a | 0x80, b'=' | 0x80,
            ]), 64)
        ) {
            let Some(block) = bytes.first_chunk::<64>() else {
                return Err(proptest::test_runner::TestCaseError::fail("64 bytes"));
            };
            proptest::prop_assert_eq!(block_masks(block), block_masks_plain(block));
        }
    }

    /// Requests of real length, cut at every byte: lines and their '=' fall on both sides of
    /// every 64-byte block boundary.
    #[test]
    fn real_requests_cut_anywhere_parse_as_the_plain_version_does() {
        let mut stream = postfix_request("192.0.2.7", "i1");
        stream.extend(postfix_request("2001:db8::7", "i2"));
        stream.extend_from_slice(b"a=b=c\r\nqueue_id=\r\n\r\nnoequals\n\n");
        for start in 0..70 {
            let s = &stream[start..];
            for cut in 0..=s.len() {
                assert_eq!(
                    parse_request_ref(&s[..cut]),
                    reference(&s[..cut]),
                    "{start} {cut}"
                );
            }
        }
    }

    #[test]
    fn the_borrowed_view_agrees_with_the_copy() {
        let mut stream = postfix_request("192.0.2.7", "i1");
        stream.extend(postfix_request("2001:db8::7", "i2"));
        stream.extend_from_slice(b"client_address=192.0.2.7\xff\n\n\nclient_address=unknown\n\n");
        let mut at = 0;
        while let Some((view, n)) = parse_request_ref(&stream[at..]).unwrap() {
            let (req, m) = parse_request(&stream[at..]).unwrap().unwrap();
            assert_eq!(n, m);
            assert_eq!(view.to_request(), req);
            assert_eq!(client_ip_bytes(view.client_address()), client_ip(&req));
            at += n;
        }
        assert_eq!(at, stream.len());
        assert_eq!(
            parse_request_ref(b"x\n"),
            Err(ProtoError::NoEquals {
                line: 1,
                text: "x".into()
            })
        );
    }

    #[test]
    fn client_ip_never_guesses() {
        let ip = |addr: Option<&str>| {
            client_ip(&Request {
                client_address: addr.map(str::to_string),
                ..Request::default()
            })
        };
        assert_eq!(
            ip(Some("2001:db8::7")),
            Some("2001:db8::7".parse::<IpAddr>().unwrap())
        );
        assert_eq!(
            ip(Some("::ffff:192.0.2.7")),
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
            "an IPv4-mapped client is its IPv4 address, as leases are keyed"
        );
        for none in [
            None,
            Some(""),
            Some("unknown"),
            Some("192.0.2"),
            Some("fe80::1%eth0"),
            Some("x"),
        ] {
            assert_eq!(ip(none), None, "{none:?}");
        }
    }

    #[test]
    fn replies() {
        assert_eq!(reply(Action::Ok), b"action=OK\n\n");
        assert_eq!(reply(Action::Dunno), b"action=DUNNO\n\n");
        let defer = std::str::from_utf8(reply(Action::DeferIfReject)).unwrap();
        assert_eq!(defer, format!("action=DEFER_IF_REJECT {DEFER_TEXT}\n\n"));
        let mut out = Vec::new();
        write_prepend(&mut out, "X-Relayed-By", "pop-before-smtp; user=alice");
        assert_eq!(
            out,
            b"action=PREPEND X-Relayed-By: pop-before-smtp; user=alice\n\n"
        );
    }
}
