//! The commands that are links of a chain rather than questions to the daemon: `hook` runs in
//! a POP3/IMAP login chain and `smtp-wrap` under tcpserver. Neither may stand in the way of
//! what it wraps: whatever goes wrong is one line on standard error, and PROGRAM still runs.

use std::time::Duration;

use crate::answers::wrap;
use crate::cli::{HookArgs, SmtpWrapArgs};
use crate::config::Paths;
use crate::sources::hook;

/// `--timeout` of a chain link. A bad value must not stop the chain: it is said, and the
/// default of 1 s used.
fn chain_timeout(command: &str, s: &str) -> Duration {
    crate::lease::parse_duration(s).unwrap_or_else(|e| {
        eprintln!("relaylease {command}: --timeout: {e}; using 1s");
        Duration::from_secs(1)
    })
}

/// `hook`: report the login, then exec PROGRAM. Without PROGRAM the exit status says how the
/// report went: 0 granted, 1 refused, 2 not delivered.
pub fn hook(paths: &Paths, h: &HookArgs) -> i32 {
    let timeout = chain_timeout("hook", &h.timeout);
    let env = |k: &str| std::env::var(k).ok();
    let ip = hook::client_addr(h.ip.as_deref(), &env);
    let user = h
        .user
        .clone()
        .or_else(|| env("USER"))
        .filter(|u| !u.is_empty());
    let outcome = hook::report(&paths.socket, ip, user, timeout);
    if let Err(e) = &outcome {
        eprintln!("relaylease hook: {e}");
    }
    if h.program.is_empty() {
        return match outcome {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(_) => 2,
        };
    }
    let e = hook::exec(&h.program);
    eprintln!("relaylease hook: {e}");
    hook::EXEC_FAILED as i32
}

/// `smtp-wrap`: set the `--env` variables when `$TCPREMOTEIP` may relay, then exec PROGRAM.
/// On any doubt PROGRAM runs without them (fail closed); it always runs.
pub fn smtp_wrap(paths: &Paths, w: &SmtpWrapArgs) -> i32 {
    let timeout = chain_timeout("smtp-wrap", &w.timeout);
    let mut vars = Vec::new();
    for e in &w.env {
        match crate::answers::parse_env("--env", e) {
            Ok(v) => vars.push(v),
            Err(msg) => eprintln!("relaylease smtp-wrap: {msg}; ignored"),
        }
    }
    if w.env.is_empty() {
        vars.push(("RELAYCLIENT".to_string(), String::new()));
    }
    let addr = std::env::var("TCPREMOTEIP").ok();
    match wrap::relay(&paths.socket, addr.as_deref(), timeout) {
        Ok(grant) if grant.allowed => {
            for (k, v) in &vars {
                // SAFETY: single-threaded here, just before exec.
                unsafe { std::env::set_var(k, v) };
            }
            if let Some(info) = &grant.remote_info {
                // SAFETY: as above. qmail-smtpd writes it into its Received header.
                unsafe { std::env::set_var("TCPREMOTEINFO", info) };
            }
        }
        Ok(_) => {}
        Err(e) => eprintln!("relaylease smtp-wrap: {e}; running without relay permission"),
    }
    let e = hook::exec(&w.program);
    eprintln!("relaylease smtp-wrap: {e}");
    hook::EXEC_FAILED as i32
}
