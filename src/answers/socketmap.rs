//! The socketmap lookup server: Sendmail's and Postfix's `socketmap` tables ask it whether a
//! client address may relay. Never OK unless the map name is ours and the key is an address
//! that may relay now.

use std::sync::Arc;
use std::time::Duration;

use super::request_loop::{Answerer, Step, serve_connection};
use super::socketmap_proto::{
    MAX_REQUEST, Reply, key_address, parse_netstring, split_request, write_reply,
};
use crate::lease::{Millis, now_ms};
use crate::listen::{Listener, Service, Sharing, serve_each};
use crate::shutdown::Shutdown;
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
    shutdown: Shutdown,
    grace: Duration,
) {
    let map = Arc::new(map);
    let service = Service {
        name: "socketmap",
        max_conns: MAX_CONNS,
        when_full: "",
        sharing: Sharing::by_uid(MAX_CONNS, super::postfix_policy::RESERVED),
    };
    serve_each(listener, service, shutdown, grace, |a, stop| {
        let socketmap = Socketmap {
            leases: leases.clone(),
            map: map.clone(),
        };
        serve_connection(a.conn, socketmap, IDLE, stop)
    })
    .await;
}

/// The socketmap side of [`serve_connection`]: requests are netstrings.
struct Socketmap {
    leases: Arc<Leases>,
    map: Arc<MapConfig>,
}

impl Answerer for Socketmap {
    fn maybe_complete(&self, buf: &[u8], _: usize) -> bool {
        !buf.is_empty()
    }

    fn answer(&mut self, buf: &[u8], out: &mut Vec<u8>) -> Step {
        let mut used = 0;
        loop {
            match parse_netstring(&buf[used..]) {
                Ok(Some((payload, n))) => {
                    write_reply(out, &decide(payload, &self.map, &self.leases, now_ms()));
                    used += n;
                }
                Ok(None) => return Step::Used(used),
                Err(e) => {
                    tracing::warn!(error = %e, "socketmap: bad request, closing the connection");
                    write_reply(out, &Reply::Perm(e.to_string()));
                    return Step::Close;
                }
            }
        }
    }

    /// A netstring's length prefix says when it is too long, before this is reached.
    fn max_request(&self) -> usize {
        MAX_REQUEST + 16
    }

    fn too_large(&mut self, out: &mut Vec<u8>) {
        tracing::warn!("socketmap: request too long, closing the connection");
        write_reply(
            out,
            &Reply::Perm(format!("request over {MAX_REQUEST} bytes")),
        );
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
