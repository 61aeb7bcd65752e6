//! The `relaylease` program: parse flags, set up logging and signals, run a command, and
//! turn its outcome into an exit code.
//!
//! The program starts at its own C `main` ([`main`]), not through Rust's runtime start:
//! `relaylease hook` runs once per POP3/IMAP login and `smtp-wrap` once per SMTP connection,
//! and the runtime's start cost each of them about 0.05-0.1 ms of a 1.5 ms start (the hook
//! with no daemon to reach: 0.86 against 0.78-0.79 ms of CPU; a hello world 0.58-0.62
//! against 0.51-0.54 ms; 2026-12-06, docs/performance.md). Most of that was the handler that
//! names a thread whose stack overflowed: an alternate signal stack, two signal handlers,
//! and glibc reading `/proc/self/maps` to find the main thread's stack. [`start`] does the
//! rest of what the runtime did (standard descriptors, SIGPIPE), and [`main`] turns a panic
//! into exit status 101 and flushes standard output at the end. A stack overflow still stops
//! the process (SIGSEGV on the guard page), without the line that named the thread. The
//! unit-test build keeps the test harness's own entry point.
#![cfg_attr(not(test), no_main)]

use relaylease::cli::{Cli, Command, LogFormat};
use relaylease::config::{DaemonConfig, Paths};
use relaylease::{Error, commands, daemon};

fn init_logging(cli: &Cli, daemon: bool, format: LogFormat) {
    use tracing_subscriber::filter::LevelFilter;
    let base: i16 = if daemon { 2 } else { 1 }; // info for the daemon, warn for commands
    let level = match base + cli.globals.verbose as i16 - cli.globals.quiet as i16 {
        i16::MIN..=-1 => LevelFilter::OFF,
        0 => LevelFilter::ERROR,
        1 => LevelFilter::WARN,
        2 => LevelFilter::INFO,
        3 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    // Under systemd the journal stamps every line itself.
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    // -v raises relaylease's own level; the libraries below stay at warnings.
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(level.min(LevelFilter::WARN))
        .with_target("relaylease", level);
    let b = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false);
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = match (format, journal) {
        (LogFormat::Json, _) => b.json().finish().with(filter).try_init(),
        (LogFormat::Text, true) => b.without_time().finish().with(filter).try_init(),
        (LogFormat::Text, false) => b.finish().with(filter).try_init(),
    };
}

fn run_daemon(cfg: DaemonConfig) -> Result<i32, Error> {
    relaylease::memory::tune();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::net("start the runtime", e))?;
    rt.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let sig = |k| signal(k).map_err(|e| Error::net("install a signal handler", e));
        let mut term = sig(SignalKind::terminate())?;
        let mut int = sig(SignalKind::interrupt())?;
        let mut hup = sig(SignalKind::hangup())?;
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let _ = reload_tx.try_send(());
            }
        });
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        daemon::run(cfg, shutdown, reload_rx).await.map(|()| 0)
    })
}

fn run(cli: &Cli) -> Result<i32, Error> {
    let paths = Paths::resolve(cli.globals.socket.clone(), cli.globals.db.clone());
    match &cli.command {
        Command::Daemon(args) => {
            init_logging(cli, true, args.log_format);
            let cfg = DaemonConfig::from_args(args, paths)?;
            run_daemon(cfg)
        }
        other => {
            init_logging(cli, false, LogFormat::Text);
            match other {
                Command::Check { addr } => commands::check(&paths, addr.clone()),
                Command::List { json } => commands::list(&paths, *json),
                Command::Add { addr, duration } => {
                    commands::add(&paths, addr.clone(), duration.clone())
                }
                Command::Del { addr } => commands::del(&paths, addr.clone()),
                Command::Flush => commands::flush(&paths),
                Command::Window { duration } => commands::window(&paths, duration.clone()),
                Command::Stats { json, prometheus } => commands::stats(&paths, *json, *prometheus),
                Command::Hook(h) => Ok(commands::chain::hook(&paths, h)),
                Command::SmtpWrap(w) => Ok(commands::chain::smtp_wrap(&paths, w)),
                Command::Usage(a) => relaylease::usage::command::run(&paths, a),
                Command::ParseLog {
                    json,
                    since,
                    journal,
                    login_pattern,
                    ..
                } if journal.journal => commands::parse_log::parse_journal(
                    journal,
                    since.as_deref(),
                    login_pattern,
                    *json,
                ),
                Command::ParseLog {
                    json,
                    format,
                    login_pattern,
                    files,
                    ..
                } => commands::parse_log::parse_log(files, format.as_deref(), login_pattern, *json),
                Command::Doctor(a) => commands::doctor::run(&paths, a),
                Command::Daemon(_) => unreachable!("handled above"),
            }
        }
    }
}

/// The process's entry point, called by the C library with the arguments (which
/// `std::env::args` reads on its own).
#[cfg(not(test))]
#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    start();
    let code = std::panic::catch_unwind(relaylease_main).unwrap_or(101);
    use std::io::Write;
    let _ = std::io::stdout().flush();
    code
}

/// What Rust's runtime start did that the program relies on:
/// - descriptors 0, 1 and 2 are open (on `/dev/null` if the caller closed them), so that a
///   file or socket opened later is never taken for standard error. Where `/dev/null` cannot
///   be opened (a chroot without it), the root directory, read-only, takes its place: writes
///   to it fail and are dropped, and the hook still reports the login and runs its program.
///   Rust's runtime aborted here, which would have stopped every login of such a chain;
/// - SIGPIPE is ignored: a write to a peer that went away is an error, not the end of the
///   daemon. (`Command::exec` restores it for the program a chain link runs.)
#[cfg_attr(test, allow(dead_code))]
fn start() {
    // SAFETY: plain system calls on this process's own descriptors and signal disposition,
    // before any other thread exists.
    unsafe {
        let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        });
        let closed: [bool; 3] = loop {
            if libc::poll(fds.as_mut_ptr(), 3, 0) != -1 {
                break fds.map(|p| p.revents & libc::POLLNVAL != 0);
            }
            if *libc::__errno_location() != libc::EINTR {
                // poll refused (a resource limit): ask each descriptor instead.
                break [0, 1, 2].map(|fd| {
                    libc::fcntl(fd, libc::F_GETFD) == -1 && *libc::__errno_location() == libc::EBADF
                });
            }
        };
        for _ in closed.iter().filter(|c| **c) {
            // The lowest free descriptor: the closed one, in order. If neither can be
            // opened, it stays closed: nothing better is left to put there.
            if libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) == -1 {
                libc::open(c"/".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
            }
        }
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

#[cfg_attr(test, allow(dead_code))]
fn relaylease_main() -> libc::c_int {
    let cli = match relaylease::cli::parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match run(&cli) {
        Ok(code) => libc::c_int::from(code as u8),
        Err(e) => {
            eprintln!("relaylease: {e}");
            2
        }
    }
}
