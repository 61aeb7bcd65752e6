//! The one connection loop of the request/reply answers (Postfix's policy service, the
//! socketmap server): buffer what arrives, answer every complete request in it (clients may
//! pipeline), close a connection that completes no request within the idle limit, and stop
//! between requests at shutdown.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::listen::Conn;
use crate::shutdown::Shutdown;

/// After answering: go on, or close the connection once what was answered is written.
pub enum Step {
    /// This many bytes at the start of the buffer were complete requests, now answered.
    Used(usize),
    /// Close, after writing the replies appended so far.
    Close,
}

/// One protocol's side of the loop: framing and answers, no I/O.
pub trait Answerer {
    /// Could `buf` hold a complete request ending at or after `from` (the bytes before it
    /// were looked at already)? A cheap scan that spares [`Answerer::answer`] the bytes of a
    /// request still arriving.
    fn maybe_complete(&self, buf: &[u8], from: usize) -> bool;

    /// Answer the complete requests at the start of `buf`, appending each reply to `out`.
    fn answer(&mut self, buf: &[u8], out: &mut Vec<u8>) -> Step;

    /// Incomplete bytes held beyond this close the connection ([`Answerer::too_large`]).
    fn max_request(&self) -> usize;

    /// Said when a request grows past [`Answerer::max_request`]: append a reply, if the
    /// protocol has one, and log.
    fn too_large(&mut self, out: &mut Vec<u8>);
}

/// Room kept free at the end of a connection's buffer for the next read: a Postfix request
/// (about 1 KiB) arrives in one read.
const READ_ROOM: usize = 4096;

/// Serve one connection until the client closes it, it stays `idle` without completing a
/// request, or `shutdown` comes while no request is half-read.
pub async fn serve_connection<A: Answerer>(
    mut conn: Box<dyn Conn>,
    mut answerer: A,
    idle: Duration,
    mut shutdown: Shutdown,
) {
    // Reads land straight in `buf` (no copy from a read buffer), replies are appended to
    // `out` and written with one call: both are reused for every request.
    let mut buf: Vec<u8> = Vec::with_capacity(READ_ROOM);
    let mut out: Vec<u8> = Vec::with_capacity(64);
    // Bytes of `buf` known to hold no end of request: a client sending one byte at a time
    // costs a scan of each byte once, not of the whole buffer on every read.
    let mut scanned = 0;
    // One timer and one shutdown wait for the whole connection, not one per read: both
    // register with state shared by every connection, which would cost each request a lock
    // or two. The idle timer is pushed back only when it fires.
    let timer = tokio::time::sleep(idle);
    tokio::pin!(timer);
    let mut last_answer = Instant::now();
    let watch = shutdown.clone();
    let stopped = shutdown.recv();
    tokio::pin!(stopped);
    // The wait for shutdown is registered at its first poll; after that it is polled again
    // only once the shutdown may have come (one atomic load), not at every request: each
    // poll of it takes a lock that every connection shares.
    let mut registered = false;
    loop {
        let mut close = false;
        if answerer.maybe_complete(&buf, scanned) {
            match answerer.answer(&buf, &mut out) {
                Step::Used(n) => {
                    buf.drain(..n);
                }
                Step::Close => close = true,
            }
        }
        if !close && buf.len() > answerer.max_request() {
            answerer.too_large(&mut out);
            close = true;
        }
        scanned = buf.len();
        if !out.is_empty() {
            if conn.write_all(&out).await.is_err() || close {
                return;
            }
            out.clear();
            last_answer = Instant::now();
        }
        if close {
            return;
        }
        if buf.capacity() - buf.len() < READ_ROOM {
            buf.reserve(READ_ROOM);
        }
        let between_requests = buf.is_empty();
        let stop = std::future::poll_fn(|cx| {
            if registered && !watch.may_be_shutdown() {
                return std::task::Poll::Pending;
            }
            registered = true;
            stopped.as_mut().poll(cx)
        });
        // Biased: the read, which is ready almost every time the task wakes, is polled
        // first, and the others only when it is not ready.
        let n = tokio::select! {
            biased;
            r = conn.read_buf(&mut buf) => match r {
                Ok(n) => n,
                Err(_) => return,
            },
            _ = &mut timer => {
                if last_answer.elapsed() >= idle {
                    if !between_requests {
                        tracing::warn!(idle = ?idle, "closing a connection whose request did not complete in time");
                    }
                    return;
                }
                timer.as_mut().reset(last_answer + idle);
                continue;
            }
            _ = stop, if between_requests => return,
        };
        if n == 0 {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listen::Conn;

    /// Requests are lines; "bad" closes; a line over 16 bytes is too large.
    struct Lines;

    impl Answerer for Lines {
        fn maybe_complete(&self, buf: &[u8], from: usize) -> bool {
            memchr::memchr(b'\n', &buf[from..]).is_some()
        }

        fn answer(&mut self, buf: &[u8], out: &mut Vec<u8>) -> Step {
            let mut used = 0;
            while let Some(i) = memchr::memchr(b'\n', &buf[used..]) {
                let line = &buf[used..used + i];
                if line == b"bad" {
                    out.extend_from_slice(b"bye\n");
                    return Step::Close;
                }
                out.extend_from_slice(b"re:");
                out.extend_from_slice(line);
                out.push(b'\n');
                used += i + 1;
            }
            Step::Used(used)
        }

        fn max_request(&self) -> usize {
            16
        }

        fn too_large(&mut self, out: &mut Vec<u8>) {
            out.extend_from_slice(b"too long\n");
        }
    }

    async fn talk(input: &[u8]) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(1024);
        let served = tokio::spawn(serve_connection(
            Box::new(server),
            Lines,
            Duration::from_secs(60),
            Shutdown::never(),
        ));
        client.write_all(input).await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        served.await.unwrap();
        got
    }

    /// Over real sockets, which tokio marks not readable after a read shorter than its room
    /// (so that a client waiting for each answer costs one `recvfrom` a request): a request
    /// that comes after an answer, one that arrives in pieces, and a pipelined run larger
    /// than a read are all answered, and the end of the stream still ends the connection.
    async fn over_a_socket(
        client: impl AsyncReadExt + AsyncWriteExt + Unpin + Send + 'static,
        server: Box<dyn Conn>,
    ) {
        let mut client = client;
        let served = tokio::spawn(serve_connection(
            server,
            Lines,
            Duration::from_secs(60),
            Shutdown::never(),
        ));
        let mut reply = [0u8; 6];
        for round in 0..3 {
            client.write_all(b"ab\n").await.unwrap();
            client.read_exact(&mut reply).await.unwrap();
            assert_eq!(&reply, b"re:ab\n", "round {round}");
            // The socket was drained by the read that took the request; the next request
            // comes later and still wakes the connection.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        client.write_all(b"x").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        client.write_all(b"y\n").await.unwrap();
        client.read_exact(&mut reply[..6]).await.unwrap();
        assert_eq!(&reply, b"re:xy\n");
        // One write of more than a read takes: a read that fills its room must leave the
        // socket marked readable, or the rest would wait for an event that never comes.
        let (mut rd, mut wr) = tokio::io::split(client);
        wr.write_all(&b"cd\n".repeat(10_000)).await.unwrap();
        let mut got = vec![0u8; 60_000];
        tokio::time::timeout(Duration::from_secs(10), rd.read_exact(&mut got))
            .await
            .expect("every answer to a pipelined run")
            .unwrap();
        assert_eq!(got, b"re:cd\n".repeat(10_000));
        wr.shutdown().await.unwrap();
        let mut rest = Vec::new();
        rd.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        tokio::time::timeout(Duration::from_secs(10), served)
            .await
            .expect("the connection ends with the stream")
            .unwrap();
    }

    #[tokio::test]
    async fn over_unix_sockets_every_request_is_answered() {
        let (client, server) = tokio::net::UnixStream::pair().unwrap();
        over_a_socket(client, Box::new(server)).await;
    }

    #[tokio::test]
    async fn over_tcp_sockets_every_request_is_answered() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = l.accept().await.unwrap();
        over_a_socket(client, Box::new(server)).await;
    }

    #[tokio::test]
    async fn pipelined_requests_are_each_answered_and_a_closing_one_ends_it() {
        assert_eq!(talk(b"a\nb\nc").await, b"re:a\nre:b\n");
        assert_eq!(talk(b"a\nbad\nc\n").await, b"re:a\nbye\n");
        assert_eq!(talk(b"a\n0123456789abcdefg").await, b"re:a\ntoo long\n");
    }

    /// The wait for shutdown is polled only once a shutdown may have come: a connection
    /// that has answered requests and sits idle still closes when the trigger is pulled.
    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_that_answered_requests_closes_at_shutdown() {
        let (trigger, shutdown) = crate::shutdown::channel();
        let (mut client, server) = tokio::io::duplex(1024);
        let served = tokio::spawn(serve_connection(
            Box::new(server),
            Lines,
            Duration::from_secs(60),
            shutdown,
        ));
        for req in [&b"a\n"[..], b"b\n", b"c\n"] {
            client.write_all(req).await.unwrap();
            let mut reply = [0u8; 5];
            client.read_exact(&mut reply).await.unwrap();
            assert_eq!(&reply[..3], b"re:");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!served.is_finished(), "open while the client is idle");
        trigger.pull();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(served.is_finished(), "closed at shutdown");
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_waits_for_a_half_read_request_and_idle_closes_it() {
        let (trigger, shutdown) = crate::shutdown::channel();
        let (mut client, server) = tokio::io::duplex(1024);
        let served = tokio::spawn(serve_connection(
            Box::new(server),
            Lines,
            Duration::from_secs(60),
            shutdown,
        ));
        client.write_all(b"half").await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        trigger.pull();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!served.is_finished(), "a request in flight is let finish");
        client.write_all(b"\n").await.unwrap();
        let mut reply = [0u8; 8];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"re:half\n");
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(served.is_finished(), "then it stops");
    }
}
