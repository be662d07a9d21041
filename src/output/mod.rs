//! Rendering a report: a table for people on a terminal of known width (coloured unless
//! NO_COLOR is set or TERM is dumb), plain aligned text otherwise (pipes, logs, a terminal that
//! reports no width), or one JSON document.

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
            // An I/O error keeps its kind (a closed pipe stays one).
            .map_err(std::io::Error::from)
            .and_then(|_| writeln!(out))
    } else {
        human(&mut out)
    }
    .and_then(|()| out.flush())
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
    /// Box-drawn table (a terminal of known width) or plain lines (pipes, logs).
    pub table: bool,
    pub verbose: bool,
    /// The terminal's width in columns, when tables are drawn.
    pub width: Option<u16>,
}

/// Below this many columns (or when the terminal reports 0) the width counts as unknown: a
/// table squeezed into it would wrap every cell a character or two at a time.
pub const MIN_TABLE_WIDTH: u16 = 40;

impl Style {
    /// Decide from stdout and the environment: tables on a terminal whose width is known,
    /// colour on a terminal unless NO_COLOR is set (https://no-color.org) or TERM is `dumb`.
    pub fn detect(verbose: bool) -> Style {
        let tty = std::io::stdout().is_terminal();
        let width = if tty { terminal_width() } else { None };
        Style::decide(
            tty,
            width,
            std::env::var_os("NO_COLOR").as_deref(),
            std::env::var_os("TERM").as_deref(),
            verbose,
        )
    }

    /// [`Style::detect`] from what it reads (pure).
    pub fn decide(
        tty: bool,
        width: Option<u16>,
        no_color: Option<&std::ffi::OsStr>,
        term: Option<&std::ffi::OsStr>,
        verbose: bool,
    ) -> Style {
        let no_color = no_color.is_some_and(|v| !v.is_empty());
        let dumb = term.is_some_and(|t| t == "dumb");
        let width = width.filter(|w| *w >= MIN_TABLE_WIDTH);
        Style {
            color: tty && !no_color && !dumb,
            table: tty && width.is_some(),
            verbose,
            width: if tty { width } else { None },
        }
    }

    /// A table in vmpath's layout for this style: the terminal's width, colour only when
    /// allowed (comfy-table is never left to look at the terminal itself).
    pub fn table(&self) -> Table {
        let mut t = Table::new();
        t.load_style(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .force_no_tty();
        if let Some(w) = self.width {
            t.set_width(w);
        }
        if self.color {
            t.enforce_styling();
        }
        t
    }
}

/// The width of the terminal on stdout (TIOCGWINSZ), `None` when it reports none.
fn terminal_width() -> Option<u16> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we pass.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some(ws.ws_col)
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
        let mut t = style.table();
        t.set_header(vec!["status", "check", "finding"]);
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
            t.add_row(vec![st, Cell::new(check_name(c)), Cell::new(finding)]);
        }
        writeln!(out, "{t}")?;
        // Fixes are commands to copy: each on one line of its own, never wrapped in a cell.
        let fixes: Vec<(String, &str)> = checks
            .iter()
            .filter(|c| c.status != Status::Ok)
            .filter_map(|c| Some((check_name(c), c.fix.as_deref()?)))
            .collect();
        if !fixes.is_empty() {
            writeln!(out, "fix:")?;
        }
        for (name, fix) in fixes {
            writeln!(out, "  {name}: {fix}")?;
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn tables_need_a_terminal_of_known_width_and_colour_is_refused_by_no_color_and_dumb() {
        let xterm = Some(OsStr::new("xterm"));
        let s = Style::decide(true, Some(80), None, xterm, false);
        assert!(s.table && s.color && s.width == Some(80));
        // A terminal that reports 0 columns, or too few for a table: plain lines.
        for w in [None, Some(0), Some(39)] {
            let s = Style::decide(true, w, None, xterm, false);
            assert!(!s.table && s.width.is_none(), "{w:?}");
        }
        assert!(Style::decide(true, Some(40), None, xterm, false).table);
        assert!(!Style::decide(true, Some(80), None, Some(OsStr::new("dumb")), false).color);
        assert!(!Style::decide(true, Some(80), Some(OsStr::new("1")), xterm, false).color);
        // NO_COLOR set but empty does not count (no-color.org).
        assert!(Style::decide(true, Some(80), Some(OsStr::new("")), xterm, false).color);
        let piped = Style::decide(false, Some(80), None, xterm, false);
        assert!(!piped.table && !piped.color);
    }

    #[test]
    fn a_fix_is_a_line_of_its_own_under_the_table() {
        let fix = "ip route replace 198.51.100.11/32 dev tap3f1c2a4e-5b scope link";
        let checks = vec![
            Check::fail("route.host", "198.51.100.11/32 points at tap7a2b3c4d-1e").fix(fix),
            Check::ok("tap.exists", "tap3f1c2a4e-5b exists"),
        ];
        let style = Style {
            color: false,
            table: true,
            verbose: false,
            width: Some(60),
        };
        let mut out = Vec::new();
        render_checks(&mut out, &checks, style).expect("render");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.lines().any(|l| l == format!("  route.host: {fix}")),
            "{text}"
        );
        for l in text.lines().filter(|l| l.contains('│')) {
            assert!(l.chars().count() <= 60, "{l}");
        }
    }
}
