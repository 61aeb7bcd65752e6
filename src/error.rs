//! The crate's one error type: every variant says what was being done and to what.

use std::path::{Path, PathBuf};

/// Everything that can go wrong, phrased for a mail administrator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system or socket operation on a named path failed.
    #[error("cannot {op} {}: {}", path.display(), describe_io(source))]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An I/O failure with no path to name (a connection, a pipe).
    #[error("{op}: {}", describe_io(source))]
    Net {
        op: String,
        #[source]
        source: std::io::Error,
    },
    /// The embedded database refused an operation.
    #[error("database {}: cannot {op}: {}", path.display(), describe_sled(source))]
    Db {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    /// Another process holds the database open.
    #[error(
        "database {} is in use by another process (is a relaylease daemon already running? use --socket to reach it)",
        path.display()
    )]
    DbLocked { path: PathBuf },
    /// The shared lease store (Redis) refused us or could not be reached.
    #[error("Redis at {url}: {detail}")]
    Store { url: String, detail: String },
    /// A value given by the user (flag, request field, file entry) is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The daemon answered with an error.
    #[error("{0}")]
    Remote(String),
    /// The peer is not allowed to do this.
    #[error("{0}")]
    Denied(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(op: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn net(op: impl Into<String>, source: std::io::Error) -> Self {
        Error::Net {
            op: op.into(),
            source,
        }
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    /// A failure of the lease store itself, not of what the client asked.
    pub fn is_storage(&self) -> bool {
        matches!(
            self,
            Error::Io { .. } | Error::Db { .. } | Error::DbLocked { .. } | Error::Store { .. }
        )
    }
}

/// `s` fit for one line of a log or a reply: control characters (newlines included) escaped.
pub fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// "permission denied" rather than "Permission denied (os error 13)".
pub(crate) fn describe_io(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => s,
    }
}

/// "no storage space" rather than `IO error: Os { code: 28, ... }`. sled hands on an I/O
/// error it met while writing as a new error of the same kind whose text is the old one's
/// debug form; the kind is what is left to show.
pub(crate) fn describe_sled(e: &sled::Error) -> String {
    match e {
        sled::Error::Io(io)
            if io.raw_os_error().is_some() || io.kind() == std::io::ErrorKind::Other =>
        {
            describe_io(io)
        }
        sled::Error::Io(io) => io.kind().to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_names_path_and_operation_without_os_error_number() {
        let e = Error::io(
            "open",
            "/var/lib/relaylease",
            std::io::Error::from_raw_os_error(13),
        );
        assert_eq!(
            e.to_string(),
            "cannot open /var/lib/relaylease: permission denied"
        );
    }
}
