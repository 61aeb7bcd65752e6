//! The control protocol: one JSON request line.
//!
//! Invariants: an error is a one-line reason; an accepted request is version 1 and reads back
//! the same from its own encoding.

#![no_main]

use libfuzzer_sys::fuzz_target;
use relaylease::control::proto::{VERSION, encode, parse_request, parse_response};

fuzz_target!(|data: &[u8]| {
    match parse_request(data) {
        Err(e) => assert!(
            !e.chars().any(char::is_control),
            "a reason that is not one line: {e:?}"
        ),
        Ok(req) => {
            assert_eq!(req.v, VERSION);
            let line = encode(&req);
            assert_eq!(line.last(), Some(&b'\n'));
            assert!(!line[..line.len() - 1].contains(&b'\n'), "{line:?}");
            assert_eq!(parse_request(&line), Ok(req.clone()), "round trip");
            let _ = req.op.writes();
            let _ = req.op.name();
        }
    }
    // The client reads replies with the same JSON machinery.
    if let Ok(resp) = parse_response(data) {
        assert_eq!(parse_response(&encode(&resp)), Ok(resp));
    }
});
