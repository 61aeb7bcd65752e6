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
    #[command(flatten)]
    pub globals: Globals,

    #[command(subcommand)]
    pub command: Command,
}

/// The flags every command takes.
#[derive(Debug, Args)]
pub struct Globals {
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
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: follow logins, keep leases, answer the SMTP side
    Daemon(Box<DaemonArgs>),
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
        /// Client address (IPv4 or IPv6)
        addr: String,
        /// How long [default: the daemon's --expire window]
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
    },
    /// Delete the lease of ADDR
    Del {
        /// Client address, or a lease key as `list` shows it (2001:db8:1:2::/64)
        addr: String,
    },
    /// Delete every lease
    Flush,
    /// Show the expiry window, or change it for logins from now on (until the daemon
    /// restarts: put it in --expire to keep it)
    Window {
        /// The new window (humantime: 45m, 1h 30m)
        duration: Option<String>,
    },
    /// Show counters
    Stats {
        /// JSON for scripts
        #[arg(long, conflicts_with = "prometheus")]
        json: bool,
        /// Prometheus text format, for node_exporter's textfile collector
        #[arg(long)]
        prometheus: bool,
    },
    /// Report one successful login to the daemon, then exec PROGRAM (a login chain link)
    Hook(HookArgs),
    /// Under tcpserver: set RELAYCLIENT when $TCPREMOTEIP may relay, then exec PROGRAM
    SmtpWrap(SmtpWrapArgs),
    /// Who logged in and who relayed through a lease: the usage table, most recent relay
    /// first (counts are totals since each record began)
    Usage(UsageArgs),
    /// Dry run: print the logins found in log files (or stdin), or in the journal, touching
    /// nothing
    ParseLog {
        /// One JSON object per login and one for the summary
        #[arg(long)]
        json: bool,
        /// With --journal: only entries since TIME, how long ago (90m, 2days) or a UTC time
        /// (2026-11-22 03:00:00) [default: all the journal holds]
        #[arg(long, value_name = "TIME", requires = "journal")]
        since: Option<String>,
        #[command(flatten)]
        journal: JournalArgs,
        /// Parse every line as this format instead of detecting it
        #[arg(long, value_name = "NAME", conflicts_with = "journal")]
        format: Option<String>,
        /// A site's own login format: a regex with named groups `ip` and optionally `user`
        #[arg(long = "login-pattern", value_name = "REGEX")]
        login_pattern: Vec<String>,
        /// Log files; `-` or none reads standard input
        #[arg(conflicts_with = "journal")]
        files: Vec<PathBuf>,
    },
    /// Check this host's setup for the daemon started with the same flags: Postfix (through
    /// postconf), Dovecot (through doveconf), qmail's cdb and the daemon. One line per check,
    /// ok, warn or FAIL with its fix. Exit 0 nothing failed, 1 something failed, 2 could not run
    Doctor(Box<DoctorArgs>),
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Postfix's configuration directory, for another instance (postconf -c DIR)
    /// [default: Postfix's own, when --policy or --socketmap is given]
    #[arg(long, value_name = "DIR")]
    pub postfix_config: Option<PathBuf>,
    /// Dovecot's configuration file (doveconf -c FILE) [default: Dovecot's own, when it is
    /// installed and logins come from logs or its auth-policy reports]
    #[arg(long, value_name = "FILE")]
    pub dovecot_config: Option<PathBuf>,
    /// The user tcpserver reads the --tcprules cdb as
    #[arg(long, default_value = "qmaild", value_name = "USER")]
    pub tcprules_user: String,
    /// The same checks as one JSON object, for scripts
    #[arg(long)]
    pub json: bool,
    /// The daemon's flags
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

/// The systemd journal as a source of logins (the daemon's and parse-log's flags).
#[derive(Debug, Clone, Args)]
pub struct JournalArgs {
    /// Read logins from the local systemd journal (through libsystemd, loaded then); only
    /// entries whose writer the kernel shows to be the mail server count
    #[arg(long)]
    pub journal: bool,

    /// With --journal: the mail servers' systemd units; repeatable
    #[arg(
        long,
        value_name = "UNIT",
        default_value = "dovecot.service",
        requires = "journal"
    )]
    pub journal_unit: Vec<String>,

    /// With --journal: also read entries with this SYSLOG_IDENTIFIER, for a server that is not
    /// a unit of its own; repeatable
    #[arg(long, value_name = "NAME", requires = "journal")]
    pub journal_identifier: Vec<String>,

    /// With --journal: also believe entries written by this program (Dovecot's, Courier's and
    /// Cyrus' are believed already); a path ending in / stands for its directory; repeatable
    #[arg(long, value_name = "PATH", requires = "journal")]
    pub journal_trust_exe: Vec<String>,

    /// With --journal: also believe entries written as this user (root, dovecot, courier and
    /// cyrus are believed already); repeatable
    #[arg(long, value_name = "USER", requires = "journal")]
    pub journal_trust_user: Vec<String>,

    /// With --journal: believe every selected entry whoever wrote it, as a log file's lines
    /// (servers whose lines reach the journal through a relay such as rsyslog)
    #[arg(long, requires = "journal")]
    pub journal_any_origin: bool,
}

#[derive(Debug, Args)]
pub struct HookArgs {
    /// Client address [default: $TCPREMOTEIP, else $IP]
    #[arg(long, value_name = "ADDR")]
    pub ip: Option<String>,
    /// User name [default: $USER]
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// How long to wait for the daemon before giving up (the login goes on regardless)
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub timeout: String,
    /// The rest of the login chain, run with the same environment and file descriptors
    #[arg(last = true, value_name = "PROGRAM")]
    pub program: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct SmtpWrapArgs {
    /// What to set for a client that may relay [default: RELAYCLIENT=]; repeatable
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// How long to wait for the daemon; after that PROGRAM runs without RELAYCLIENT
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub timeout: String,
    /// The SMTP server, e.g. qmail-smtpd
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    pub program: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Only users with a login or a relay in this period (humantime: 180d); with
    /// --users-file, those who relayed in it
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// One JSON object, for scripts
    #[arg(long, conflicts_with_all = ["csv", "users_file"])]
    pub json: bool,
    /// CSV with a header line, times in UTC
    #[arg(long, conflicts_with = "users_file")]
    pub csv: bool,
    /// Print a --users file listing the users who relayed through a lease (the freeze: give
    /// it to the daemon's --users and reload)
    #[arg(long = "users-file")]
    pub users_file: bool,
    /// Remove USER's usage record (a privacy request); an address removes the record of
    /// logins without a user name from it
    #[arg(long, value_name = "USER",
          conflicts_with_all = ["since", "json", "csv", "users_file", "token"])]
    pub forget: Option<String>,
    /// Which user a --mark-header token stands for (asks the daemon, which holds
    /// --mark-token-secret)
    #[arg(long, value_name = "TOKEN", conflicts_with_all = ["since", "csv", "users_file"])]
    pub token: Option<String>,
}

/// What the policy service answers a client that has no lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnleasedAction {
    /// No opinion: the rest of Postfix's list decides (relay refused with 554)
    Dunno,
    /// DEFER_IF_REJECT: a refusal later in the list becomes 450, so the client retries
    Defer,
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

    /// Follow this log file for logins; repeatable
    #[arg(long, value_name = "FILE")]
    pub watch: Vec<PathBuf>,

    #[command(flatten)]
    pub journal: JournalArgs,

    /// Parse the preceding --watch file as this format only (dovecot, courier, cyrus,
    /// uw-imap, qpopper, mailutils, popa3d, solid-pop3d, vchkpw)
    #[arg(long, value_name = "NAME")]
    pub format: Vec<String>,

    /// A site's own login line format: a regex with named groups `ip` and optionally `user`;
    /// repeatable
    #[arg(long = "login-pattern", value_name = "REGEX")]
    pub login_pattern: Vec<String>,

    /// Follow --watch files that ordinary users can write (the file or its directory
    /// writable by others, or owned by a uid of 1000 or above): any of them could then write a
    /// login line and open the relay. Without it such a file is refused
    #[arg(long)]
    pub watch_insecure: bool,

    /// Keep a followed login's lease while its session is open (Dovecot, Courier, Cyrus log
    /// its end), for at most this long after the login; the window then runs from the end.
    /// 0 turns this off
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub max_session_hold: String,

    /// Serve Postfix's policy delegation protocol at ADDR: unix:/path or inet:host:port;
    /// repeatable
    #[arg(long, value_name = "ADDR")]
    pub policy: Vec<String>,

    /// Serve the socketmap lookup protocol of Sendmail and Postfix at ADDR: unix:/path or
    /// inet:host:port; repeatable
    #[arg(long, value_name = "ADDR")]
    pub socketmap: Vec<String>,

    /// The map name socketmap lookups must ask for (Sendmail's K line, Postfix's
    /// socketmap:ADDR:NAME)
    #[arg(long, default_value = "relaylease", value_name = "NAME")]
    pub socketmap_name: String,

    /// What a socketmap lookup answers (after OK) for an address that may relay
    #[arg(long, default_value = "OK", value_name = "VALUE")]
    pub socketmap_value: String,

    /// Take logins from Dovecot's auth-policy reports (auth_policy_server_url,
    /// auth_policy_report_after_auth = yes) over HTTP at ADDR: inet:127.0.0.1:PORT (loopback
    /// only)
    #[arg(long, value_name = "ADDR")]
    pub dovecot_policy: Option<String>,

    /// The auth_policy_server_api_header every Dovecot request must carry, `Name: value`, read
    /// from FILE (without it any local process could report a login)
    #[arg(long, value_name = "FILE", requires = "dovecot_policy")]
    pub dovecot_policy_secret_file: Option<PathBuf>,

    /// Take Dovecot's auth-policy reports without a secret: any local process can then report
    /// a login and open the relay for any address. Without it --dovecot-policy needs
    /// --dovecot-policy-secret-file
    #[arg(
        long,
        requires = "dovecot_policy",
        conflicts_with = "dovecot_policy_secret_file"
    )]
    pub dovecot_policy_no_secret: bool,

    /// Permissions of the policy and socketmap unix sockets, in octal (Postfix's smtpd runs as
    /// user postfix)
    #[arg(long, default_value = "0666", value_name = "MODE")]
    pub policy_mode: String,

    /// Group of the policy and socketmap unix sockets (e.g. postfix, with --policy-mode 0660)
    #[arg(long, value_name = "GROUP")]
    pub policy_group: Option<String>,

    /// Keep a tcpserver rules cdb for qmail: each leased address gets ADDR:allow,RELAYCLIENT=""
    #[arg(long, value_name = "FILE.cdb")]
    pub tcprules: Option<PathBuf>,

    /// The administrator's static tcprules rules (tcprules text syntax), merged in; a static
    /// rule wins over a lease for the same address. Re-read on SIGHUP
    #[arg(long, value_name = "FILE", requires = "tcprules")]
    pub tcprules_base: Option<PathBuf>,

    /// Variables a leased address gets in the cdb [default: RELAYCLIENT=""]; repeatable
    #[arg(long, value_name = "NAME=VALUE", requires = "tcprules")]
    pub tcprules_env: Vec<String>,

    /// After binding sockets and opening files as root, run as USER
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// With --user: run with this group instead of the user's own (its other groups, such
    /// as adm for reading logs, are kept)
    #[arg(long, value_name = "GROUP", requires = "user")]
    pub group: Option<String>,

    /// Keep leases in Redis, shared by every relaylease of a site: redis://[USER:PASSWORD@]HOST:PORT/DB,
    /// rediss:// for TLS, or redis+sentinel://[USER:PASSWORD@]HOST:PORT,.../MASTER/DB with
    /// ?sentinel_pass=P to find the primary through Sentinel (log positions and settings stay
    /// in --db)
    #[arg(
        long,
        env = "RELAYLEASE_STORE",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub store: Option<String>,

    /// Name prefix of relaylease's keys and channel in Redis, so several sites can share one
    #[arg(
        long,
        default_value = "relaylease",
        value_name = "PREFIX",
        requires = "store"
    )]
    pub store_prefix: String,

    /// Use a --store URL without a password: whoever can reach that Redis can then write a
    /// lease and open the relay. Without it a URL must carry a password
    #[arg(long, requires = "store")]
    pub store_no_password: bool,

    /// A login (hook, Dovecot auth-policy, add) counts as stored in Redis only once this many
    /// replicas confirm it (Redis WAIT); until then it stays queued on this host, and the
    /// hook's reply says so. 0 trusts the primary alone
    #[arg(long, default_value_t = 0, value_name = "N", requires = "store", value_parser = clap::value_parser!(u32).range(0..=16))]
    pub store_replicas: u32,

    /// Log format on stderr
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// What the policy service answers at RCPT a client without a lease: dunno, or defer
    /// (DEFER_IF_REJECT: Postfix answers 450 instead of 554 to a relay it refuses, and the
    /// client tries again after fetching its mail)
    #[arg(long, value_enum, default_value = "dunno", value_name = "ACTION")]
    pub unleased_action: UnleasedAction,

    /// Mark mail relayed through a lease with this header (Postfix: the policy service in
    /// smtpd_data_restrictions answers PREPEND at DATA; qmail: TCPREMOTEINFO). Off by default
    #[arg(long, value_name = "NAME")]
    pub mark_header: Option<String>,

    /// With --mark-header: name an opaque token instead of the user, keyed by the secret in
    /// FILE (at least 16 bytes); `relaylease usage --token` maps it back
    #[arg(long, value_name = "FILE", requires = "mark_header")]
    pub mark_token_secret: Option<PathBuf>,

    /// Drop usage records with no login or relay for this long
    #[arg(long, default_value = crate::usage::RETENTION, value_name = "DURATION")]
    pub usage_retention: String,

    /// Which --watch each --format follows (filled from the command line's order)
    #[arg(skip)]
    pub format_after: Vec<usize>,
}

/// Parse the command line, remembering which `--watch` each `--format` follows.
pub fn parse() -> Result<Cli, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(cli) = parse_chain_link(&args) {
        return Ok(cli);
    }
    let matches = Cli::command().try_get_matches_from(args)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    if let (Command::Daemon(d), Some(("daemon", sub))) = (&mut cli.command, matches.subcommand()) {
        let watches: Vec<usize> = sub
            .indices_of("watch")
            .map(|i| i.collect())
            .unwrap_or_default();
        let formats: Vec<usize> = sub
            .indices_of("format")
            .map(|i| i.collect())
            .unwrap_or_default();
        d.format_after = formats
            .iter()
            .map(|f| watches.iter().filter(|w| *w < f).count())
            .collect();
    }
    Ok(cli)
}

/// `hook` and `smtp-wrap` start once per POP3/IMAP login or SMTP connection, as links of a
/// login chain: they are parsed against a command that holds only the global flags and their
/// own, which takes about 0.25 ms and 60 page faults off each start against the whole tree of
/// every command's flags (docs/performance.md, issue 19). The flags are the same
/// definitions, so a parse here gives what the whole tree would; anything it does not
/// accept as given (an error, `--help`) is left to the whole tree, whose messages the user
/// sees. `None` when `args` is not a chain link's.
pub fn parse_chain_link(args: &[std::ffi::OsString]) -> Option<Cli> {
    use clap::FromArgMatches;
    let name = args.get(1)?.to_str()?;
    let sub = match name {
        "hook" => HookArgs::augment_args(clap::Command::new("hook")),
        "smtp-wrap" => SmtpWrapArgs::augment_args(clap::Command::new("smtp-wrap")),
        _ => return None,
    };
    let m = Globals::augment_args(clap::Command::new("relaylease"))
        .subcommand(sub)
        .try_get_matches_from(args)
        .ok()?;
    let globals = Globals::from_arg_matches(&m).ok()?;
    let (_, sm) = m.subcommand()?;
    let command = match name {
        "hook" => Command::Hook(HookArgs::from_arg_matches(sm).ok()?),
        _ => Command::SmtpWrap(SmtpWrapArgs::from_arg_matches(sm).ok()?),
    };
    Some(Cli { globals, command })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};
    use std::ffi::OsString;

    fn argv(line: &str) -> Vec<OsString> {
        line.split(' ').map(OsString::from).collect()
    }

    fn whole_tree(args: &[OsString]) -> Result<Cli, clap::Error> {
        let m = Cli::command().try_get_matches_from(args)?;
        Cli::from_arg_matches(&m)
    }

    #[test]
    fn a_chain_link_parses_as_the_whole_tree_parses_it() {
        for line in [
            "relaylease hook",
            "relaylease hook --ip 192.0.2.7 --user alice",
            "relaylease hook --ip 2001:db8::7 --socket /run/x.sock -v -v --timeout 250ms",
            "relaylease hook --db /var/lib/x -q -- /var/qmail/bin/qmail-pop3d Maildir",
            "relaylease hook -- qmail-pop3d -v --help",
            "relaylease smtp-wrap -- /var/qmail/bin/qmail-smtpd",
            "relaylease smtp-wrap --env RELAYCLIENT= --env RBLSMTPD= --timeout 2s -- qmail-smtpd a",
            "relaylease smtp-wrap --socket /s -qq -- qmail-smtpd",
        ] {
            let args = argv(line);
            let fast = parse_chain_link(&args).unwrap_or_else(|| panic!("not fast: {line}"));
            let whole = whole_tree(&args).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(format!("{fast:?}"), format!("{whole:?}"), "{line}");
        }
    }

    #[test]
    fn what_a_chain_link_does_not_accept_is_left_to_the_whole_tree() {
        for line in [
            "relaylease hook --bogus",
            "relaylease hook --ip",
            "relaylease hook --help",
            "relaylease hook -V",
            "relaylease hook extra",
            "relaylease smtp-wrap",
            "relaylease smtp-wrap --env X=1",
        ] {
            let args = argv(line);
            assert!(parse_chain_link(&args).is_none(), "{line}");
            assert!(whole_tree(&args).is_err(), "{line}");
        }
        // Other commands, and flags before the command, take the whole tree.
        for line in ["relaylease check 192.0.2.7", "relaylease --socket /s hook"] {
            let args = argv(line);
            assert!(parse_chain_link(&args).is_none(), "{line}");
            assert!(whole_tree(&args).is_ok(), "{line}");
        }
    }
}
