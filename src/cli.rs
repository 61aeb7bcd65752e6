//! What the user types: the clap definitions of every command and flag.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "relaylease",
    version,
    about = "POP-before-SMTP relay authorization: a POP3/IMAP login lets the client's address relay for a while",
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    /// Control socket of the daemon [default: /run/relaylease/relaylease.sock as root,
    /// else $XDG_RUNTIME_DIR/relaylease.sock]
    #[arg(long, global = true, env = "RELAYLEASE_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Lease database directory [default: /var/lib/relaylease as root,
    /// else $XDG_STATE_HOME/relaylease]
    #[arg(long, global = true, env = "RELAYLEASE_DB", value_name = "DIR")]
    pub db: Option<PathBuf>,

    /// More log output (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Less log output: warnings and errors only (twice: errors only)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: follow logins, keep leases, answer the SMTP side
    Daemon(DaemonArgs),
    /// May ADDR relay now? Exit 0 yes, 1 no, 2 error
    Check {
        /// Client address (IPv4, IPv6, or a lease key as `list` shows it)
        addr: String,
    },
    /// List the live leases, soonest expiry first
    List {
        /// One JSON object with every lease, for scripts
        #[arg(long)]
        json: bool,
    },
    /// Grant ADDR a lease by hand
    Add {
        addr: String,
        /// How long [default: the daemon's --expire window]
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
    },
    /// Delete the lease of ADDR
    Del { addr: String },
    /// Delete every lease
    Flush,
    /// Show counters
    Stats {
        /// JSON for scripts
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// How long a login lets its address relay (humantime: 30m, 1h 30m)
    #[arg(long, default_value = "30m", value_name = "DURATION")]
    pub expire: String,

    /// IPv6 clients share one lease per prefix of this length (128: exact address)
    #[arg(long, default_value_t = 64, value_name = "BITS",
          value_parser = clap::value_parser!(u8).range(0..=128))]
    pub ipv6_prefix: u8,

    /// Always allowed to relay, never stored (like Postfix's mynetworks); repeatable
    #[arg(long, value_name = "NET")]
    pub allow: Vec<String>,

    /// Logins from here never create a lease (webmail, mailbox pollers); repeatable
    #[arg(long, value_name = "NET")]
    pub deny: Vec<String>,

    /// Only logins by the users listed in FILE (one per line) create leases; re-read on SIGHUP
    #[arg(long, value_name = "FILE")]
    pub users: Option<PathBuf>,

    /// Members of GROUP may change leases through the control socket (login, add, del, flush)
    #[arg(long, value_name = "GROUP")]
    pub writer_group: Option<String>,

    /// Permissions of the control socket file, in octal
    #[arg(long, default_value = "0660", value_name = "MODE")]
    pub socket_mode: String,

    /// Group of the control socket file
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,

    /// Log format on stderr
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}
