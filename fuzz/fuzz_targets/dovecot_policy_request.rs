//! Dovecot's auth-policy requests: method, path and query, headers and a JSON body.
//!
//! Input: one settings byte (bit 0: a secret is required; bits 1-2: the method), then the
//! path and query up to `\n`, header lines `Name: value` up to an empty line, then the body.
//!
//! Invariants: no panic; the status is one of the documented ones; every reply body is JSON,
//! the neutral `{"status":0,"msg":""}` exactly when the status is 200; a login only from a
//! `report` of `"success":true` without `"policy_reject":true`, its address canonical and
//! spelt in the body; never a login without the secret when one is required; judging the
//! head and then the body gives what judging the whole request gives; an `ApiHeader` read
//! from any text holds no line break.

#![no_main]

use libfuzzer_sys::fuzz_target;
use relaylease::lease::canonical;
use relaylease::sources::dovecot_auth_policy_proto::{
    ApiHeader, NEUTRAL, check_head, decide, decide_body,
};

fuzz_target!(|data: &[u8]| {
    let Some((&settings, rest)) = data.split_first() else {
        return;
    };
    let secret = ApiHeader::parse("X-Relaylease-Secret: s3cr3t").expect("a header");
    let secret = (settings & 1 == 1).then_some(&secret);
    let method = ["POST", "GET", "PUT", "post"][usize::from(settings >> 1 & 3)];
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split('\n');
    let query = lines.next().unwrap_or_default();
    let headers: Vec<(&str, &[u8])> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n, v.as_bytes()))
        .collect();

    let d = decide(method, query, headers.iter().copied(), body, secret);
    assert!([200, 400, 401, 403, 404, 405, 413].contains(&d.status), "{}", d.status);
    assert_eq!(d.status == 200, d.body == NEUTRAL, "{}", d.body);
    assert!(serde_json::from_str::<serde_json::Value>(&d.body).is_ok(), "{}", d.body);
    let split = match check_head(method, query, headers.iter().copied(), Some(body.len() as u64), secret) {
        Ok(cmd) => decide_body(cmd, body),
        Err(r) => relaylease::sources::dovecot_auth_policy_proto::Decision::refused(r),
    };
    assert_eq!(split, d);
    if let Some(login) = &d.login {
        assert_eq!(d.status, 200);
        assert_eq!(method, "POST");
        assert!(query.contains("command=report"), "{query}");
        let json: serde_json::Value = serde_json::from_slice(body).expect("a granting body is JSON");
        assert_eq!(json.get("success"), Some(&serde_json::Value::Bool(true)));
        assert_ne!(json.get("policy_reject"), Some(&serde_json::Value::Bool(true)));
        assert_eq!(canonical(login.ip), login.ip);
        let remote = json.get("remote").and_then(|r| r.as_str()).expect("a remote");
        assert_eq!(relaylease::lease::parse_ip(remote).ok(), Some(login.ip));
        if secret.is_some() {
            assert!(
                headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("x-relaylease-secret")
                    && v.trim_ascii() == b"s3cr3t"),
                "a login without the secret"
            );
        }
    }
    if let Some(h) = ApiHeader::parse(&String::from_utf8_lossy(rest)) {
        assert!(!h.name.is_empty() && !h.value.is_empty());
        assert!(!h.value.contains(['\r', '\n']) && !h.name.contains(['\r', '\n', ':']));
    }
});
