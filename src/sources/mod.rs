//! Where logins come from: followed log files and their line parsers, and the login hook.

pub mod logparse;
