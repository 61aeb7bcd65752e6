//! relaylease: POP-before-SMTP relay authorization for Postfix and qmail.
//!
//! A successful POP3/IMAP login lets the client's address relay mail for a while.
//!
//! # Layout
//! Logins flow one way: sources -> leases -> answers.
//!
//! - [`sources`]: where logins come from: the systemd journal (and whether the kernel vouches
//!   for an entry's writer), followed log files (and whether they can be trusted), their line
//!   parsers, the hook, Dovecot's auth-policy reports over HTTP.
//! - [`lease`]: the lease model: address normalisation, who may get a lease, expiry arithmetic.
//! - [`store`]: the lease table: an in-memory index over a durable backend behind one trait:
//!   sled, or Redis shared by a site's hosts (kept in step by [`store::redis_sync`]).
//! - [`expiry`]: the one task that sleeps until the next deadline.
//! - [`answers`]: who asks: the Postfix policy service, the socketmap server (both on one
//!   connection loop), the tcprules cdb writer, the wrapper check.
//! - [`control`]: the daemon's control socket: protocol (pure), dispatcher, server and client.
//! - [`counters`]: what the answers said, how many sessions are held and forged journal
//!   logins refused, for `stats`.
//! - [`daemon`]: starts and stops all of the above as named steps; [`listen`]: its listening
//!   sockets and the one accept loop; [`shutdown`]: how every task is told to stop;
//!   [`privs`]: dropping root once they are open; [`memory`]: the allocator's settings and
//!   the task that gives freed heap memory back.
//! - [`usage`]: who relayed: each use of a lease, recorded off the answer path into audit
//!   lines and the per-user usage table.
//! - [`doctor`]: `relaylease doctor`'s judgements of a host's setup (Postfix, Dovecot, qmail,
//!   the daemon), pure; `commands::doctor` gathers the facts they judge.
//! - [`cli`], [`config`] and [`commands`]: what the user types, the validated settings built
//!   from it, and the shell commands (the control socket's, their rendering, `parse-log`,
//!   and the chain links `hook` and `smtp-wrap`).

pub mod answers;
pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod counters;
pub mod daemon;
pub mod doctor;
pub mod error;
pub mod expiry;
pub mod lease;
pub mod listen;
pub mod memory;
pub mod privs;
pub mod shutdown;
pub mod sources;
pub mod store;
pub mod usage;

pub use error::{Error, Result};
