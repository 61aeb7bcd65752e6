//! The control socket server: JSON lines over a Unix socket, writes allowed by peer credentials.

use std::sync::Arc;
use std::time::Duration;

use nix::unistd::{Gid, Uid, User, getgrouplist};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::proto::{MAX_LINE, Op, Response, encode, parse_request, plain_check, plain_reply};
use crate::counters::Counters;
use crate::lease::{now_ms, parse_ip};
use crate::listen::{Accepted, Listener, Service, Sharing, serve_each};
use crate::shutdown::Shutdown;
use crate::store::{Leases, Stats};
use crate::usage::Method;
use tokio::net::unix::UCred;

/// Connections served at once, besides [`RESERVED`]; further ones are closed at once.
pub const MAX_CONNS: usize = 256;
/// Slots beyond [`MAX_CONNS`] that only writers (judged by SO_PEERCRED) may take, so that
/// hook logins and `add` are still taken while readers hold every other slot.
pub const RESERVED: usize = 64;
/// The most connections one reader (a uid that may not write) holds at once: one local user
/// cannot take the slots other readers (Exim's `check`) need either.
pub const PER_READER: usize = MAX_CONNS / 2;
/// A connection that sends nothing for this long is closed.
pub const IDLE: Duration = Duration::from_secs(60);

/// Who may change the table: root, the daemon's own user, members of `--writer-group`.
#[derive(Clone, Debug)]
pub struct Writers {
    pub own_uid: u32,
    pub writer_gid: Option<u32>,
}

impl Writers {
    pub fn may_write(&self, uid: u32, gid: u32) -> bool {
        if uid == 0 || uid == self.own_uid {
            return true;
        }
        let Some(wg) = self.writer_gid else {
            return false;
        };
        if gid == wg {
            return true;
        }
        // SO_PEERCRED carries only the primary group; look up the user's other groups.
        let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
            return false;
        };
        let Ok(name) = std::ffi::CString::new(user.name) else {
            return false;
        };
        getgrouplist(&name, Gid::from_raw(gid))
            .map(|groups| groups.iter().any(|g| g.as_raw() == wg))
            .unwrap_or(false)
    }
}

/// What reading one line gave.
#[derive(Debug, PartialEq, Eq)]
pub enum LineRead {
    Line,
    TooLong,
    Eof,
}

/// Read one `\n`-terminated line into `buf`, never holding more than `max` bytes.
pub async fn read_line_capped<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    buf.clear();
    let n = r.take(max as u64).read_until(b'\n', buf).await?;
    if n == 0 {
        Ok(LineRead::Eof)
    } else if buf.last() == Some(&b'\n') || n < max {
        Ok(LineRead::Line)
    } else {
        Ok(LineRead::TooLong)
    }
}

/// Serve until `shutdown`; then stop accepting, let requests in flight finish (waiting at
/// most `grace`), and return.
pub async fn serve(
    listener: Listener,
    leases: Arc<Leases>,
    counters: Arc<Counters>,
    writers: Writers,
    shutdown: Shutdown,
    grace: Duration,
) {
    let writers = Arc::new(writers);
    let service = Service {
        name: "control socket",
        max_conns: MAX_CONNS,
        when_full: "",
        sharing: Sharing {
            per_uid: PER_READER,
            reserved: RESERVED,
            privileged: {
                let writers = writers.clone();
                Arc::new(move |c: &UCred| writers.may_write(c.uid(), c.gid()))
            },
        },
    };
    serve_each(listener, service, shutdown, grace, |a, stop| {
        let state = State {
            leases: leases.clone(),
            counters: counters.clone(),
        };
        connection(a, state, writers.clone(), stop)
    })
    .await;
}

/// Requests one line at a time until the client closes, goes idle, or asks a plain `CHECK`.
/// What requests are carried out on.
struct State {
    leases: Arc<Leases>,
    counters: Arc<Counters>,
}

async fn connection(
    accepted: Accepted,
    state: State,
    writers: Arc<Writers>,
    mut shutdown: Shutdown,
) {
    let peer = accepted.peer;
    let (rd, mut wr) = tokio::io::split(accepted.conn);
    let mut rd = BufReader::new(rd);
    let mut buf = Vec::new();
    let mut may_write: Option<bool> = None;
    loop {
        let read = tokio::select! {
            r = tokio::time::timeout(IDLE, read_line_capped(&mut rd, &mut buf, MAX_LINE)) => r,
            _ = shutdown.recv() => return,
        };
        let line = match read {
            Err(_) | Ok(Err(_)) | Ok(Ok(LineRead::Eof)) => return,
            Ok(Ok(LineRead::TooLong)) => None,
            Ok(Ok(LineRead::Line)) => Some(buf.as_slice()),
        };
        let mut writer = || {
            *may_write
                .get_or_insert_with(|| peer.is_some_and(|c| writers.may_write(c.uid(), c.gid())))
        };
        let peer_uid = peer.map_or_else(|| "?".to_string(), |c| c.uid().to_string());
        let (bytes, close) = reply(&state, line, &mut writer, &peer_uid).await;
        if wr.write_all(&bytes).await.is_err() || close {
            return;
        }
    }
}

/// What one request line (None: one over [`MAX_LINE`]) gets: the bytes to send, and whether
/// the connection closes after them. `may_write` says whether the peer may change leases;
/// it is asked only for a change.
async fn reply(
    state: &State,
    line: Option<&[u8]>,
    may_write: &mut impl FnMut() -> bool,
    peer_uid: &str,
) -> (Vec<u8>, bool) {
    let Some(line) = line else {
        tracing::warn!("control socket: request over {MAX_LINE} bytes, closing");
        let e = Response::error(format!("request too long (limit {MAX_LINE} bytes)"));
        return (encode(&e), true);
    };
    if let Some(addr) = plain_check(line) {
        // A yes is a use of the lease by Exim (recorded off this path).
        let allowed = parse_ip(addr).is_ok_and(|ip| {
            crate::answers::lease_use::grants(&state.leases, ip, now_ms(), Method::EximCheck)
        });
        return (plain_reply(allowed).to_vec(), true);
    }
    let resp = match parse_request(line) {
        Err(e) => {
            tracing::debug!(error = %e, "control socket: bad request");
            Response::error(e)
        }
        Ok(req) if req.op.writes() && !may_write() => {
            tracing::warn!(uid = %peer_uid, op = req.op.name(),
                "control socket: refused a change from an unprivileged peer");
            Response::error(format!(
                "permission denied: uid {peer_uid} may not {} (needs root, the daemon's user or --writer-group)",
                req.op.name()
            ))
        }
        Ok(req) => carry_out(state, req.op).await,
    };
    (encode(&resp), false)
}

/// Run one operation off the runtime's threads (it may wait for the disk).
async fn carry_out(state: &State, op: Op) -> Response {
    let (leases, counters) = (state.leases.clone(), state.counters.clone());
    let name = op.name();
    let done =
        tokio::task::spawn_blocking(move || super::dispatch(&leases, &counters, op, now_ms()));
    let leases = &state.leases;
    match done.await {
        Ok(Ok(reply)) => reply.into(),
        Ok(Err(e)) if e.is_storage() => {
            Stats::bump(&leases.stats.errors);
            tracing::error!(op = name, error = %e, "control request failed: not acknowledged");
            Response::error(e.to_string())
        }
        Ok(Err(e)) => {
            tracing::debug!(op = name, error = %e, "control request failed");
            Response::error(e.to_string())
        }
        Err(e) => {
            Stats::bump(&leases.stats.errors);
            Response::error(format!("internal error: {e}"))
        }
    }
}
