//! The Postfix policy service: `action=OK` for a leased or `--allow`ed client, else `DUNNO`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::lease_use::PolicySession;
use super::postfix_policy_proto::{
    Action, MAX_REQUEST, ProtoError, Request, RequestRef, client_ip, client_ip_bytes,
    parse_request_ref,
};
use super::request_loop::{Answerer, Step, serve_connection};
use crate::counters::Counters;
use crate::lease::{Millis, now_ms};
use crate::listen::{Listener, Service, Sharing, serve_each};
use crate::shutdown::Shutdown;
use crate::store::{Leases, Stats};

/// Connections served at once (each Postfix smtpd process keeps one open).
pub const MAX_CONNS: usize = 1024;
/// Slots beyond [`MAX_CONNS`] for root and the daemon's own user. Any other user may hold
/// half of [`MAX_CONNS`] at most, so one local user's idle connections leave Postfix (a user
/// of its own) at least the other half.
pub const RESERVED: usize = 64;
/// Postfix closes idle policy connections after 300 s (`smtpd_policy_service_max_idle`);
/// we wait longer so that it is always Postfix that decides. A connection that completes no
/// request for this long is closed, however slowly its bytes trickle in.
pub const IDLE: Duration = Duration::from_secs(600);

/// The answer for one request at RCPT. Never OK unless the client address parses and may
/// relay. The service itself answers through [`super::lease_use::PolicySession`], which
/// gives the same answers at RCPT, records the uses of leases, and answers differently at
/// DATA and END-OF-MESSAGE.
pub fn decide(leases: &Leases, req: &Request, now: Millis) -> Action {
    judge(leases, client_ip(req), req.client_address.as_deref(), now)
}

/// [`decide`] for a request still in the read buffer; what the service itself calls.
pub fn decide_ref(leases: &Leases, req: &RequestRef<'_>, now: Millis) -> Action {
    let raw = req.client_address();
    let ip = client_ip_bytes(raw);
    if ip.is_some() {
        return judge(leases, ip, None, now);
    }
    let shown = raw.map(String::from_utf8_lossy);
    judge(leases, None, shown.as_deref(), now)
}

/// `client_address` is only for the warning about an unusable one.
fn judge(leases: &Leases, ip: Option<IpAddr>, client_address: Option<&str>, now: Millis) -> Action {
    match ip {
        Some(ip) if leases.allowed(ip, now) => {
            tracing::debug!(addr = %ip, "policy: OK");
            Action::Ok
        }
        Some(_) => Action::Dunno,
        None => {
            tracing::warn!(
                client_address = client_address.unwrap_or(""),
                "policy request without a usable client_address: DUNNO"
            );
            Action::Dunno
        }
    }
}

/// Serve until `shutdown`; then stop accepting and give requests in flight `grace`.
pub async fn serve(
    listener: Listener,
    leases: Arc<Leases>,
    counters: Arc<Counters>,
    shutdown: Shutdown,
    grace: Duration,
) {
    let service = Service {
        name: "policy",
        max_conns: MAX_CONNS,
        when_full: " (Postfix uses its default_action)",
        sharing: Sharing::by_uid(MAX_CONNS, RESERVED),
    };
    serve_each(listener, service, shutdown, grace, |a, stop| {
        let policy = Policy {
            leases: leases.clone(),
            session: PolicySession::new(&leases, &counters),
        };
        serve_connection(a.conn, policy, IDLE, stop)
    })
    .await;
}

/// Postfix's side of [`serve_connection`]: requests end in an empty line; each is answered
/// by the connection's [`PolicySession`], which records the uses of leases.
struct Policy {
    leases: Arc<Leases>,
    session: PolicySession,
}

impl Answerer for Policy {
    fn maybe_complete(&self, buf: &[u8], from: usize) -> bool {
        has_blank_line(buf, from)
    }

    fn answer(&mut self, buf: &[u8], out: &mut Vec<u8>) -> Step {
        let mut used = 0;
        loop {
            match parse_request_ref(&buf[used..]) {
                Ok(Some((req, n))) => {
                    used += n;
                    self.session.answer(&req, now_ms(), out);
                }
                Ok(None) => return Step::Used(used),
                Err(ProtoError::TooLarge) => {
                    self.too_large(out);
                    return Step::Close;
                }
                Err(e) => {
                    Stats::bump(&self.leases.stats.errors);
                    tracing::warn!(error = %e, "policy: malformed request, closing without a reply (Postfix uses its default_action)");
                    return Step::Close;
                }
            }
        }
    }

    fn max_request(&self) -> usize {
        MAX_REQUEST
    }

    fn too_large(&mut self, _: &mut Vec<u8>) {
        Stats::bump(&self.leases.stats.errors);
        tracing::warn!(
            limit = MAX_REQUEST,
            "policy: request too large, closing without a reply (Postfix uses its default_action)"
        );
    }
}

/// Does `buf` hold an empty line (the end of a request) that ends at or after `from`?
/// A request may be empty (a lone newline) and lines may end in CRLF.
fn has_blank_line(buf: &[u8], from: usize) -> bool {
    // A request arrives whole in one read, so the buffer usually ends with its empty line:
    // then this scans nothing, and the parse is the only pass over the request.
    if buf.len() > from && (buf.ends_with(b"\n\n") || buf.ends_with(b"\n\r\n")) {
        return true;
    }
    let start = from.saturating_sub(2);
    if start == 0 && (buf.starts_with(b"\n") || buf.starts_with(b"\r\n")) {
        return true;
    }
    memchr::memchr_iter(b'\n', &buf[start..]).any(|i| {
        let i = start + i;
        buf[i + 1..].starts_with(b"\n") || buf[i + 1..].starts_with(b"\r\n")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::Rules;
    use crate::store::{Opened, SledBackend};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    #[test]
    fn blank_lines_end_requests_wherever_the_reads_split_them() {
        let req = b"request=smtpd_access_policy\nclient_address=192.0.2.1\n\n";
        assert!(has_blank_line(req, 0));
        assert!(!has_blank_line(&req[..req.len() - 1], 0));
        // Scanning resumes a little before `from`, so a terminator split across reads is seen.
        for from in 0..req.len() {
            assert!(has_blank_line(req, from), "from {from}");
        }
        assert!(has_blank_line(b"a=b\r\n\r\n", 5));
        assert!(has_blank_line(b"\n", 0));
        assert!(!has_blank_line(b"a=b\nc=d\n", 0));
    }

    /// One byte a second on the paused clock: the connection is closed once it has gone
    /// [`IDLE`] without a complete request, and not before.
    #[tokio::test(start_paused = true)]
    async fn a_request_trickling_in_is_closed_after_the_idle_limit() {
        let dir = tempfile::tempdir().unwrap();
        let Ok(Opened::Fine(b)) = SledBackend::open(&dir.path().join("db")) else {
            panic!("open");
        };
        let leases = Arc::new(Leases::open(Box::new(b), Rules::default(), now_ms()).unwrap());
        let (mut client, server) = tokio::io::duplex(1024);
        let served = tokio::spawn(serve_connection(
            Box::new(server),
            Policy {
                session: PolicySession::new(&leases, &Arc::default()),
                leases,
            },
            IDLE,
            Shutdown::never(),
        ));
        let answered = b"request=smtpd_access_policy\nclient_address=192.0.2.1\n\n";
        client.write_all(answered).await.unwrap();
        let mut reply = [0u8; 14];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"action=DUNNO\n\n");
        let start = Instant::now();
        let mut sent = 0u64;
        while !served.is_finished() && sent < 2 * IDLE.as_secs() {
            if client.write_all(b"x").await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert!(served.is_finished(), "still open after {sent} bytes");
        let open_for = start.elapsed();
        assert!(
            open_for >= IDLE && open_for <= IDLE + Duration::from_secs(2),
            "closed after {open_for:?}"
        );
    }
}
