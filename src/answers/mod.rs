//! Who asks whether an address may relay: Postfix's policy service, the socketmap lookup
//! server of Sendmail and Postfix, qmail's tcprules cdb and the wrapper check.

pub mod cdb;
pub mod cdbfile;
pub mod policy;
pub mod policy_proto;
pub mod request_loop;
pub mod socketmap;
pub mod socketmap_proto;
pub mod tcprules;
pub mod wrap;
