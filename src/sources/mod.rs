//! Where logins come from: followed log files and their line parsers, the login hook, and
//! Dovecot's auth-policy reports.

pub mod dovecot_policy;
pub mod dovecot_policy_proto;
pub mod follow;
pub mod hook;
pub mod logparse;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;

use follow::{Follower, Msg, Position, Sink};
use logparse::{Format, LineParser};

use crate::lease::{Login, now_ms};
use crate::store::{Leases, Stats};

/// One `--watch FILE [--format NAME]`.
#[derive(Clone, Debug)]
pub struct WatchSpec {
    pub path: PathBuf,
    pub format: Option<Format>,
}

/// Hands followed logins to the lease table, with each file's position: the logins of one
/// chunk read go in one write, with the position after the last of them.
struct StoreSink {
    leases: Arc<Leases>,
    /// Mailutils without `acl log` names no address: say so once per file, not per login.
    warned_no_address: std::collections::HashSet<String>,
    /// Logins read since the last flush.
    pending: Vec<Login>,
    /// The position after the last of them (none for a rotated file read at start).
    position: Option<(String, Position)>,
}

impl Sink for StoreSink {
    fn login(&mut self, login: Login, checkpoint: Option<(&str, &Position)>) {
        self.pending.push(login);
        if let Some((key, pos)) = checkpoint {
            match &mut self.position {
                Some((k, p)) if k == key => *p = *pos,
                other => *other = Some((key.to_string(), *pos)),
            }
        }
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let logins = std::mem::take(&mut self.pending);
        let position = self.position.take();
        let meta = position
            .as_ref()
            .map(|(k, p)| (k.as_str(), serde_json::to_vec(p).unwrap_or_default()));
        let meta = meta.as_ref().map(|(k, v)| (*k, v.as_slice()));
        if let Err(e) = self.leases.login_many(&logins, now_ms(), meta) {
            for login in &logins {
                Stats::bump(&self.leases.stats.errors);
                tracing::error!(addr = %login.ip, source = %login.source, error = %e, "cannot record login");
            }
        }
        self.pending = logins;
        self.pending.clear();
    }

    fn checkpoint(&mut self, key: &str, pos: &Position) {
        self.flush();
        let v = serde_json::to_vec(pos).unwrap_or_default();
        if let Err(e) = self.leases.backend().put_meta(key, &v) {
            Stats::bump(&self.leases.stats.errors);
            tracing::error!(error = %e, "cannot save log position");
        }
    }

    fn login_without_address(&mut self, source: &str, user: Option<&str>) {
        self.leases.stats.count_login(source);
        if self.warned_no_address.insert(source.to_string()) {
            tracing::warn!(
                source,
                user = user.unwrap_or("-"),
                "login line without a client address: nothing granted (for GNU Mailutils enable `acl {{ log from any; }}` or use the hook)"
            );
        }
    }

    fn saved(&mut self, key: &str) -> Option<Position> {
        self.flush();
        let v = self.leases.backend().get_meta(key).ok().flatten()?;
        serde_json::from_slice(&v).ok()
    }
}

/// Followers run on one thread; the returned sender stops (`Msg::Stop`) or reopens them.
pub fn start_followers(
    specs: &[WatchSpec],
    patterns: &[regex::Regex],
    leases: Arc<Leases>,
) -> crate::Result<(std::thread::JoinHandle<()>, mpsc::Sender<Msg>)> {
    let mut followers: Vec<Follower> = specs
        .iter()
        .map(|s| Follower::new(s.path.clone(), LineParser::new(s.format, patterns.to_vec())))
        .collect();
    let mut sink = StoreSink {
        leases,
        warned_no_address: Default::default(),
        pending: Vec::new(),
        position: None,
    };
    // Open every file before the daemon says it is ready: "from the end" must mean the end
    // at start, not wherever the file has grown to when a thread gets going.
    for f in followers.iter_mut() {
        f.poll(&mut sink);
    }
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    let handle = std::thread::Builder::new()
        .name("follow".into())
        .spawn(move || follow::run(followers, &mut sink, tx2, rx))
        .map_err(|e| crate::Error::net("start the log follower thread", e))?;
    Ok((handle, tx))
}
