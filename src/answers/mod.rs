//! Who asks whether an address may relay: Postfix's policy service, qmail's tcprules cdb.

pub mod cdb;
pub mod cdbfile;
pub mod policy;
pub mod policy_proto;
pub mod tcprules;
pub mod wrap;
