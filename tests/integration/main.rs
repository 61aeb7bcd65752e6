//! relaylease's integration tests, in one binary (one build and link instead of one per
//! file). Each module is one area; `daemon_harness` starts the real daemon on temporary paths,
//! `mail_rig` the real mail servers (Postfix, Dovecot, ucspi-tcp, Exim, Sendmail) it answers.
//!
//! `cargo test` runs what needs neither root nor a Debian package and lists the rest as
//! ignored, with the reason; `tests/run.sh` installs the packages and runs everything. One
//! area: `./tests/run.sh --test integration redis::`.

mod daemon_harness;
mod mail_rig;

mod clock;
mod contrib;
mod docs;
mod doctor;
mod dovecot_policy;
mod e2e;
mod exim;
mod faults;
mod flood;
mod follow;
mod journal;
mod lease_core;
mod logins;
mod operation;
mod package;
mod properties;
mod redis;
mod redis_sentinel;
mod rig_selftest;
mod security;
mod sendmail;
mod sessions;
mod socketmap;
mod usage;
mod usage_mail;
