//! `vmpath plumb TARGET`: arguments and rendering; the work is in `crate::plumb`.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::args::{self, GlobalArgs, PortArgs};
use crate::collect::caps;
use crate::error::Result;
use crate::model::{Check, Status};
use crate::output::Style;
use crate::plumb::{self, apply::Inject, records::Trust, PlumbOptions, PlumbReport};

#[derive(Debug, Args)]
pub struct PlumbArgs {
    #[command(flatten)]
    pub walk: PortArgs,
    /// Make the changes (default: print the plan and change nothing)
    #[arg(long)]
    pub apply: bool,
    /// Delete a /32 (/128) of this VM that points at another interface (stale after a move)
    #[arg(long)]
    pub prune: bool,
    /// When the host's records disagree about the port's MAC or addresses: which to trust
    #[arg(long, value_enum, value_name = "RECORDS")]
    pub trust: Option<Trust>,
    /// The port's fixed IPs, when the host's records lost or contradict them (repeat per address)
    #[arg(long = "ip", value_name = "ADDR")]
    pub ips: Vec<IpAddr>,
    /// Owner (uid) of a tap that plumb creates, as Nova gives it to the hypervisor's user
    #[arg(long, value_name = "UID")]
    pub tap_owner: Option<u32>,
    /// Group (gid) of a tap that plumb creates
    #[arg(long, value_name = "GID")]
    pub tap_group: Option<u32>,
    /// Per-host lock file held during --apply
    #[arg(long, value_name = "PATH", env = "VMPATH_PLUMB_LOCK", default_value = plumb::lock::DEFAULT_LOCK)]
    pub lock_file: PathBuf,
    /// Audit log: one JSON line per --apply run
    #[arg(long, value_name = "PATH", env = "VMPATH_PLUMB_AUDIT", default_value = plumb::audit::DEFAULT_AUDIT)]
    pub audit_log: PathBuf,
}

/// Test hooks for the lab tests, read from the environment by debug builds only (a release
/// binary has none): `VMPATH_PLUMB_FAIL_STEP=N|verify` fails that step, `VMPATH_PLUMB_HOLD_MS`
/// holds the lock that long.
#[cfg(debug_assertions)]
fn test_hooks() -> Result<(Option<Inject>, Option<Duration>)> {
    use crate::error::Error;
    let inject = match std::env::var("VMPATH_PLUMB_FAIL_STEP") {
        Ok(v) => Some(Inject::parse(&v).ok_or_else(|| {
            Error::usage(format!(
                "VMPATH_PLUMB_FAIL_STEP='{v}': a step number from 1, or 'verify' (test hook)"
            ))
        })?),
        Err(_) => None,
    };
    let hold = match std::env::var("VMPATH_PLUMB_HOLD_MS") {
        Ok(v) => Some(Duration::from_millis(v.trim().parse().map_err(|_| {
            Error::usage(format!(
                "VMPATH_PLUMB_HOLD_MS='{v}': milliseconds (test hook)"
            ))
        })?)),
        Err(_) => None,
    };
    Ok((inject, hold))
}

/// A release binary has no test hooks.
#[cfg(not(debug_assertions))]
fn test_hooks() -> Result<(Option<Inject>, Option<Duration>)> {
    Ok((None, None))
}

pub fn options(g: &GlobalArgs, a: &PlumbArgs) -> Result<PlumbOptions> {
    let mut walk = args::walk_options(g, &a.walk, None)?;
    walk.overrides.ips = a.ips.clone();
    let (inject, hold) = test_hooks()?;
    Ok(PlumbOptions {
        walk,
        apply: a.apply,
        prune: a.prune,
        trust: a.trust,
        tap_owner: a.tap_owner,
        tap_group: a.tap_group,
        lock_path: a.lock_file.clone(),
        audit_path: a.audit_log.clone(),
        inject,
        hold,
    })
}

/// The capabilities plumb needs, each with what needs it: reading the host like walk, and with
/// `--apply` changing it.
fn needs(apply: bool) -> Vec<(u32, &'static str)> {
    let mut v = vec![(
        caps::CAP_NET_ADMIN,
        if apply {
            "reading the firewall and daemons like walk; changing links, addresses, routes and sysctls"
        } else {
            "reading the firewall and daemons like walk"
        },
    )];
    if apply {
        v.extend([
            (
                caps::CAP_DAC_OVERRIDE,
                "writing dnsmasq's host files, the lock and the audit log",
            ),
            (caps::CAP_CHOWN, "a rewritten host file keeps its owner"),
            (caps::CAP_KILL, "SIGHUP to dnsmasq"),
        ]);
    }
    v
}

pub fn exec(g: &GlobalArgs, a: &PlumbArgs) -> Result<u8> {
    let opts = options(g, a)?;
    // Before anything is read or locked: a run that could not finish is refused up front.
    caps::require(&needs(a.apply))?;
    let report = plumb::run(&opts)?;
    let res = crate::output::emit(g.json, &report, |out| {
        render(out, &report, Style::detect(g.verbose))
    });
    Ok(crate::output::exit_after("plumb", res, report.exit_code))
}

fn name(c: &Check) -> String {
    match &c.subject {
        Some(s) => format!("{} {s}", c.id),
        None => c.id.to_string(),
    }
}

fn label(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Warn => "WARN",
        Status::Unknown => "unknown",
        Status::Fail => "FAIL",
    }
}

/// Plain text for people (the same on a terminal and in a pipe: a plan is read, not scanned).
pub fn render(out: &mut dyn Write, r: &PlumbReport, style: Style) -> std::io::Result<()> {
    let p = &r.port;
    writeln!(
        out,
        "vmpath plumb {} on {}: port {} on {} (matched by {})",
        r.target, r.host, p.port_id, p.tap, p.matched_by
    )?;
    writeln!(out, "desired state from {}:", p.desired_source)?;
    let d = &p.desired;
    match &d.mac {
        Some(m) => writeln!(out, "  mac      {:<26} from {}", m.value, m.source)?,
        None => writeln!(out, "  mac      (none on record)")?,
    }
    for i in &d.ips {
        writeln!(
            out,
            "  address  {:<26} from {}",
            i.value.to_string(),
            i.source
        )?;
    }
    match &d.mtu {
        Some(m) => writeln!(out, "  mtu      {:<26} from {}", m.value, m.source)?,
        None => writeln!(out, "  mtu      (none on record)")?,
    }
    for g in &d.gateways {
        writeln!(
            out,
            "  gateway  {:<26} from {}",
            format!("{}/{}", g.value.addr, g.value.prefix_len),
            g.source
        )?;
    }
    for n in &r.notes {
        writeln!(out, "note: {n}")?;
    }
    if r.actions.is_empty() && r.blocked.is_empty() {
        writeln!(out, "plan: nothing to do")?;
    } else if r.actions.is_empty() {
        writeln!(
            out,
            "plan: no action plumb takes without being told ({} blocked, below)",
            r.blocked.len()
        )?;
    } else {
        writeln!(out, "plan: {} action(s)", r.actions.len())?;
        for (i, a) in r.actions.iter().enumerate() {
            writeln!(out, "  {:>2}. {:<16} {}", i + 1, a.action, a.reason)?;
            writeln!(out, "      {:<16} $ {}", "", a.equivalent)?;
            if style.verbose && !a.undo.is_empty() {
                writeln!(out, "      {:<16} undo: {}", "", a.undo.join(" ; "))?;
            }
        }
    }
    for b in &r.blocked {
        writeln!(out, "blocked  {}: {} — {}", b.check, b.what, b.how)?;
    }
    for n in &r.not_fixed {
        writeln!(out, "not plumb's to fix: {n}")?;
    }
    if !r.applied {
        if r.audit_log.is_none() && !r.actions.is_empty() {
            writeln!(
                out,
                "dry run: nothing changed; run again with --apply to make these changes"
            )?;
        }
        return writeln!(out, "outcome: {}", r.outcome.as_str());
    }
    if let Some(steps) = &r.steps {
        writeln!(out, "applied:")?;
        for s in steps {
            match &s.error {
                None => writeln!(out, "  {:>2}. ok      {}", s.step, s.equivalent)?,
                Some(e) => writeln!(out, "  {:>2}. FAILED  {}: {e}", s.step, s.equivalent)?,
            }
        }
    }
    if let Some(v) = &r.verification {
        if v.is_empty() {
            writeln!(
                out,
                "verified: every check plumb fixed is ok, nothing it watches got worse"
            )?;
        }
        for p in v {
            writeln!(out, "verification failed: {p}")?;
        }
    }
    if let Some(rb) = &r.rollback {
        writeln!(out, "rolled back:")?;
        for s in rb.undone.iter().chain(rb.repairs.iter()) {
            match &s.error {
                None => writeln!(out, "      ok      {}", s.equivalent)?,
                Some(e) => writeln!(out, "      FAILED  {}: {e}", s.equivalent)?,
            }
        }
        if rb.differences.is_empty() {
            writeln!(
                out,
                "  the port is exactly as before (links, addresses, routes, sysctls, host file)"
            )?;
        }
        for d in &rb.differences {
            writeln!(out, "  still differs from before: {d}")?;
        }
    }
    if let (Some(b), Some(a)) = (&r.before, &r.after) {
        writeln!(out, "before -> after:")?;
        for c in a {
            let was = b
                .iter()
                .find(|x| x.id == c.id && x.subject == c.subject)
                .map(|x| x.status);
            if c.status == Status::Ok && was == Some(Status::Ok) && !style.verbose {
                continue;
            }
            writeln!(
                out,
                "  {:<8} -> {:<8} {:<34} {}",
                was.map(label).unwrap_or("-"),
                label(c.status),
                name(c),
                c.summary
            )?;
        }
    }
    writeln!(
        out,
        "outcome: {}{}",
        r.outcome.as_str(),
        r.audit_log
            .as_deref()
            .map(|l| format!(" (audit log {l})"))
            .unwrap_or_default()
    )
}
