//! Rendering a report: a table for people (coloured on a terminal unless NO_COLOR is set, plain
//! aligned text otherwise) or one JSON document.

use std::io::{IsTerminal, Write};

use comfy_table::{presets, Attribute, Cell, Color, ContentArrangement, Table};

pub mod routers;

use crate::model::{Check, Status};

/// Write a command's result to stdout: one pretty JSON document (`--json`), or what `human`
/// renders for people.
pub fn emit<T: serde::Serialize>(
    json: bool,
    doc: &T,
    human: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, doc)
            .map_err(std::io::Error::other)
            .and_then(|_| writeln!(out))
    } else {
        human(&mut out)
    }
}

/// The exit code once the output is written: `code`, also when the reader closed the pipe
/// (`| head` is not an error of ours); else 3 with the reason on stderr.
pub fn exit_after(cmd: &str, written: std::io::Result<()>, code: u8) -> u8 {
    match written {
        Ok(()) => code,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        Err(e) => {
            eprintln!("vmpath {cmd}: cannot write output: {e}");
            crate::model::exit::UNKNOWN
        }
    }
}

/// How to render for people.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    /// Box-drawn table (terminal) or plain lines (pipes, logs).
    pub table: bool,
    pub verbose: bool,
}

impl Style {
    /// Decide from stdout and the environment: tables and colour on a terminal, NO_COLOR honoured.
    pub fn detect(verbose: bool) -> Style {
        let tty = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: tty && !no_color,
            table: tty,
            verbose,
        }
    }
}

fn status_label(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Warn => "WARN",
        Status::Unknown => "unknown",
        Status::Fail => "FAIL",
    }
}

fn status_color(s: Status) -> Color {
    match s {
        Status::Ok => Color::Green,
        Status::Warn => Color::Yellow,
        Status::Unknown => Color::Magenta,
        Status::Fail => Color::Red,
    }
}

fn check_name(c: &Check) -> String {
    match &c.subject {
        Some(s) => format!("{} {s}", c.id),
        None => c.id.to_string(),
    }
}

/// Counts for the verdict line.
pub fn tally(checks: &[Check]) -> String {
    let n = |s: Status| checks.iter().filter(|c| c.status == s).count();
    format!(
        "{} failed, {} warnings, {} unknown, {} ok",
        n(Status::Fail),
        n(Status::Warn),
        n(Status::Unknown),
        n(Status::Ok)
    )
}

/// Render checks for people. Evidence is shown for every check that is not ok (and for all with
/// `verbose`); the fix for every check that is not ok.
pub fn render_checks(out: &mut dyn Write, checks: &[Check], style: Style) -> std::io::Result<()> {
    if style.table {
        let mut t = Table::new();
        t.load_style(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        if !style.color {
            t.force_no_tty();
        }
        t.set_header(vec!["status", "check", "finding", "fix"]);
        for c in checks {
            let mut finding = c.summary.clone();
            if c.status != Status::Ok || style.verbose {
                for e in c.evidence.iter().take(if style.verbose { 12 } else { 4 }) {
                    finding.push_str("\n  ");
                    finding.push_str(e);
                }
            }
            let mut st = Cell::new(status_label(c.status));
            if style.color {
                st = st.fg(status_color(c.status));
                if c.status == Status::Fail {
                    st = st.add_attribute(Attribute::Bold);
                }
            }
            t.add_row(vec![
                st,
                Cell::new(check_name(c)),
                Cell::new(finding),
                Cell::new(c.fix.as_deref().unwrap_or("")),
            ]);
        }
        writeln!(out, "{t}")
    } else {
        let w = checks
            .iter()
            .map(|c| check_name(c).len())
            .max()
            .unwrap_or(10);
        for c in checks {
            writeln!(
                out,
                "{:<7}  {:<w$}  {}",
                status_label(c.status),
                check_name(c),
                c.summary
            )?;
            if c.status != Status::Ok || style.verbose {
                for e in &c.evidence {
                    writeln!(out, "{:<7}  {:<w$}    seen: {e}", "", "")?;
                }
            }
            if let Some(f) = &c.fix {
                if c.status != Status::Ok {
                    writeln!(out, "{:<7}  {:<w$}    fix:  {f}", "", "")?;
                }
            }
        }
        Ok(())
    }
}

/// The verdict line, coloured when allowed.
pub fn verdict_line(verdict: Status, checks: &[Check], extra: &str, style: Style) -> String {
    let word = match verdict {
        Status::Ok => "OK",
        Status::Warn => "WARN",
        Status::Unknown => "UNKNOWN",
        Status::Fail => "FAIL",
    };
    let word = if style.color {
        let code = match verdict {
            Status::Ok => "32",
            Status::Warn => "33",
            Status::Unknown => "35",
            Status::Fail => "1;31",
        };
        format!("\x1b[{code}m{word}\x1b[0m")
    } else {
        word.to_string()
    };
    format!("verdict: {word} — {}{extra}", tally(checks))
}

/// Write `doc` as JSON to `path` (`VMPATH_FACTS_OUT`, a diagnostic): mode 0600, never through a
/// symlink. A failure is reported on stderr and changes nothing else.
pub fn write_facts<T: serde::Serialize>(path: &std::path::Path, doc: &T) {
    use std::os::unix::fs::OpenOptionsExt;
    let res = serde_json::to_vec_pretty(doc)
        .map_err(std::io::Error::other)
        .and_then(|json| {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)?
                .write_all(&json)
        });
    if let Err(e) = res {
        eprintln!(
            "vmpath: VMPATH_FACTS_OUT {}: cannot write the facts: {e}",
            path.display()
        );
    }
}
