//! The Postfix policy service's events on their way to the recorder, as bytes (pure).
//!
//! A policy answer that relays through a lease is the one recording that comes at the
//! policy service's full rate (a third of all its requests in the benchmark). Sent one
//! [`super::Event`] at a time through the queue it cost the answers' thread a text
//! allocation (freed by the recorder, on the other core), a copy of about 130 bytes into
//! the queue, and the queue's own synchronisation, for every use: 20% of the service's
//! throughput in the benchmark (issue 19, 2026-12-07). Here each event is appended to a
//! buffer the answers' thread keeps warm, in one copy of its bytes; the recorder swaps the
//! whole buffer for an empty one at each drain, so neither side allocates once the two
//! buffers have grown.
//!
//! Every event of a policy connection ([`PolicyEvent`]: its uses, its DATA, its close) goes
//! this way, so the recorder takes them in the order they happened.
//!
//! Layout: a kind byte, then fixed-size little-endian numbers and texts as a `u32` length
//! and the bytes. Texts stay raw bytes here and become UTF-8 (lossily) in the recorder, off
//! the answer path.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Event, Method, Use};
use crate::lease::Millis;
use crate::store::LeaseRef;

const USE: u8 = 1;
const DATA: u8 = 2;
const CLOSED: u8 = 3;

/// One of a policy connection's events, borrowed from the request and the lease table.
pub enum PolicyEvent<'a> {
    /// An OK at RCPT because of the lease `lease`; the request's instance, sender,
    /// recipient and queue id.
    Use {
        lease: &'a LeaseRef<'a>,
        at: Millis,
        client: IpAddr,
        conn: u64,
        request: [&'a [u8]; 4],
    },
    /// The DATA or END-OF-MESSAGE request of a message that relayed through a lease.
    Data {
        conn: u64,
        instance: &'a [u8],
        queue_id: &'a [u8],
    },
    /// A policy connection that carried leased messages closed.
    Closed { conn: u64 },
}

fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
}

fn put_text(out: &mut Vec<u8>, t: &[u8]) {
    out.extend_from_slice(&(t.len() as u32).to_le_bytes());
    out.extend_from_slice(t);
}

/// Append `e` to `out`.
pub fn encode(out: &mut Vec<u8>, e: &PolicyEvent<'_>) {
    match e {
        PolicyEvent::Use {
            lease,
            at,
            client,
            conn,
            request,
        } => {
            out.push(USE);
            out.extend_from_slice(&at.to_le_bytes());
            out.extend_from_slice(&lease.last_login.to_le_bytes());
            out.extend_from_slice(&conn.to_le_bytes());
            put_ip(out, *client);
            put_ip(out, lease.net.addr());
            out.push(lease.net.prefix_len());
            out.push(u8::from(lease.user.is_some()));
            put_text(out, lease.user.unwrap_or("").as_bytes());
            put_text(out, lease.source.as_bytes());
            for t in request {
                put_text(out, t);
            }
        }
        PolicyEvent::Data {
            conn,
            instance,
            queue_id,
        } => {
            out.push(DATA);
            out.extend_from_slice(&conn.to_le_bytes());
            put_text(out, instance);
            put_text(out, queue_id);
        }
        PolicyEvent::Closed { conn } => {
            out.push(CLOSED);
            out.extend_from_slice(&conn.to_le_bytes());
        }
    }
}

/// `t` as UTF-8, lossily. Valid text, nearly all of it, goes through `str::from_utf8`
/// alone, whose check is the faster: in profiles of the recorder at the benchmark's load,
/// `from_utf8_lossy` took 5.2% of its time, `str::from_utf8` 3.9% (issue 19).
fn utf8(t: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(t) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(t),
    }
}

/// Reads events back from a buffer [`encode`] wrote.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn ip(&mut self) -> Option<IpAddr> {
        match self.u8()? {
            4 => {
                let b: [u8; 4] = self.take(4)?.try_into().ok()?;
                Some(IpAddr::from(b))
            }
            6 => {
                let b: [u8; 16] = self.take(16)?.try_into().ok()?;
                Some(IpAddr::from(b))
            }
            _ => None,
        }
    }

    fn text(&mut self) -> Option<&'a [u8]> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
        self.take(n as usize)
    }

    fn event(&mut self) -> Option<Event> {
        match self.u8()? {
            USE => {
                let at = self.u64()?;
                let login_at = self.u64()?;
                let conn = self.u64()?;
                let client = self.ip()?;
                let net = IpNet::new(self.ip()?, self.u8()?).ok()?;
                let has_user = self.u8()? != 0;
                let mut texts = [""; 6].map(std::borrow::Cow::Borrowed);
                for t in texts.iter_mut() {
                    *t = utf8(self.text()?);
                }
                let [user, source, instance, sender, recipient, queue_id] = texts.each_ref();
                let lease = LeaseRef {
                    net,
                    user: has_user.then_some(user.as_ref()),
                    source,
                    last_login: login_at,
                };
                let request = [instance, sender, recipient, queue_id].map(|t| t.as_ref());
                let method = Method::PostfixPolicy;
                Some(Event::Use(Use::new(
                    &lease, at, client, method, conn, request,
                )))
            }
            DATA => {
                let conn = self.u64()?;
                let instance = utf8(self.text()?).into_owned();
                let queue_id = utf8(self.text()?).into_owned();
                Some(Event::Data {
                    conn,
                    instance,
                    queue_id,
                })
            }
            CLOSED => Some(Event::Closed { conn: self.u64()? }),
            _ => None,
        }
    }
}

impl Iterator for Reader<'_> {
    type Item = Event;

    /// The next event; none at the end, or at bytes [`encode`] did not write (which ends
    /// the read: nothing after them can be trusted).
    fn next(&mut self) -> Option<Event> {
        let e = self.event();
        if e.is_none() {
            self.buf = &[];
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::Text;

    fn lease<'a>(net: &str, user: Option<&'a str>) -> LeaseRef<'a> {
        LeaseRef {
            net: net.parse().unwrap(),
            user,
            source: "dovecot",
            last_login: 1_700_000_000_000,
        }
    }

    #[test]
    fn events_come_back_as_they_went_in_and_in_order() {
        let v4 = lease("192.0.2.0/24", Some("alice@example.org"));
        let v6 = lease("2001:db8::/64", None);
        let mut buf = Vec::new();
        let request: [&[u8]; 4] = [b"123.456", b"a@example.org", b"b@example.net", b""];
        encode(
            &mut buf,
            &PolicyEvent::Use {
                lease: &v4,
                at: 1_700_000_000_500,
                client: "192.0.2.7".parse().unwrap(),
                conn: 9,
                request,
            },
        );
        let odd: [&[u8]; 4] = [b"i", b"\xff<bad utf-8>", b"r", b"Q1"];
        encode(
            &mut buf,
            &PolicyEvent::Use {
                lease: &v6,
                at: 5,
                client: "2001:db8::1".parse().unwrap(),
                conn: u64::MAX,
                request: odd,
            },
        );
        encode(
            &mut buf,
            &PolicyEvent::Data {
                conn: 9,
                instance: b"123.456",
                queue_id: b"4XyZ",
            },
        );
        encode(&mut buf, &PolicyEvent::Closed { conn: 9 });
        let got: Vec<Event> = Reader::new(&buf).collect();
        assert_eq!(got.len(), 4);
        let Event::Use(u) = &got[0] else {
            panic!("a use first: {:?}", got[0])
        };
        let want = Use::new(
            &v4,
            1_700_000_000_500,
            "192.0.2.7".parse().unwrap(),
            Method::PostfixPolicy,
            9,
            ["123.456", "a@example.org", "b@example.net", ""],
        );
        assert_eq!(u, &want);
        let Event::Use(u) = &got[1] else {
            panic!("a use second: {:?}", got[1])
        };
        assert_eq!(u.user(), None);
        assert_eq!(u.net, "2001:db8::/64".parse::<IpNet>().unwrap());
        assert_eq!(u.conn, u64::MAX);
        assert_eq!(u.text(Text::Sender), "\u{fffd}<bad utf-8>");
        assert_eq!(u.text(Text::QueueId), "Q1");
        assert!(
            matches!(&got[2], Event::Data { conn: 9, instance, queue_id } if instance == "123.456" && queue_id == "4XyZ")
        );
        assert!(matches!(got[3], Event::Closed { conn: 9 }));
    }

    /// Bytes cut anywhere, or a kind byte no encoder writes, end the read without a panic
    /// and without a made-up event.
    #[test]
    fn a_cut_or_unknown_entry_ends_the_read() {
        let l = lease("192.0.2.0/24", Some("alice"));
        let mut buf = Vec::new();
        encode(&mut buf, &PolicyEvent::Closed { conn: 1 });
        let whole = buf.len();
        encode(
            &mut buf,
            &PolicyEvent::Use {
                lease: &l,
                at: 1,
                client: "192.0.2.1".parse().unwrap(),
                conn: 1,
                request: [b"i", b"s", b"r", b"q"],
            },
        );
        for cut in whole..buf.len() {
            let got: Vec<Event> = Reader::new(&buf[..cut]).collect();
            assert_eq!(got.len(), 1, "cut at {cut}");
        }
        assert_eq!(Reader::new(&buf).count(), 2);
        let mut odd = buf.clone();
        odd[whole] = 0x7f;
        assert_eq!(Reader::new(&odd).count(), 1);
    }
}
