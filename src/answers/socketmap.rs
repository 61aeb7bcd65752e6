//! The socketmap lookup server: Sendmail's and Postfix's `socketmap` tables ask it whether a
//! client address may relay. Never OK unless the map name is ours and the key is an address
//! that may relay now.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::socketmap_proto::{Reply, key_address, parse_netstring, split_request, write_reply};
use crate::lease::{Millis, now_ms};
use crate::listen::{Conn, Listener, serve_each};
use crate::store::Leases;

/// Connections served at once (Postfix and Sendmail keep theirs open between lookups).
pub const MAX_CONNS: usize = 1024;
/// A connection that completes no request for this long is closed.
pub const IDLE: Duration = Duration::from_secs(600);

/// `--socketmap-name` and `--socketmap-value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapConfig {
    pub name: String,
    pub value: String,
}

/// The answer to one request's payload (`NAME KEY`).
pub fn decide<'a>(payload: &[u8], map: &'a MapConfig, leases: &Leases, now: Millis) -> Reply<'a> {
    let Some((name, key)) = split_request(payload) else {
        return Reply::Perm("a request is NAME KEY".into());
    };
    if name != map.name.as_bytes() {
        return Reply::Perm(format!(
            "unknown map '{}' (this is '{}')",
            String::from_utf8_lossy(name),
            map.name
        ));
    }
    match key_address(key) {
        Some(ip) if super::lease_use::grants(leases, ip, now, crate::usage::Method::Socketmap) => {
            Reply::Ok(&map.value)
        }
        _ => Reply::NotFound,
    }
}

/// Serve until `shutdown`; then stop accepting and give lookups in flight `grace`.
pub async fn serve(
    listener: Listener,
    leases: Arc<Leases>,
    map: MapConfig,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let map = Arc::new(map);
    serve_each(
        listener,
        "socketmap",
        MAX_CONNS,
        "",
        shutdown,
        grace,
        |conn, stop| connection(conn, leases.clone(), map.clone(), stop),
    )
    .await;
}

async fn connection(
    mut conn: Box<dyn Conn>,
    leases: Arc<Leases>,
    map: Arc<MapConfig>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    let mut out: Vec<u8> = Vec::with_capacity(64);
    let mut chunk = [0u8; 4096];
    let idle = tokio::time::sleep(IDLE);
    tokio::pin!(idle);
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        let mut used = 0;
        let mut fatal = None;
        loop {
            match parse_netstring(&buf[used..]) {
                Ok(Some((payload, n))) => {
                    write_reply(&mut out, &decide(payload, &map, &leases, now_ms()));
                    used += n;
                }
                Ok(None) => break,
                Err(e) => {
                    fatal = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = fatal {
            tracing::warn!(error = %e, "socketmap: bad request, closing the connection");
            write_reply(&mut out, &Reply::Perm(e.to_string()));
            let _ = conn.write_all(&out).await;
            return;
        }
        if used > 0 {
            buf.drain(..used);
            if conn.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
            idle.as_mut().reset(Instant::now() + IDLE);
        }
        tokio::select! {
            r = conn.read(&mut chunk) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
            _ = &mut idle => return,
            _ = &mut stopped, if buf.is_empty() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::{Rules, parse_ip};
    use crate::store::{Opened, SledBackend};

    #[test]
    fn ok_only_for_our_map_and_an_address_that_may_relay() {
        let dir = tempfile::tempdir().unwrap();
        let Ok(Opened::Fine(b)) = SledBackend::open(&dir.path().join("db")) else {
            panic!("open");
        };
        let rules = Rules {
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            ..Rules::default()
        };
        let now = now_ms();
        let leases = Leases::open(Box::new(b), rules, now).unwrap();
        leases
            .add(parse_ip("192.0.2.7").unwrap(), Duration::from_secs(60), now)
            .unwrap();
        let map = MapConfig {
            name: "relaylease".into(),
            value: "RELAY".into(),
        };
        let ask = |payload: &str, at: Millis| decide(payload.as_bytes(), &map, &leases, at);
        assert_eq!(ask("relaylease 192.0.2.7", now), Reply::Ok("RELAY"));
        assert_eq!(
            ask("relaylease IPv6:::ffff:192.0.2.7", now),
            Reply::Ok("RELAY")
        );
        assert_eq!(ask("relaylease 10.1.2.3", now), Reply::Ok("RELAY"));
        assert_eq!(ask("relaylease 192.0.2.8", now), Reply::NotFound);
        assert_eq!(ask("relaylease 192.0.2", now), Reply::NotFound);
        assert_eq!(ask("relaylease mail.example.org", now), Reply::NotFound);
        assert_eq!(ask("relaylease 192.0.2.7", now + 61_000), Reply::NotFound);
        assert!(matches!(ask("other 192.0.2.7", now), Reply::Perm(r) if r.contains("'other'")));
        assert!(matches!(ask("relaylease", now), Reply::Perm(_)));
    }
}
