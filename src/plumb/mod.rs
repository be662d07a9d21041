//! `vmpath plumb`: repair a drifted port — plan, apply under a per-host lock, verify with the
//! walk's own checks, roll back on failure, and audit.
//!
//! The pieces: [`plan`] (pure planner: identity, desired state, observed facts, flags → ordered
//! steps with inverses), [`records`] (do the host's records agree?), [`apply`] (order, rollback,
//! verification, pre/post comparison; host behind a trait), [`sys`] (the kernel and files),
//! [`lock`] and [`audit`].

pub mod action;
pub mod apply;
pub mod audit;
pub mod lock;
pub mod plan;
pub mod records;
pub mod sys;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::collect::dnsmasq::HostEntry;
use crate::error::{Error, Result};
use crate::model::{exit, Check, Status};
use crate::walk::{self, PortReport, WalkOptions, Walked};
use apply::{HostOps, Inject, StepResult};
use plan::{Blocked, DhcpState, PlanFlags, PlanInput, Step};
use records::Trust;

/// Validated options for one run.
#[derive(Debug, Clone)]
pub struct PlumbOptions {
    pub walk: WalkOptions,
    pub apply: bool,
    pub prune: bool,
    pub trust: Option<Trust>,
    pub tap_owner: Option<u32>,
    pub tap_group: Option<u32>,
    pub lock_path: PathBuf,
    pub audit_path: PathBuf,
    /// Test hooks (`VMPATH_PLUMB_FAIL_STEP`, `VMPATH_PLUMB_HOLD_MS`).
    pub inject: Option<Inject>,
    pub hold: Option<Duration>,
}

/// How a run ended (the `outcome` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The port needs nothing plumb does.
    NothingToDo,
    /// Dry run: the plan is printed, nothing changed.
    Planned,
    /// Applied and verified.
    Repaired,
    /// Applied and verified, but some findings need a flag or a person (`blocked`).
    Partial,
    /// Nothing applied: every finding needs a flag or a person.
    Blocked,
    /// An action or the verification failed; the applied actions were undone and the port is
    /// as before.
    RolledBack,
    /// The rollback could not restore everything (`rollback.differences`).
    RollbackIncomplete,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::NothingToDo | Outcome::Repaired => exit::OK,
            Outcome::Planned | Outcome::Partial | Outcome::Blocked | Outcome::RolledBack => {
                exit::FAIL
            }
            Outcome::RollbackIncomplete => exit::UNKNOWN,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::NothingToDo => "nothing-to-do",
            Outcome::Planned => "planned",
            Outcome::Repaired => "repaired",
            Outcome::Partial => "partial",
            Outcome::Blocked => "blocked",
            Outcome::RolledBack => "rolled-back",
            Outcome::RollbackIncomplete => "rollback-incomplete",
        }
    }
}

/// One planned action in the report.
#[derive(Debug, Clone, Serialize)]
pub struct ActionReport {
    pub action: &'static str,
    pub reason: String,
    pub equivalent: String,
    pub fixes: Vec<&'static str>,
    /// What undoes it (run in reverse plan order on rollback).
    pub undo: Vec<String>,
}

impl From<&Step> for ActionReport {
    fn from(s: &Step) -> Self {
        ActionReport {
            action: s.action.name(),
            reason: s.reason.clone(),
            equivalent: s.action.equivalent(),
            fixes: s.fixes.clone(),
            undo: s.inverse.iter().map(|a| a.equivalent()).collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    /// The inverses run, newest step first.
    pub undone: Vec<StepResult>,
    /// Routes the kernel deleted along with an address, put back from the pre-state.
    pub repairs: Vec<StepResult>,
    /// Remaining differences from the recorded pre-state (empty: exactly as before).
    pub differences: Vec<String>,
}

/// The result of a run; its JSON form is documented in README.md.
#[derive(Debug, Clone, Serialize)]
pub struct PlumbReport {
    pub target: String,
    pub host: String,
    pub port: PortReport,
    /// Decisions taken about disagreeing records (`--trust`).
    pub notes: Vec<String>,
    pub actions: Vec<ActionReport>,
    pub blocked: Vec<Blocked>,
    /// Findings of the walk that no action addresses (not plumb's to change).
    pub not_fixed: Vec<String>,
    pub applied: bool,
    pub outcome: Outcome,
    pub exit_code: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepResult>>,
    /// Problems found by the verification (empty: verified).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackReport>,
    /// The walk's checks before and after (with `--apply`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Vec<Check>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<Check>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_log: Option<String>,
    pub elapsed_ms: u64,
}

/// The audit record (one JSON line).
#[derive(Serialize)]
struct AuditRecord<'a> {
    time: String,
    finished: String,
    #[serde(flatten)]
    who: audit::Who,
    pid: u32,
    host: &'a str,
    target: &'a str,
    tap: &'a str,
    port_id: &'a str,
    plan: &'a [ActionReport],
    blocked: &'a [Blocked],
    outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    steps: Option<&'a Vec<StepResult>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verification: Option<&'a Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rollback: Option<&'a RollbackReport>,
}

/// The port's DHCP records and where a new host file goes.
/// Host files are written only for a trusted dnsmasq, into a directory that only root, the
/// daemon's account or a trusted account may change (`collect::trust`, README "Security").
fn dhcp_state(
    st: &Walked,
    dir_override: Option<&Path>,
    policy: &crate::collect::trust::Policy,
) -> Result<DhcpState> {
    let id = &st.port.id;
    let dnsmasq = &st.facts.dnsmasq;
    let mut running: Vec<&crate::collect::dnsmasq::Dnsmasq> =
        dnsmasq.iter().filter(|d| d.pid.is_some()).collect();
    running.sort_by_key(|d| d.untrusted.is_some());
    let serving = running
        .iter()
        .copied()
        .find(|d| d.serves_interface(&id.tap))
        .or_else(|| running.first().copied());
    let mut refused = serving
        .and_then(|d| d.untrusted.as_ref().map(|w| (d, w)))
        .map(|(d, why)| {
            format!(
                "{} is not trusted ({why}): vmpath neither writes a host file for it nor signals it",
                d.origin
            )
        });
    let serving = serving.filter(|d| d.untrusted.is_none());
    let mac = st.port.desired.mac.as_ref().map(|m| m.value.as_str());
    let entries: Vec<HostEntry> = dnsmasq
        .iter()
        .flat_map(|d| d.hosts.iter())
        .filter(|h| id.owns_record(mac, h))
        .cloned()
        .collect();
    let hostsdir = dir_override
        .map(Path::to_path_buf)
        .or_else(|| serving.and_then(|d| d.hostsdirs.first().cloned()));
    if let Some(dir) = &hostsdir {
        let uid = serving.and_then(|d| d.uid).unwrap_or(0);
        if let Err(why) = crate::collect::trust::writable_dir(dir, uid, policy) {
            refused.get_or_insert(why);
        }
    }
    // The per-port file: the entry's own file when it is named by the port UUID, else the file a
    // new entry would go to.
    let per_port = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| id.port_id == n || (n.len() == 36 && id.owns(n)))
    };
    let file = match entries.first() {
        Some(e) if per_port(Path::new(&e.source)) => sys::read_file_spec(Path::new(&e.source))?,
        Some(_) => None,
        None => match &hostsdir {
            Some(d) if crate::collect::dnsmasq::looks_like_uuid(&id.port_id) => {
                sys::read_file_spec(&d.join(&id.port_id))?
            }
            _ => None,
        },
    };
    // A new file gets the owner and mode of the other host files (else the directory's, 0644).
    let mut new_owner = (0, 0, 0o644);
    if let Some(d) = &hostsdir {
        use std::os::unix::fs::MetadataExt;
        if let Ok(md) = std::fs::metadata(d) {
            new_owner = (md.uid(), md.gid(), 0o644);
        }
        if let Ok(rd) = std::fs::read_dir(d) {
            let sibling = rd
                .filter_map(Result::ok)
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .filter_map(|e| e.metadata().ok())
                .find(|m| m.is_file());
            if let Some(m) = sibling {
                new_owner = (m.uid(), m.gid(), m.mode() & 0o7777);
            }
        }
    }
    Ok(DhcpState {
        entries,
        file,
        hostsdir,
        new_owner,
        pid: serving.and_then(|d| d.pid),
        refused,
    })
}

fn check_name(c: &Check) -> String {
    match &c.subject {
        Some(s) => format!("{} {s}", c.id),
        None => c.id.to_string(),
    }
}

/// Findings that no step fixes and no blocked item explains.
fn not_fixed(before: &[Check], steps: &[Step], blocked: &[Blocked]) -> Vec<String> {
    before
        .iter()
        .filter(|c| c.status != Status::Ok)
        .filter(|c| !steps.iter().any(|s| s.fixes.contains(&c.id)))
        // route.lookup follows route.host
        .filter(|c| {
            !blocked
                .iter()
                .any(|b| b.check == c.id || (b.check == "route.host" && c.id == "route.lookup"))
        })
        .map(|c| format!("{} ({}): {}", check_name(c), c.status, c.summary))
        .collect()
}

/// How long plumb waits for a link it brought up to report its operational state (the kernel
/// publishes it up to a second after the change).
const LINK_SETTLE: Duration = Duration::from_millis(2000);

/// How long verification keeps reading a check that is still wrong before plumb rolls back, and
/// the pause between readings.
const VERIFY_GRACE: Duration = Duration::from_millis(1500);
const VERIFY_RETRY: Duration = Duration::from_millis(250);

fn ms(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Plan (and with `apply`, carry out) the repair of one port.
pub fn run(opts: &PlumbOptions) -> Result<PlumbReport> {
    let started = Instant::now();
    let start_time = audit::rfc3339(SystemTime::now());
    // Before anything is read for a change: the audit log (so that an applied run is always
    // recorded) and the lock (so that the pre-state is ours).
    let mut guards = None;
    if opts.apply {
        let log = audit::AuditLog::open(&opts.audit_path)?;
        let lk = lock::acquire(&opts.lock_path, &start_time)?;
        if let Some(h) = opts.hold {
            std::thread::sleep(h);
        }
        guards = Some((log, lk));
    }
    let mut wopts = opts.walk.clone();
    let mut st = walk::run(&wopts)?;
    let all_entries: Vec<HostEntry> = st
        .facts
        .dnsmasq
        .iter()
        .flat_map(|d| d.hosts.iter().cloned())
        .collect();
    let mine: Vec<HostEntry> = all_entries
        .iter()
        .filter(|h| {
            st.port
                .id
                .owns_record(st.port.desired.mac.as_ref().map(|m| m.value.as_str()), h)
        })
        .cloned()
        .collect();
    let resolution = records::resolve(
        &records::Records {
            id: &st.port.id,
            entries: &mine,
            all_entries: &all_entries,
            net: &st.facts.net,
            flag_mac: wopts.overrides.mac.is_some(),
            flag_ips: !wopts.overrides.ips.is_empty(),
        },
        opts.trust,
    )
    .map_err(|e| e.context("refusing to plumb"))?;
    if resolution.mac.is_some() || !resolution.ips.is_empty() {
        // Judge the port against what the user trusts: the walk takes the decision as flags.
        if let Some(m) = &resolution.mac {
            wopts.overrides.mac = Some(m.clone());
        }
        if !resolution.ips.is_empty() {
            wopts.overrides.ips = resolution.ips.clone();
        }
        st = walk::run(&wopts)?;
    }
    let before = &st.report;
    let id = st.port.id.clone();
    let want = st.port.desired.clone();
    let mut host = sys::System::open(opts.walk.timeout).map_err(|e| {
        e.map(|m| format!("{m}: run vmpath as root in the hypervisor's network namespace"))
    })?;
    let unknown = |e: Error| e.context("reading the host");
    let routes = host.routes().map_err(unknown)?;
    let tap = host.tap_state(&st.facts.net, &id.tap).map_err(unknown)?;
    let sysctl = crate::collect::sysctl::TapSysctls::of(&id.tap);
    let sysctl_default = crate::collect::sysctl::TapSysctls::defaults();
    let dhcp = dhcp_state(
        &st,
        opts.walk.sources.dhcp_hostsdir.as_deref(),
        &opts.walk.sources.trust,
    )
    .map_err(unknown)?;
    let flags = PlanFlags {
        prune: opts.prune,
        tap_owner: opts.tap_owner,
        tap_group: opts.tap_group,
    };
    let the_plan = plan::plan(&PlanInput {
        id: &id,
        want: &want,
        tap: tap.as_ref(),
        routes: &routes,
        sysctl: &sysctl,
        sysctl_default: &sysctl_default,
        dhcp: &dhcp,
        flags: &flags,
    });
    plan::guard(&id, &want, &the_plan)?;
    let actions: Vec<ActionReport> = the_plan.steps.iter().map(ActionReport::from).collect();
    let mut report = PlumbReport {
        target: opts.walk.target.to_string(),
        host: before.host.clone(),
        port: before.port.clone(),
        notes: resolution.notes.clone(),
        actions,
        blocked: the_plan.blocked.clone(),
        not_fixed: not_fixed(&before.checks, &the_plan.steps, &the_plan.blocked),
        applied: false,
        outcome: Outcome::NothingToDo,
        exit_code: 0,
        steps: None,
        verification: None,
        rollback: None,
        before: None,
        after: None,
        audit_log: None,
        elapsed_ms: 0,
    };
    let nothing = the_plan.steps.is_empty();
    let Some((mut log, _lock)) = guards else {
        report.outcome = if nothing && the_plan.blocked.is_empty() {
            Outcome::NothingToDo
        } else {
            Outcome::Planned
        };
        report.exit_code = report.outcome.exit_code();
        report.elapsed_ms = ms(started);
        return Ok(report);
    };
    report.before = Some(before.checks.clone());
    report.audit_log = Some(log.path.display().to_string());
    if nothing {
        report.outcome = if the_plan.blocked.is_empty() {
            Outcome::NothingToDo
        } else {
            Outcome::Blocked
        };
    } else {
        apply_and_verify(
            opts,
            &mut host,
            &wopts,
            &st,
            &the_plan.steps,
            &dhcp,
            &mut report,
        )?;
        if report.outcome == Outcome::Repaired && !the_plan.blocked.is_empty() {
            report.outcome = Outcome::Partial;
        }
    }
    report.exit_code = report.outcome.exit_code();
    let rec = AuditRecord {
        time: start_time,
        finished: audit::rfc3339(SystemTime::now()),
        who: audit::Who::current(),
        pid: std::process::id(),
        host: &report.host,
        target: &report.target,
        tap: &id.tap,
        port_id: &id.port_id,
        plan: &report.actions,
        blocked: &report.blocked,
        outcome: report.outcome,
        steps: report.steps.as_ref(),
        verification: report.verification.as_ref(),
        rollback: report.rollback.as_ref(),
    };
    if let Err(e) = audit::line(&rec).and_then(|l| log.append(&l)) {
        report
            .notes
            .push(format!("{e} — this run is not in the audit log"));
        report.exit_code = exit::UNKNOWN;
    }
    report.elapsed_ms = ms(started);
    Ok(report)
}

/// Apply the steps under the lock, verify with the walk's own checks, roll back on failure.
/// `st` is the walk the plan was made from.
fn apply_and_verify(
    opts: &PlumbOptions,
    host: &mut sys::System,
    wopts: &WalkOptions,
    st: &Walked,
    steps: &[Step],
    dhcp: &DhcpState,
    report: &mut PlumbReport,
) -> Result<()> {
    let before = &st.report;
    let id = &st.port.id;
    let ips = st.port.desired.ip_list();
    let host_file: Option<PathBuf> = steps
        .iter()
        .find_map(|s| match &s.action {
            action::Action::WriteFile { file } => Some(file.path.clone()),
            _ => None,
        })
        .or_else(|| dhcp.file.as_ref().map(|f| f.path.clone()));
    let snap = |h: &sys::System| h.snapshot(&id.tap, &ips, host_file.as_deref());
    let pre = snap(host).map_err(|e| e.context("cannot record the pre-state, nothing changed"))?;
    report.applied = true;
    let results = apply::apply_steps(host, steps, opts.inject);
    let failed = results.iter().any(|r| r.error.is_some());
    report.steps = Some(results.clone());
    if !failed {
        let raised = steps.iter().any(|s| {
            matches!(
                s.action,
                action::Action::SetUp { .. } | action::Action::CreateTap { .. }
            )
        });
        if raised {
            // Verify what the kernel settled on, not its state in between.
            if let Err(e) = host.settle_link(&id.tap, LINK_SETTLE) {
                report
                    .notes
                    .push(format!("could not wait for {} to settle: {e}", id.tap));
            }
        }
        let created = steps
            .iter()
            .any(|s| matches!(s.action, action::Action::CreateTap { .. }));
        // The kernel finishes some changes after it acknowledged them (operational state, IPv6
        // duplicate address detection), and daemons react to them: a check that is still wrong
        // is read again, for at most VERIFY_GRACE, before plumb rolls back.
        let verify_started = Instant::now();
        let mut attempts = 0u32;
        let mut problems = loop {
            attempts += 1;
            let p = match walk::run(wopts) {
                Ok(after) => {
                    let fresh_up =
                        created && after.facts.net.link(&id.tap).is_some_and(|l| l.admin_up);
                    let p = apply::verify(&before.checks, &after.report.checks, steps, fresh_up);
                    report.after = Some(after.report.checks);
                    p
                }
                Err(e) => vec![format!("the verification walk failed: {e}")],
            };
            if p.is_empty() || verify_started.elapsed() >= VERIFY_GRACE {
                break p;
            }
            std::thread::sleep(VERIFY_RETRY);
        };
        if attempts > 1 {
            report.notes.push(format!(
                "verification read the port {attempts} times over {} ms before it {}",
                ms(verify_started),
                if problems.is_empty() {
                    "passed"
                } else {
                    "gave up"
                }
            ));
        }
        if opts.inject == Some(Inject::Verify) {
            problems.push(
                "injected verification failure (VMPATH_PLUMB_FAIL_STEP=verify, a test hook)".into(),
            );
        }
        let ok = problems.is_empty();
        report.verification = Some(problems);
        if ok {
            report.outcome = Outcome::Repaired;
            return Ok(());
        }
    }
    // Roll back: the inverses newest first, then the routes the kernel took with an address.
    let undone = apply::rollback(host, steps, &results);
    let mut repairs = Vec::new();
    let mut differences = Vec::new();
    match snap(host) {
        Ok(now) => {
            for a in apply::route_repairs(&pre, &now) {
                let r = host.run(&a);
                repairs.push(StepResult {
                    step: 0,
                    action: a.name(),
                    equivalent: a.equivalent(),
                    error: r.err().map(|e| e.to_string()),
                });
            }
            match snap(host) {
                Ok(post) => differences = apply::diff(&pre, &post),
                Err(e) => {
                    differences.push(format!("cannot read the state after the rollback: {e}"))
                }
            }
        }
        Err(e) => differences.push(format!("cannot read the state after the rollback: {e}")),
    }
    let clean = differences.is_empty()
        && undone
            .iter()
            .chain(repairs.iter())
            .all(|r| r.error.is_none());
    report.outcome = if clean {
        Outcome::RolledBack
    } else {
        Outcome::RollbackIncomplete
    };
    report.rollback = Some(RollbackReport {
        undone,
        repairs,
        differences,
    });
    if let Ok(after) = walk::run(wopts) {
        report.after = Some(after.report.checks);
    }
    Ok(())
}
