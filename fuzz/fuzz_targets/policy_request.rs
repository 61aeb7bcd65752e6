//! Postfix policy requests: `parse_request` over a whole buffer and fed in chunks.
//!
//! Input: two bytes of settings, then the stream.
//! - settings[0] & 1: repeat the stream past `MAX_REQUEST`, to reach the size cap;
//! - settings[1]: seeds the chunk sizes of the incremental feed.
//!
//! Invariants: the requests (and the final error or leftover bytes) are the same however the
//! stream is split; `consumed` ends just after a `\n` and never exceeds the cap; `client_ip` is
//! `Some` only for a value that is an address, and then it is that address (IPv4-mapped as IPv4).

#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use relaylease::answers::postfix_policy_proto::{
    MAX_REQUEST, ProtoError, Request, client_ip, parse_request,
};
use relaylease::lease::canonical;

#[derive(Debug, PartialEq)]
enum End {
    Error(ProtoError),
    Waiting(Vec<u8>),
}

/// Take every complete request from `buf`, as the policy server's loop does.
fn drain(buf: &mut Vec<u8>, out: &mut Vec<Request>) -> Result<(), ProtoError> {
    while let Some((req, used)) = parse_request(buf)? {
        assert!(
            used > 0 && used <= buf.len(),
            "consumed {used} of {}",
            buf.len()
        );
        assert!(used <= MAX_REQUEST, "consumed {used}, over the cap");
        assert_eq!(buf[used - 1], b'\n', "a request ends with its empty line");
        check(&req);
        out.push(req);
        buf.drain(..used);
    }
    Ok(())
}

fn check(req: &Request) {
    for v in [
        &req.request,
        &req.protocol_state,
        &req.client_address,
        &req.client_name,
        &req.sasl_username,
        &req.instance,
    ]
    .into_iter()
    .flatten()
    {
        assert!(!v.contains('\n'), "a value holds a newline: {v:?}");
    }
    let Some(ip) = client_ip(req) else {
        return;
    };
    let text = req
        .client_address
        .as_deref()
        .expect("an address from nothing");
    assert!(text.is_ascii(), "{ip} from a non-ASCII value {text:?}");
    let t = text.trim();
    let t = t
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(t);
    let parsed: IpAddr = t
        .parse()
        .unwrap_or_else(|_| panic!("{ip} from {text:?}, which is no address"));
    assert_eq!(canonical(parsed), ip, "{text:?}");
    assert_eq!(canonical(ip), ip, "not canonical: {ip}");
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, seed, stream @ ..] = data else {
        return;
    };
    let stream = if flags & 1 != 0 && !stream.is_empty() {
        stream.repeat(MAX_REQUEST / stream.len() + 2)
    } else {
        stream.to_vec()
    };

    let mut whole = stream.clone();
    let mut at_once = Vec::new();
    let end_at_once = match drain(&mut whole, &mut at_once) {
        Ok(()) => End::Waiting(whole),
        Err(e) => End::Error(e),
    };

    // Small chunks for small streams; at least 1 KiB for big ones, since each call rescans
    // the buffer from its start.
    let biggest = if stream.len() > 4096 {
        1024 + usize::from(*seed) * 64
    } else {
        1 + usize::from(*seed % 64)
    };
    let smallest = if stream.len() > 4096 { 1024 } else { 1 };
    let mut rng = XorShift(u64::from(*seed) | 0x100);
    let mut buf = Vec::new();
    let mut piecewise = Vec::new();
    let mut rest = &stream[..];
    let mut end_piecewise = None;
    while !rest.is_empty() {
        let n = (smallest + rng.next() as usize % biggest).min(rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        if let Err(e) = drain(&mut buf, &mut piecewise) {
            end_piecewise = Some(End::Error(e));
            break;
        }
    }
    let end_piecewise = end_piecewise.unwrap_or(End::Waiting(buf));

    assert_eq!(at_once, piecewise, "requests differ with the split");
    assert_eq!(
        end_at_once, end_piecewise,
        "the stream ends differently with the split"
    );
});
