//! Test rig: real Dovecot, Postfix and ucspi-tcp instances on loopback, and clients that drive them.
//!
//! The end-to-end suite proves the POP-before-SMTP chain with the programs users run, not
//! mocks: a login to a real Dovecot, a lease, then a real Postfix (or tcpserver) letting that
//! address relay. This module only starts and drives those programs; it knows nothing of
//! relaylease.
//!
//! # Requirements
//! - Run as root: Dovecot's master and Postfix's `postfix start` need it.
//! - Debian packages: `postfix`, `dovecot-core`, `dovecot-pop3d`, `dovecot-imapd`, and
//!   `ucspi-tcp` or `ucspi-tcp-ipv6`, and `systemd` for journald. A missing binary panics
//!   with the package to install.
//! - Everything listens on and connects to loopback only (127.0.0.0/8 and `::1`); clients pick
//!   their source address in 127.0.0.0/8 so each test can play a different "remote" client.
//!
//! # Isolation
//! Each instance lives in a fresh subdirectory of the `dir` it is given and listens on its own
//! port, so tests may run in parallel threads and binaries. The rig changes nothing outside
//! those directories, except that the caller's `dir` gets search (`o+x`) permission so the
//! unprivileged `mail` and `postfix` users can reach files below it, and that the test process
//! becomes a child subreaper (see [`process`]) so daemonised Postfix processes are reaped.
//!
//! # Layout
//! - `process`: binaries, root check, process groups, log tails, bounded waiting.
//! - `net`: free ports, connecting from a chosen loopback source, line-based sessions.
//! - `dovecot`: [`Dovecot`] plus [`pop3_login`] and [`imap_login`].
//! - `journald`: [`Journald`], a private systemd-journald in a mount namespace of its own.
//! - `postfix`: [`Postfix`] plus [`rcpt`], [`relay_allowed`] and [`local_delivery_accepted`].
//! - `smtpd`: [`SmtpDaemon`], a foreground Exim or Sendmail on a free port, [`swaks_rcpt`],
//!   and [`relay_follows_leases`], the scenario both must pass.
//! - `ucspi`: [`TcpServer`], [`tcprules`] and [`tcpserver_env`].
//! - `sink`: [`SmtpSink`], Postfix's smtp-sink as a relay destination that keeps every
//!   message it receives.

// Each test binary compiles this whole module but uses only part of it.
#![allow(dead_code)]

mod dovecot;
mod journald;
mod net;
mod postfix;
mod process;
mod sink;
mod smtpd;
mod ucspi;

// Re-exports: the rig's API. A test binary that uses only part of it must not warn.
#[allow(unused_imports)]
pub use dovecot::{Dovecot, InfoLog, PASSWORD, USERS, imap_login, pop3_login};
#[allow(unused_imports)]
pub use journald::Journald;
#[allow(unused_imports)]
pub use net::{connect_from, free_port, ipv6_loopback_available};
#[allow(unused_imports)]
pub use postfix::{
    LOCAL_RCPT, MAIL_FROM, Postfix, REMOTE_RCPT, SmtpReply, contrib_parameter,
    contrib_restrictions, local_delivery_accepted, rcpt, relay_allowed, send_message,
    swaks_relay_allowed,
};
#[allow(unused_imports)]
pub use process::{log_tail, wait_for_line};
#[allow(unused_imports)]
pub use sink::SmtpSink;
#[allow(unused_imports)]
pub use smtpd::{SmtpDaemon, relay_follows_leases, swaks_rcpt};
#[allow(unused_imports)]
pub use ucspi::{TcpServer, tcprules, tcpserver_env};
