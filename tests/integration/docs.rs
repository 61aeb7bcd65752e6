//! The man page and the shell completions are generated from the clap definitions; these
//! tests fail when a committed copy is stale, and when the page does not render cleanly.
//!
//! Refresh everything with `RELAYLEASE_UPDATE_DOCS=1 cargo test --test integration docs::`, then commit.
//!
//! `man/relaylease.8` is `man/relaylease.8.in` (the written sections, in roff) with each
//! marker line `.\" @generated NAME@` replaced by what clap knows: the title line, NAME,
//! SYNOPSIS, the global options and one subsection per command. Edit the template or
//! `src/cli.rs`, never the page.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use clap::{ArgAction, Command, CommandFactory};
use clap_complete::Shell;
use relaylease::cli::Cli;

const REFRESH: &str = "RELAYLEASE_UPDATE_DOCS=1 cargo test --test integration docs::";
const TEMPLATE: &str = "man/relaylease.8.in";
const PAGE: &str = "man/relaylease.8";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The command line as clap sees it, with every subcommand's bin name filled in.
fn cli() -> Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

/// Escape text for a roff text line: backslashes and hyphens (so `--flag` stays ASCII).
fn esc(s: &str) -> String {
    s.replace('\\', r"\\").replace('-', r"\-")
}

/// Arguments every command has, documented once under GLOBAL OPTIONS.
fn is_global(a: &clap::Arg) -> bool {
    a.is_global_set() || matches!(a.get_id().as_str(), "help" | "version")
}

/// `VALUE` names of an argument: its value_name, else its id in capitals.
fn value_name(a: &clap::Arg) -> String {
    match a.get_value_names() {
        Some(v) if !v.is_empty() => v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
        _ => a.get_id().as_str().to_uppercase(),
    }
}

/// One synopsis entry: `[--expire DURATION]`, `[--allow NET]...`, `ADDR`, `[-- PROGRAM [ARG]...]`.
/// Spaces inside an entry are unbreakable, so a line only ever breaks between entries.
fn synopsis_entry(a: &clap::Arg) -> String {
    let repeat = matches!(a.get_action(), ArgAction::Append | ArgAction::Count);
    let optional = !a.is_required_set();
    let body = if a.is_positional() {
        let name = format!(r"\fI{}\fR", esc(&value_name(a)));
        if a.is_last_set() {
            let inner = format!(r"\fB\-\-\fR\ {name}\ [\fIARG\fR]...");
            return if optional {
                format!("[{inner}]")
            } else {
                inner
            };
        }
        name
    } else {
        let counted = matches!(a.get_action(), ArgAction::Count);
        let flag = match (a.get_long(), a.get_short()) {
            (_, Some(s)) if counted => format!(r"\fB\-{s}\fR"),
            (Some(l), _) => format!(r"\fB\-\-{}\fR", esc(l)),
            (None, Some(s)) => format!(r"\fB\-{s}\fR"),
            (None, None) => unreachable!("an option has a name"),
        };
        let choices: Vec<String> = a
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| format!(r"\fB{}\fR", esc(v.get_name())))
            .collect();
        if !a.get_num_args().is_some_and(|n| n.takes_values()) {
            flag
        } else if !choices.is_empty() && a.get_value_names().is_none() {
            format!(r"{flag}\ {}", choices.join("|"))
        } else {
            format!(r"{flag}\ \fI{}\fR", esc(&value_name(a)))
        }
    };
    let body = if optional { format!("[{body}]") } else { body };
    if repeat { format!("{body}...") } else { body }
}

/// The commands a user runs; clap's own `help` command is covered by `--help`.
fn commands(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

fn synopsis(name: &str, args: impl Iterator<Item = String>, tail: &str) -> String {
    let mut out = format!(".SY \"{name}\"\n");
    for a in args {
        out.push_str(&a);
        out.push('\n');
    }
    out.push_str(tail);
    out.push_str(".YS\n");
    out
}

/// Roff without the apostrophe preamble that clap_mangen writes before every piece.
fn without_preamble(roff: &[u8]) -> String {
    let text = String::from_utf8(roff.to_vec()).expect("roff is UTF-8");
    text.lines()
        .filter(|l| !l.starts_with(r".ie \n(.g .ds Aq") && !l.starts_with(".el .ds Aq"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// `` `list` `` in help text becomes bold `list`, as literals are set in man pages.
fn literals(text: &str) -> String {
    text.lines()
        .map(|l| {
            let n = l.matches('`').count();
            if l.starts_with('.') || n == 0 || n % 2 != 0 {
                return format!("{l}\n");
            }
            let mut out = String::new();
            for (i, part) in l.split('`').enumerate() {
                if i > 0 {
                    out.push_str(if i % 2 == 1 { r"\fB" } else { r"\fR" });
                }
                out.push_str(part);
            }
            format!("{out}\n")
        })
        .collect()
}

/// The `.TP` list of `cmd`'s own arguments (positionals last), as clap_mangen renders it.
fn option_list(cmd: &Command, own_only: bool) -> String {
    let mut cmd = cmd.clone();
    let hidden: Vec<String> = cmd
        .get_arguments()
        .filter(|a| own_only && is_global(a))
        .map(|a| a.get_id().to_string())
        .collect();
    for id in hidden {
        cmd = cmd.mut_arg(id, |a| a.hide(true));
    }
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .render_options_section(&mut buf)
        .expect("render options");
    let text = without_preamble(&buf);
    literals(
        &text
            .lines()
            .filter(|l| !l.starts_with(".SH ") && !l.trim().is_empty())
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    )
}

fn generated(cmd: &Command, what: &str) -> String {
    let version = cmd.get_version().expect("clap knows the version");
    match what {
        "title" => format!(
            ".TH RELAYLEASE 8 \"\" \"relaylease {version}\" \"System Manager\\(aqs Manual\"\n"
        ),
        "name" => {
            let about = cmd.get_about().expect("about").to_string();
            format!(".SH NAME\nrelaylease \\- {}\n", esc(&about))
        }
        "synopsis" => {
            let mut out = String::from(".SH SYNOPSIS\n");
            let globals = cmd
                .get_arguments()
                .filter(|a| !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version"));
            out.push_str(&synopsis(
                "relaylease",
                globals.map(synopsis_entry),
                "\\fICOMMAND\\fR [\\fIARGS\\fR]\n",
            ));
            for sub in commands(cmd) {
                let args = sub
                    .get_arguments()
                    .filter(|a| !a.is_hide_set() && !is_global(a));
                out.push_str(&synopsis(
                    &format!("relaylease {}", sub.get_name()),
                    args.map(synopsis_entry),
                    "",
                ));
            }
            out.push_str(
                ".SY relaylease\n[\\fICOMMAND\\fR] \\fB\\-\\-help\\fR\n.YS\n\
                 .SY relaylease\n\\fB\\-\\-version\\fR\n.YS\n",
            );
            out
        }
        "global-options" => option_list(cmd, false),
        "commands" => {
            let mut out = String::new();
            for sub in commands(cmd) {
                let about = sub
                    .get_long_about()
                    .or_else(|| sub.get_about())
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                out.push_str(&format!(
                    ".SS \"relaylease {}\"\n{}",
                    esc(sub.get_name()),
                    literals(&format!("{}\n", esc(&about)))
                ));
                if sub
                    .get_arguments()
                    .any(|a| !a.is_hide_set() && !is_global(a))
                {
                    out.push_str(&option_list(sub, true));
                }
            }
            out
        }
        other => panic!("{TEMPLATE}: unknown marker @generated {other}@"),
    }
}

/// The whole page: the template with every marker replaced.
fn man_page() -> String {
    let cmd = cli();
    let template = std::fs::read_to_string(root().join(TEMPLATE))
        .unwrap_or_else(|e| panic!("cannot read {TEMPLATE}: {e}"));
    let mut out = String::new();
    out.push_str(&format!(
        ".\\\" Generated from src/cli.rs and {TEMPLATE} by tests/docs.rs: do not edit.\n\
         .\\\" Refresh with: {REFRESH}\n"
    ));
    out.push_str(".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n");
    let mut seen = BTreeSet::new();
    for line in template.lines() {
        match line
            .strip_prefix(".\\\" @generated ")
            .and_then(|r| r.strip_suffix('@'))
        {
            Some(what) => {
                assert!(
                    seen.insert(what.to_string()),
                    "{TEMPLATE}: @generated {what}@ twice"
                );
                out.push_str(&generated(&cmd, what));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for what in ["title", "name", "synopsis", "global-options", "commands"] {
        assert!(
            seen.contains(what),
            "{TEMPLATE} lacks the line .\\\" @generated {what}@"
        );
    }
    out
}

fn completion(shell: Shell) -> Vec<u8> {
    let mut cmd = cli();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "relaylease", &mut buf);
    buf
}

/// Where each generated file lives in the source tree.
fn outputs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (PAGE, man_page().into_bytes()),
        (
            "contrib/completions/relaylease.bash",
            completion(Shell::Bash),
        ),
        ("contrib/completions/_relaylease", completion(Shell::Zsh)),
        (
            "contrib/completions/relaylease.fish",
            completion(Shell::Fish),
        ),
    ]
}

/// Fail when `rel` differs from `want`, naming the first differing line; with
/// RELAYLEASE_UPDATE_DOCS=1 write it instead.
fn check_fresh(rel: &str, want: &[u8]) -> Option<String> {
    let path: PathBuf = root().join(rel);
    let have = std::fs::read(&path).unwrap_or_default();
    if have == want {
        return None;
    }
    if std::env::var_os("RELAYLEASE_UPDATE_DOCS").is_some_and(|v| v == "1") {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create directory");
        }
        std::fs::write(&path, want).unwrap_or_else(|e| panic!("cannot write {rel}: {e}"));
        eprintln!("docs: rewrote {rel}");
        return None;
    }
    let have = String::from_utf8_lossy(&have);
    let want = String::from_utf8_lossy(want);
    let (n, h, w) = have
        .lines()
        .map(Some)
        .chain(std::iter::repeat(None))
        .zip(want.lines().map(Some).chain(std::iter::repeat(None)))
        .enumerate()
        .find(|(_, (h, w))| h != w)
        .map(|(i, (h, w))| {
            (
                i + 1,
                h.unwrap_or("(end of file)"),
                w.unwrap_or("(end of file)"),
            )
        })
        .unwrap_or((0, "", ""));
    Some(format!(
        "{rel} is stale: line {n} is\n    {h}\nbut would now be\n    {w}"
    ))
}

#[test]
fn generated_files_are_current() {
    let stale: Vec<String> = outputs()
        .iter()
        .filter_map(|(rel, want)| check_fresh(rel, want))
        .collect();
    assert!(
        stale.is_empty(),
        "{}\n\nThe man page and completions are generated from src/cli.rs and {TEMPLATE}.\n\
         Refresh them with\n    {REFRESH}\nand commit the result.",
        stale.join("\n\n")
    );
}

/// Render `page` with groff (Debian's groff-base package) at 80 columns, with every warning
/// enabled: (plain text without bold or underline, warnings).
fn groff(page: &str) -> (String, String) {
    use std::io::Write;
    let mut child = Process::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-rLL=80n", "-P-cbou"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run groff ({e}): install Debian's groff-base package"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = page.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("groff");
    writer.join().expect("writer").expect("write to groff");
    assert!(
        out.status.success(),
        "groff failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs Debian's groff-base (tests/run.sh installs and runs them)"]
fn man_page_renders_without_warnings() {
    let (text, warnings) = groff(&man_page());
    assert!(
        warnings.trim().is_empty(),
        "groff -man -ww warns about the generated page (fix {TEMPLATE}):\n{warnings}"
    );
    // A plain `-` prints as U+2010 HYPHEN, which breaks copy and paste of a command line:
    // every flag and option must be written `\-`.
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.contains("\u{2010}\u{2010}") || l.contains(" \u{2010}") || l.ends_with('\u{2010}')
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{TEMPLATE}: write these hyphens as \\- so they stay ASCII:\n{}",
        bad.join("\n")
    );
    for section in [
        "DESCRIPTION",
        "SECURITY",
        "EXIT STATUS",
        "FILES",
        "ENVIRONMENT",
    ] {
        assert!(
            text.contains(&format!("\n{section}\n")),
            "no {section} section"
        );
    }
}

/// Every `\-\-flag` the written sections mention exists (another program's flag would
/// need an allow-list here).
#[test]
fn written_sections_name_only_real_flags() {
    fn longs(cmd: &Command, into: &mut BTreeSet<String>) {
        for a in cmd.get_arguments() {
            if let Some(l) = a.get_long() {
                into.insert(l.to_string());
            }
        }
        for s in cmd.get_subcommands() {
            longs(s, into);
        }
    }
    let mut real = BTreeSet::new();
    longs(&cli(), &mut real);
    let template = std::fs::read_to_string(root().join(TEMPLATE)).expect("template");
    let mut unknown = BTreeSet::new();
    for line in template.lines().filter(|l| !l.starts_with(".\\\"")) {
        for part in line.split(r"\-\-").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '\\')
                .collect::<String>()
                .replace(r"\-", "-");
            let name = name.trim_end_matches(['-', '\\']);
            if !name.is_empty() && !real.contains(name) {
                unknown.insert(name.to_string());
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "{TEMPLATE} mentions flags relaylease does not have: {unknown:?}"
    );
}
