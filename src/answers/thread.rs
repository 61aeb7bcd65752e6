//! The answers' own thread: Postfix's policy service and the socketmap server run on a
//! single-threaded runtime of their own, apart from everything else the daemon does.
//!
//! Why one thread, and a thread of its own:
//! - An answer is a read, a lookup and a write: the kernel's work on the socket is most of
//!   its cost. One thread answers about a quarter of a million requests a second on the
//!   2-core machine the project is measured on, far more than any Postfix asks. A second
//!   worker sharing the same connections costs every request more than it gains: the
//!   workers wake each other, take tasks from each other and pass the connections' state
//!   between cores (issue 19: 0.82x the do-nothing responder's throughput with the
//!   daemon's two workers, 0.97x with one, in the same run).
//! - On its own thread, an answer never waits behind the daemon's other work: a control
//!   request writing a large reply, the cdb writer, the Redis link, a slow start of a
//!   follower. Those keep the daemon's main runtime.

use std::future::Future;

use crate::error::{Error, Result};
use crate::listen::{Listener, StdListener};

/// Start `serve` on a thread of its own (named `name`) with a single-threaded runtime, with
/// `listeners` moved onto that runtime. Returns once the listeners are in place (an error
/// then is the daemon's start failing), with a future that ends when `serve` has.
pub fn start<F, Fut>(
    name: &str,
    listeners: Vec<Listener>,
    serve: F,
) -> Result<impl Future<Output = ()> + Send + 'static>
where
    F: FnOnce(Vec<Listener>) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let moving = listeners
        .into_iter()
        .map(Listener::into_std)
        .collect::<std::io::Result<Vec<StdListener>>>()
        .map_err(|e| Error::net(format!("hand the listeners to the {name} thread"), e))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::net(format!("start the {name} runtime"), e))?;
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = name.to_string();
    std::thread::Builder::new()
        .name(format!("relaylease-{name}"))
        .spawn(move || {
            rt.block_on(async move {
                let listeners = match moving
                    .into_iter()
                    .map(StdListener::into_tokio)
                    .collect::<std::io::Result<Vec<Listener>>>()
                {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                serve(listeners).await;
            });
            // Connections still open past the grace period end with the runtime.
            drop(rt);
            let _ = done_tx.send(());
            tracing::debug!(thread = %thread, "thread stopped");
        })
        .map_err(|e| Error::net(format!("start the {name} thread"), e))?;
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(Error::net(format!("listen on the {name} thread"), e)),
        Err(_) => {
            let e = std::io::Error::other("it ended at its start");
            return Err(Error::net(format!("start the {name} thread"), e));
        }
    }
    let name = name.to_string();
    Ok(async move {
        if done_rx.await.is_err() {
            // Its runtime did not end in order (a panic): nothing answers any more, and
            // Postfix falls back to its default_action: closed, never open.
            tracing::error!(
                thread = %name,
                "the answers' thread ended unexpectedly: nothing is answered until a restart"
            );
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A listener bound on the test's runtime is served on the new thread, by that thread
    /// (the connection's task runs there), and the thread ends at shutdown.
    #[tokio::test]
    async fn listeners_move_to_the_thread_and_it_ends_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let l = Listener::Unix(crate::listen::bind_unix(&path, 0o600, None).unwrap());
        let (trigger, stop) = shutdown::channel();
        let done = start("test-answers", vec![l], move |mut ls| async move {
            let l = ls.pop().expect("one listener");
            let mut stop = stop;
            loop {
                tokio::select! {
                    a = l.accept() => {
                        let mut c = a.expect("accept").conn;
                        let me = std::thread::current().name().unwrap_or("").to_string();
                        c.write_all(me.as_bytes()).await.unwrap();
                    }
                    _ = stop.recv() => return,
                }
            }
        })
        .unwrap();
        let mut c = tokio::net::UnixStream::connect(&path).await.unwrap();
        let mut who = String::new();
        c.read_to_string(&mut who).await.unwrap();
        assert_eq!(who, "relaylease-test-answers");
        trigger.pull();
        tokio::time::timeout(std::time::Duration::from_secs(5), done)
            .await
            .expect("the thread ends at shutdown");
    }
}
