//! The control socket server: JSON lines over a Unix socket, writes allowed by peer credentials.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::{Gid, Uid, User, getgrouplist};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, watch};

use super::proto::{MAX_LINE, Response, encode, parse_request, plain_check, plain_reply};
use crate::lease::{now_ms, parse_ip};
use crate::listen::AcceptFailures;
use crate::store::{Leases, Stats};

/// Connections served at once; further ones are closed at once and logged.
pub const MAX_CONNS: usize = 256;
/// A connection that sends nothing for this long is closed.
pub const IDLE: Duration = Duration::from_secs(60);

/// Who may change the table: root, the daemon's own user, members of `--writer-group`.
#[derive(Clone, Debug)]
pub struct Access {
    pub own_uid: u32,
    pub writer_gid: Option<u32>,
}

impl Access {
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

/// Serve until `shutdown` resolves; then stop accepting, let requests in flight finish
/// (waiting at most `grace`), and return.
pub async fn serve(
    listener: UnixListener,
    leases: Arc<Leases>,
    access: Access,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    tokio::pin!(shutdown);
    let slots = Arc::new(Semaphore::new(MAX_CONNS));
    let (stop_tx, stop_rx) = watch::channel(false);
    let access = Arc::new(access);
    let mut failures = AcceptFailures::default();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    failures.accepted("control socket");
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(limit = MAX_CONNS, "control socket: too many connections, closing one");
                        continue;
                    };
                    let leases = leases.clone();
                    let access = access.clone();
                    let stop = stop_rx.clone();
                    tokio::spawn(async move {
                        connection(stream, leases, access, stop).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    failures.failed("control socket", &e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = &mut shutdown => break,
        }
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(grace, slots.acquire_many(MAX_CONNS as u32)).await;
}

async fn connection(
    stream: UnixStream,
    leases: Arc<Leases>,
    access: Arc<Access>,
    mut stop: watch::Receiver<bool>,
) {
    let cred = stream.peer_cred().ok();
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut buf = Vec::new();
    let mut may_write: Option<bool> = None;
    loop {
        let read = tokio::select! {
            r = tokio::time::timeout(IDLE, read_line_capped(&mut rd, &mut buf, MAX_LINE)) => r,
            _ = stop.changed() => return,
        };
        if let Ok(Ok(LineRead::Line)) = &read
            && let Some(addr) = plain_check(&buf)
        {
            let allowed = parse_ip(addr).is_ok_and(|ip| {
                crate::answers::lease_use::grants(
                    &leases,
                    ip,
                    now_ms(),
                    crate::usage::Method::EximCheck,
                )
            });
            let _ = wr.write_all(plain_reply(allowed)).await;
            return;
        }
        let resp = match read {
            Err(_) | Ok(Err(_)) | Ok(Ok(LineRead::Eof)) => return,
            Ok(Ok(LineRead::TooLong)) => {
                tracing::warn!("control socket: request over {MAX_LINE} bytes, closing");
                let _ = wr
                    .write_all(&encode(&Response::error(format!(
                        "request too long (limit {MAX_LINE} bytes)"
                    ))))
                    .await;
                return;
            }
            Ok(Ok(LineRead::Line)) => match parse_request(&buf) {
                Err(e) => {
                    tracing::debug!(error = %e, "control socket: bad request");
                    Response::error(e)
                }
                Ok(req) => {
                    let allowed = !req.op.writes()
                        || *may_write.get_or_insert_with(|| {
                            cred.is_some_and(|c| access.may_write(c.uid(), c.gid()))
                        });
                    if allowed {
                        let shared = leases.clone();
                        let op = req.op;
                        let name = op.name();
                        match tokio::task::spawn_blocking(move || super::run(&shared, op, now_ms()))
                            .await
                        {
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
                    } else {
                        let uid = cred.map(|c| c.uid().to_string()).unwrap_or("?".into());
                        tracing::warn!(uid = %uid, op = req.op.name(),
                            "control socket: refused a change from an unprivileged peer");
                        Response::error(format!(
                            "permission denied: uid {uid} may not {} (needs root, the daemon's user or --writer-group)",
                            req.op.name()
                        ))
                    }
                }
            },
        };
        if wr.write_all(&encode(&resp)).await.is_err() {
            return;
        }
    }
}
