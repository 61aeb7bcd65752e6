//! Postfix's smtp-sink as the relay destination: it accepts every message on a loopback port
//! and dumps each into a file, so a test can read what Postfix actually sent on.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::unistd::Pid;

use super::net::free_port;
use super::process::{
    self, STARTUP_TIMEOUT, child_exited, find_program, log_tail, report_stop, stop_group,
};

const ATTEMPTS: usize = 5;

/// A running `smtp-sink` on 127.0.0.1; killed on drop.
pub struct SmtpSink {
    dumps: PathBuf,
    stderr: PathBuf,
    port: u16,
    child: Child,
}

impl SmtpSink {
    /// Starts smtp-sink (Debian package postfix) in a new subdirectory of `dir`. It runs as
    /// user postfix (`-u`, required as root) and dumps every message into its own file.
    pub fn start(dir: &Path) -> SmtpSink {
        process::prepare();
        let program = find_program("smtp-sink", "postfix");
        let (uid, gid) = process::system_user("postfix", "postfix");
        let root = process::instance_dir(dir, "smtp-sink");
        let dumps = root.join("dumps");
        process::mkdir(&dumps);
        process::chown(&dumps, uid, gid);
        let stderr = root.join("smtp-sink.stderr");
        for _ in 0..ATTEMPTS {
            let port = free_port();
            let log = std::fs::File::create(&stderr).expect("smtp-sink stderr");
            let child = Command::new(&program)
                .args(["-u", "postfix", "-h", "sink.test", "-d"])
                .arg(format!("{}/%M.", dumps.display()))
                .arg(format!("127.0.0.1:{port}"))
                .arg("10")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
            let mut sink = SmtpSink {
                dumps: dumps.clone(),
                stderr: stderr.clone(),
                port,
                child,
            };
            let mut exited = false;
            let up = process::wait_until(STARTUP_TIMEOUT, || {
                exited = child_exited(&mut sink.child);
                exited || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
            if up && !exited {
                return sink;
            }
            let failure = log_tail(&stderr, 20);
            drop(sink);
            if !failure.contains("in use") {
                panic!("smtp-sink did not start:\n{failure}");
            }
        }
        panic!("smtp-sink did not start after {ATTEMPTS} port choices");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message dumped so far, whole (smtp-sink's X- lines, then the message).
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&self.dumps) {
            for e in rd.flatten() {
                if let Ok(text) = std::fs::read_to_string(e.path()) {
                    out.push(text);
                }
            }
        }
        out
    }

    /// The dumped message whose Subject is `subject`, once it has arrived (within the rig's
    /// startup timeout); panics with what did arrive otherwise.
    pub fn wait_for(&self, subject: &str) -> String {
        let needle = format!("Subject: {subject}\n");
        let needle_crlf = format!("Subject: {subject}\r\n");
        let mut found = None;
        process::wait_until(STARTUP_TIMEOUT, || {
            found = self
                .messages()
                .into_iter()
                .find(|m| m.contains(&needle) || m.contains(&needle_crlf));
            found.is_some()
        });
        found.unwrap_or_else(|| {
            panic!(
                "no message with Subject {subject:?} reached smtp-sink; it has:\n{:#?}\n{}",
                self.messages(),
                log_tail(&self.stderr, 20)
            )
        })
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.child.id() as i32);
        report_stop("smtp-sink", stop_group(pid, Some(&mut self.child)));
    }
}
