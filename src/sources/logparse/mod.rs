//! (provisional stub until the parsers land)
use std::net::IpAddr;
use crate::lease::Millis;
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format { Dovecot }
impl Format { pub fn name(&self) -> &'static str { "dovecot" } }
impl std::str::FromStr for Format { type Err = crate::Error; fn from_str(s: &str) -> Result<Self, Self::Err> { if s == "dovecot" { Ok(Format::Dovecot) } else { Err(crate::Error::invalid(format!("unknown format '{s}'"))) } } }
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service { Pop3, Imap, Unknown }
impl Service { pub fn name(&self) -> &'static str { "pop3" } }
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stamp { Unix(Millis) }
#[derive(Clone, Debug)]
pub struct LoginEvent { pub ip: Option<IpAddr>, pub user: Option<String>, pub service: Service, pub format: Format, pub stamp: Option<Stamp> }
pub enum Event { Login(LoginEvent), Failure(Format), LooksLikeLogin, Nothing }
pub struct LineParser;
impl LineParser { pub fn new(_p: Option<Format>, _c: Vec<regex::Regex>) -> Self { LineParser } pub fn parse(&mut self, line: &[u8]) -> Event {
  let s = String::from_utf8_lossy(line);
  if let Some(i) = s.find("pop3-login: Login: user=<") { let rest = &s[i..]; if let Some(j) = rest.find("rip=") { let ip = rest[j+4..].split(',').next().unwrap_or(""); return Event::Login(LoginEvent{ ip: ip.parse().ok(), user: None, service: Service::Pop3, format: Format::Dovecot, stamp: None}); } }
  Event::Nothing } }
pub fn compile_login_pattern(p: &str) -> Result<regex::Regex, crate::Error> { regex::Regex::new(p).map_err(|e| crate::Error::invalid(e.to_string())) }
pub fn resolve_stamp(stamp: &Stamp, _now: Millis) -> Option<Millis> { match stamp { Stamp::Unix(m) => Some(*m) } }
