//! relaylease: POP-before-SMTP relay authorization for Postfix and qmail.
//!
//! A successful POP3/IMAP login lets the client's address relay mail for a while.
//!
//! # Layout
//! Logins flow one way: sources -> leases -> answers.
//!
//! - [`sources`]: where logins come from: followed log files, their line parsers, the hook.
//! - [`lease`]: the lease model: address normalisation, who may get a lease, expiry arithmetic.
//! - [`store`]: the lease table: an in-memory index over a durable backend (sled) behind one trait.
//! - [`expiry`]: the one task that sleeps until the next deadline.
//! - [`answers`]: who asks: the Postfix policy service, the tcprules cdb, the wrapper check.
//! - [`control`]: the daemon's control socket: protocol (pure), server and client.
//! - [`cli`] and [`config`]: what the user types, and the validated settings built from it.

pub mod answers;
pub mod error;
pub mod lease;
pub mod sources;

pub use error::{Error, Result};
