//! Who asks whether an address may relay: Postfix's policy service, the socketmap lookup
//! server of Sendmail and Postfix, qmail's tcprules cdb and the wrapper check; the uses of
//! leases they grant by are recorded through [`lease_use`].

pub mod cdb;
pub mod lease_use;
pub mod postfix_policy;
pub mod postfix_policy_proto;
pub mod request_loop;
pub mod socketmap;
pub mod socketmap_proto;
pub mod tcprules;
pub mod tcprules_writer;
pub mod thread;
pub mod wrap;

use crate::error::{Error, Result};

/// Parse a variable for qmail-smtpd: `--tcprules-env` or smtp-wrap's `--env`, as
/// `RELAYCLIENT=""` (the value may be quoted or bare). `flag` names the flag in errors. The
/// name and value must fit a tcprules cdb line, so both flags take the same.
pub fn parse_env(flag: &str, s: &str) -> Result<(String, String)> {
    let (name, value) = s
        .split_once('=')
        .filter(|(n, _)| !n.is_empty() && !n.contains([',', ':', '\0']))
        .ok_or_else(|| {
            Error::invalid(format!(
                "{flag} '{s}': expected NAME=VALUE, e.g. RELAYCLIENT=\"\""
            ))
        })?;
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    if value.contains(['"', '\0', '\n']) {
        return Err(Error::invalid(format!(
            "{flag} '{s}': the value may not contain a quote, NUL or newline"
        )));
    }
    Ok((name.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_flags() {
        assert_eq!(
            parse_env("--tcprules-env", "RELAYCLIENT=\"\"").unwrap(),
            ("RELAYCLIENT".into(), "".into())
        );
        assert_eq!(
            parse_env("--tcprules-env", "RELAYCLIENT=@relay").unwrap(),
            ("RELAYCLIENT".into(), "@relay".into())
        );
        for bad in ["RELAYCLIENT", "=x", "A=\"b\"c\"", "A:B=1"] {
            assert!(
                parse_env("--tcprules-env", bad)
                    .unwrap_err()
                    .to_string()
                    .contains(bad),
                "{bad}"
            );
        }
    }
}
