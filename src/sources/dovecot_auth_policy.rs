//! The Dovecot auth-policy server: Dovecot's HTTP reports of successful logins become leases,
//! judged like a hook's logins; every `allow` check is answered at once and neutrally.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::dovecot_auth_policy_proto::{
    ApiHeader, Decision, MAX_BODY, PolicyLogin, Refusal, check_head, decide_body,
};
use crate::lease::{Login, SOURCE_DOVECOT_POLICY, now_ms};
use crate::listen::{Conn, Listener, Service, Sharing, serve_each};
use crate::shutdown::Shutdown;
use crate::store::{Leases, Stats};

/// Connections served at once (Dovecot opens up to 100 per auth process and keeps them).
pub const MAX_CONNS: usize = 256;
/// A client that sends no request head within this long (idle between requests, or a slow
/// head) is closed. Dovecot itself closes an idle connection after 10 s.
pub const IDLE: Duration = Duration::from_secs(30);
/// How long the body of one request may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// `--dovecot-policy` and `--dovecot-policy-secret-file`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyConfig {
    pub addr: std::net::SocketAddr,
    /// The `auth_policy_server_api_header` every request must carry, if one is required.
    pub secret: Option<ApiHeader>,
}

/// Serve until `shutdown`; then stop accepting and give requests in flight `grace`.
pub async fn serve(
    listener: Listener,
    leases: Arc<Leases>,
    secret: Option<ApiHeader>,
    shutdown: Shutdown,
    grace: Duration,
) {
    let secret = Arc::new(secret);
    let service = Service {
        name: "dovecot-policy",
        max_conns: MAX_CONNS,
        when_full: " (Dovecot then lets the login go on unjudged)",
        // Loopback TCP: no peer credentials, only the total applies.
        sharing: Sharing::by_uid(MAX_CONNS, 0),
    };
    serve_each(listener, service, shutdown, grace, |a, stop| {
        connection(a.conn, leases.clone(), secret.clone(), stop, IDLE)
    })
    .await;
}

/// One HTTP/1 connection, possibly carrying many requests.
async fn connection(
    conn: Box<dyn Conn>,
    leases: Arc<Leases>,
    secret: Arc<Option<ApiHeader>>,
    mut shutdown: Shutdown,
    idle: Duration,
) {
    let service = service_fn(move |req| {
        let (leases, secret) = (leases.clone(), secret.clone());
        async move { Ok::<_, Infallible>(answer(req, &leases, (*secret).as_ref()).await) }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(idle)
        .max_buf_size(MAX_BODY.max(8192))
        .serve_connection(TokioIo::new(conn), service);
    tokio::pin!(served);
    let result = tokio::select! {
        r = served.as_mut() => r,
        _ = shutdown.recv() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    match result {
        Err(e) if e.is_parse() || e.is_parse_too_large() => {
            tracing::warn!(error = %e, "dovecot-policy: not HTTP, connection closed");
        }
        Err(e) => tracing::debug!(error = %e, "dovecot-policy: connection ended with an error"),
        Ok(()) => {}
    }
}

/// Read, judge and answer one request, recording the login it reports.
async fn answer(
    req: Request<Incoming>,
    leases: &Arc<Leases>,
    secret: Option<&ApiHeader>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()));
    let decision = match check_head(
        parts.method.as_str(),
        path_and_query,
        headers,
        declared,
        secret,
    ) {
        Err(r) => Decision::refused(r),
        Ok(cmd) => match read_body(body).await {
            Ok(bytes) => decide_body(cmd, &bytes),
            Err(r) => Decision::refused(r),
        },
    };
    tracing::debug!(
        status = decision.status,
        query = path_and_query,
        login = decision.login.is_some(),
        "dovecot-policy: answered"
    );
    if decision.status != 200 {
        tracing::warn!(status = decision.status, method = %parts.method, path = %parts.uri.path(),
            reason = decision.note.unwrap_or(""), "dovecot-policy: request refused, nothing granted");
    } else if let Some(why) = decision.note {
        tracing::debug!(why, "dovecot-policy: report grants nothing");
    }
    if let Some(login) = decision.login.clone() {
        record(leases, login).await;
    }
    respond(&decision)
}

/// The body, at most [`MAX_BODY`] bytes read, within [`BODY_TIMEOUT`].
async fn read_body(body: Incoming) -> Result<Bytes, Refusal> {
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(Refusal::TooLarge),
        Ok(Err(_)) | Err(_) => Err(Refusal::BadRequest),
    }
}

/// Hand the login to the lease table (a durable write: off the async workers).
async fn record(leases: &Arc<Leases>, login: PolicyLogin) {
    let service = login.service.clone().unwrap_or_else(|| "-".into());
    let leases = leases.clone();
    let ip = login.ip;
    let done = tokio::task::spawn_blocking(move || {
        let now = now_ms();
        let login = Login {
            ip: login.ip,
            user: login.user,
            at: now,
            source: SOURCE_DOVECOT_POLICY.into(),
        };
        let r = leases.login(&login, now, true, None);
        if r.is_err() {
            Stats::bump(&leases.stats.errors);
        }
        r
    })
    .await;
    match done {
        Ok(Ok(_)) => tracing::debug!(addr = %ip, service, "dovecot-policy: login recorded"),
        Ok(Err(e)) => tracing::error!(addr = %ip, service, error = %e,
            "dovecot-policy: cannot record login"),
        Err(e) => tracing::error!(addr = %ip, error = %e, "dovecot-policy: login task failed"),
    }
}

fn respond(d: &Decision) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(d.body.clone())));
    *r.status_mut() = StatusCode::from_u16(d.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // A refused client gets no second request on this connection, nor its body read.
    if d.status != 200 {
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if d.status == Refusal::MethodNotAllowed.status() {
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::Rules;
    use crate::store::{Opened, SledBackend};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn leases(dir: &std::path::Path) -> Arc<Leases> {
        let Ok(Opened::Fine(b)) = SledBackend::open(&dir.join("db")) else {
            panic!("open");
        };
        Arc::new(Leases::open(Box::new(b), Rules::default(), now_ms()).unwrap())
    }

    /// Serve one in-memory connection; returns the client's end.
    fn serve_pipe(
        leases: Arc<Leases>,
        secret: Option<ApiHeader>,
    ) -> (
        tokio::io::DuplexStream,
        tokio::task::JoinHandle<()>,
        crate::shutdown::Trigger,
    ) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let (tx, rx) = crate::shutdown::channel();
        let task = tokio::spawn(connection(
            Box::new(server),
            leases,
            Arc::new(secret),
            rx,
            IDLE,
        ));
        (client, task, tx)
    }

    async fn read_response(c: &mut tokio::io::DuplexStream) -> String {
        let mut buf = vec![0u8; 4096];
        let n = c.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    fn post(query: &str, extra: &str, body: &str) -> String {
        format!(
            "POST {query} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn reports_on_one_kept_alive_connection_grant_and_allow_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let leases = leases(dir.path());
        let secret = ApiHeader::parse("X-Secret: s").unwrap();
        let (mut c, _task, _stop) = serve_pipe(leases.clone(), Some(secret));
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let allow = r#"{"remote":"192.0.2.1","login":"alice","protocol":"pop3"}"#;
        c.write_all(post("/?command=allow", "X-Secret: s\r\n", allow).as_bytes())
            .await
            .unwrap();
        let r = read_response(&mut c).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.ends_with(r#"{"status":0,"msg":""}"#), "{r}");
        assert!(!leases.allowed(ip("192.0.2.1"), now_ms()));
        let report = r#"{"remote":"192.0.2.1","login":"alice","protocol":"pop3","success":true,"policy_reject":false}"#;
        c.write_all(post("/?command=report", "X-Secret: s\r\n", report).as_bytes())
            .await
            .unwrap();
        let r = read_response(&mut c).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(leases.allowed(ip("192.0.2.1"), now_ms()));
        // The same report with a wrong secret, on the same connection: 403, nothing granted.
        let other = report.replace("192.0.2.1", "192.0.2.2");
        c.write_all(post("/?command=report", "X-Secret: t\r\n", &other).as_bytes())
            .await
            .unwrap();
        let r = read_response(&mut c).await;
        assert!(r.starts_with("HTTP/1.1 403"), "{r}");
        assert!(!leases.allowed(ip("192.0.2.2"), now_ms()));
        // And then the connection is closed: a refused client gets no second request.
        let mut rest = [0u8; 64];
        assert_eq!(c.read(&mut rest).await.unwrap_or(0), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_client_is_closed_and_a_huge_body_refused_unread() {
        // A database of its own for each connection: sled's flusher thread may still hold
        // the previous one's lock for a moment after it is dropped.
        let dir = tempfile::tempdir().unwrap();
        let (mut c, task, _stop) = serve_pipe(leases(&dir.path().join("1")), None);
        tokio::time::sleep(IDLE + Duration::from_secs(1)).await;
        let mut buf = [0u8; 64];
        assert_eq!(
            c.read(&mut buf).await.unwrap_or(0),
            0,
            "closed after idling"
        );
        task.await.unwrap();

        // Idle after a request too (Dovecot keeps its connections between requests).
        let (mut c, task, _stop) = serve_pipe(leases(&dir.path().join("2")), None);
        c.write_all(post("/?command=allow", "", "{}").as_bytes())
            .await
            .unwrap();
        assert!(read_response(&mut c).await.starts_with("HTTP/1.1 200"));
        tokio::time::sleep(IDLE + Duration::from_secs(1)).await;
        assert_eq!(
            c.read(&mut buf).await.unwrap_or(0),
            0,
            "closed after idling"
        );
        task.await.unwrap();

        let (mut c, _task, _stop) = serve_pipe(leases(&dir.path().join("3")), None);
        let head = format!(
            "POST /?command=report HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            1u64 << 32
        );
        c.write_all(head.as_bytes()).await.unwrap();
        let r = read_response(&mut c).await;
        assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    }

    #[tokio::test]
    async fn a_shutdown_closes_an_idle_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, task, stop) = serve_pipe(leases(dir.path()), None);
        c.write_all(post("/?command=allow", "", "{}").as_bytes())
            .await
            .unwrap();
        assert!(read_response(&mut c).await.starts_with("HTTP/1.1 200"));
        stop.pull();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the connection ends at shutdown")
            .unwrap();
    }
}
