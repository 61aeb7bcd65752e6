//! `relaylease doctor`'s judgements: what Postfix, Dovecot and the host are set to, as read
//! from `postconf`, `doveconf` and the file system, turned into ok / warn / FAIL lines that
//! each name the one fix. Pure: the commands that gather the facts live in
//! `commands::doctor`.

pub mod dovecot;
pub mod host;
pub mod postfix;

use serde::Serialize;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One checked fact: what was checked, what was found and, unless it is fine, the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Short stable name, e.g. `postfix.placement`.
    pub name: &'static str,
    pub status: Status,
    /// What was found, in one sentence.
    pub found: String,
    /// What to do about it, in one sentence; empty when nothing is to be done.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

impl Check {
    pub fn ok(name: &'static str, found: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            found: found.into(),
            fix: String::new(),
        }
    }
    pub fn warn(name: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Warn,
            found: found.into(),
            fix: fix.into(),
        }
    }
    pub fn fail(name: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            found: found.into(),
            fix: fix.into(),
        }
    }
}

/// The text report: one line per check, `ok`, `warn` or `FAIL`, then the name, what was
/// found and the fix.
pub fn render_text(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let tag = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        out.push_str(&format!("{tag} {}: {}", c.name, c.found));
        if !c.fix.is_empty() {
            out.push_str(&format!(" Fix: {}", c.fix));
        }
        out.push('\n');
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warned = checks.iter().filter(|c| c.status == Status::Warn).count();
    out.push_str(&format!(
        "{} checks: {failed} failed, {warned} warnings\n",
        checks.len()
    ));
    out
}

/// The JSON report: `{"checks":[...],"failed":N,"warnings":N}`.
pub fn render_json(checks: &[Check]) -> String {
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warned = checks.iter().filter(|c| c.status == Status::Warn).count();
    serde_json::json!({ "checks": checks, "failed": failed, "warnings": warned }).to_string()
}

/// 0 when nothing failed, 1 when something did.
pub fn exit_code(checks: &[Check]) -> i32 {
    i32::from(checks.iter().any(|c| c.status == Status::Fail))
}

/// A Postfix or Dovecot time value (`100s`, `5m`, `300`: seconds when no unit) in seconds.
pub fn parse_seconds(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n: u64 = v[..split].parse().ok()?;
    let unit = match v[split..].trim() {
        "" | "s" | "secs" | "sec" | "seconds" | "second" => 1,
        "m" | "min" | "mins" | "minutes" | "minute" => 60,
        "h" | "hours" | "hour" => 3600,
        "d" | "days" | "day" => 86400,
        "w" | "weeks" | "week" => 7 * 86400,
        _ => return None,
    };
    n.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_check_with_the_fix_and_a_summary() {
        let checks = vec![
            Check::ok("a", "fine."),
            Check::fail("b", "broken.", "mend it."),
        ];
        let t = render_text(&checks);
        assert_eq!(
            t,
            "ok   a: fine.\nFAIL b: broken. Fix: mend it.\n2 checks: 1 failed, 0 warnings\n"
        );
        assert_eq!(exit_code(&checks), 1);
        assert_eq!(exit_code(&checks[..1]), 0);
        let j: serde_json::Value = serde_json::from_str(&render_json(&checks)).unwrap();
        assert_eq!(j["checks"][1]["status"], "fail");
        assert_eq!(j["failed"], 1);
    }

    #[test]
    fn postfix_times() {
        assert_eq!(parse_seconds("100s"), Some(100));
        assert_eq!(parse_seconds("300"), Some(300));
        assert_eq!(parse_seconds("5m"), Some(300));
        assert_eq!(parse_seconds("x"), None);
    }
}
