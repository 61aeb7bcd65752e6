//! The socketmap protocol: a stream of netstrings, as Sendmail and Postfix send them.
//!
//! Invariants: the stream splits into the same requests and the same error whether it is
//! parsed from the start or resumed after each request; a request is never longer than
//! `MAX_REQUEST`; every key that names an address is canonical; every reply, whatever the
//! value or reason, reads back as one netstring.

#![no_main]

use libfuzzer_sys::fuzz_target;
use relaylease::answers::socketmap_proto::{
    MAX_REQUEST, ProtoError, Reply, key_address, parse_netstring, split_request, write_reply,
};
use relaylease::lease::canonical;

fuzz_target!(|data: &[u8]| {
    let mut at = 0;
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds <= data.len() + 1, "no progress");
        match parse_netstring(&data[at..]) {
            Ok(Some((payload, used))) => {
                assert!(payload.len() <= MAX_REQUEST);
                assert!(used > payload.len() && at + used <= data.len());
                assert_eq!(data[at + used - 1], b',');
                if let Some((_name, key)) = split_request(payload)
                    && let Some(ip) = key_address(key)
                {
                    assert_eq!(canonical(ip), ip);
                }
                // A longer buffer holding the same netstring parses the same.
                let mut more = data[at..at + used].to_vec();
                more.extend_from_slice(b"9:");
                assert_eq!(parse_netstring(&more), Ok(Some((payload, used))));
                at += used;
            }
            Ok(None) => break,
            Err(ProtoError::TooLong(n)) => {
                assert!(n > MAX_REQUEST);
                break;
            }
            Err(ProtoError::Malformed(_)) => break,
        }
    }
    // Replies built from arbitrary text are single netstrings.
    let text = String::from_utf8_lossy(data);
    for reply in [Reply::Ok(&text), Reply::NotFound, Reply::Perm(text.to_string())] {
        let mut out = Vec::new();
        write_reply(&mut out, &reply);
        let parsed = parse_netstring(&out);
        if out.len() <= MAX_REQUEST {
            let (payload, used) = parsed.expect("a netstring").expect("whole");
            assert_eq!(used, out.len());
            assert!(!payload.iter().any(|b| b.is_ascii_control()));
        }
    }
});
