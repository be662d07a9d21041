//! Applying a plan and rolling it back: the order, what to do on failure, how verification is
//! judged and how the port's state after a rollback is compared with the recorded pre-state. The
//! host is behind [`HostOps`], so all of this is tested without root.

use std::net::IpAddr;

use serde::Serialize;

use super::action::{Action, AddrSpec, FileSpec, RouteSpec, PROTO_KERNEL};
use super::plan::Step;
use crate::error::Error;
use crate::model::{Check, Status};

/// Carries out one action on the host.
pub trait HostOps {
    fn run(&mut self, action: &Action) -> Result<(), Error>;
}

/// Test-only failure injection: fail step N (1-based) before running it, or fail verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inject {
    Step(usize),
    Verify,
}

impl Inject {
    /// `VMPATH_PLUMB_FAIL_STEP=N|verify` (test only; documented in README.md).
    pub fn parse(v: &str) -> Option<Inject> {
        match v.trim() {
            "verify" => Some(Inject::Verify),
            n => n.parse().ok().filter(|n| *n > 0).map(Inject::Step),
        }
    }
}

/// What happened to one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepResult {
    /// 1-based index in the plan.
    pub step: usize,
    pub action: &'static str,
    pub equivalent: String,
    /// `null` when it worked, else the error.
    pub error: Option<String>,
}

/// Run the steps in order; stop at the first failure. Returns the results (the last one is the
/// failure, if any).
pub fn apply_steps(
    ops: &mut dyn HostOps,
    steps: &[Step],
    inject: Option<Inject>,
) -> Vec<StepResult> {
    let mut out = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let n = i + 1;
        let res = if inject == Some(Inject::Step(n)) {
            Err(Error::change(format!(
                "injected failure at step {n} (VMPATH_PLUMB_FAIL_STEP={n}, a test hook)"
            )))
        } else {
            ops.run(&s.action)
        };
        let failed = res.is_err();
        out.push(StepResult {
            step: n,
            action: s.action.name(),
            equivalent: s.action.equivalent(),
            error: res.err().map(|e| e.to_string()),
        });
        if failed {
            break;
        }
    }
    out
}

/// Undo the applied steps (those whose result is ok), newest first; every inverse is tried even
/// when an earlier one fails.
pub fn rollback(ops: &mut dyn HostOps, steps: &[Step], results: &[StepResult]) -> Vec<StepResult> {
    let mut out = Vec::new();
    for r in results.iter().rev().filter(|r| r.error.is_none()) {
        let Some(s) = steps.get(r.step - 1) else {
            continue;
        };
        for inv in &s.inverse {
            let res = ops.run(inv);
            out.push(StepResult {
                step: r.step,
                action: inv.name(),
                equivalent: inv.equivalent(),
                error: res.err().map(|e| e.to_string()),
            });
        }
    }
    out
}

/// The walk checks plumb is responsible for: what it fixes and must not break.
pub const SCOPE: &[&str] = &[
    "tap.exists",
    "tap.state",
    "tap.mtu",
    "tap.mac",
    "tap.gateway",
    "tap.proxy_arp",
    "tap.proxy_delay",
    "tap.proxy_ndp",
    "route.connected",
    "route.host",
    "route.lookup",
    "dhcp.server",
    "dhcp.host",
];

fn key(c: &Check) -> (String, Option<String>) {
    (c.id.to_string(), c.subject.clone())
}

/// Judge the checks after applying: every check a step fixes is ok, and nothing in plumb's scope
/// that was ok before got worse. `fresh_tap_up`: plumb created the tap and it is administratively
/// up — it has no carrier until the hypervisor process opens it, which `tap.state` reports and
/// plumb cannot change. Returns the problems (empty = verified).
pub fn verify(
    before: &[Check],
    after: &[Check],
    steps: &[Step],
    fresh_tap_up: bool,
) -> Vec<String> {
    let fixes: Vec<&str> = steps.iter().flat_map(|s| s.fixes.iter().copied()).collect();
    let mut problems = Vec::new();
    for a in after.iter().filter(|c| SCOPE.contains(&c.id)) {
        if a.status == Status::Ok {
            continue;
        }
        if a.id == "tap.state" && fresh_tap_up {
            continue;
        }
        let name = match &a.subject {
            Some(s) => format!("{} {s}", a.id),
            None => a.id.to_string(),
        };
        let was = before
            .iter()
            .find(|b| key(b) == key(a))
            .map(|b| b.status)
            .unwrap_or(Status::Ok);
        if fixes.contains(&a.id) {
            problems.push(format!("{name} still {}: {}", a.status, a.summary));
        } else if was < a.status {
            problems.push(format!("{name} was {was}, now {}: {}", a.status, a.summary));
        }
    }
    problems
}

/// The port's state as far as plumb changes it: compared before and after a rollback.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PortSnapshot {
    /// `None` when the tap does not exist.
    pub link: Option<LinkSnap>,
    pub addrs: Vec<AddrSpec>,
    /// Routes of the main table through the tap or for the VM's addresses (not `proto kernel`:
    /// those follow the addresses).
    pub routes: Vec<RouteSpec>,
    pub sysctls: Vec<(String, Option<String>)>,
    pub host_file: Option<FileSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkSnap {
    pub admin_up: bool,
    pub mtu: u32,
    pub mac: Option<String>,
    pub kind: Option<String>,
}

/// Routes that belong in a snapshot: through `tap`, or for one of `ips`.
pub fn scoped_routes(all: &[RouteSpec], tap: &str, ips: &[IpAddr]) -> Vec<RouteSpec> {
    let mut v: Vec<RouteSpec> = all
        .iter()
        .filter(|r| r.protocol != PROTO_KERNEL)
        .filter(|r| r.dev.as_deref() == Some(tap) || ips.contains(&r.dst))
        .cloned()
        .collect();
    v.sort();
    v
}

/// Differences between two snapshots, one line each (empty = equal).
pub fn diff(before: &PortSnapshot, after: &PortSnapshot) -> Vec<String> {
    let mut d = Vec::new();
    if before.link != after.link {
        d.push(format!("link: was {:?}, now {:?}", before.link, after.link));
    }
    for a in &before.addrs {
        if !after.addrs.contains(a) {
            d.push(format!(
                "address {}/{} (flags {:#x}) missing",
                a.addr, a.prefix_len, a.flags
            ));
        }
    }
    for a in &after.addrs {
        if !before.addrs.contains(a) {
            d.push(format!(
                "address {}/{} (flags {:#x}) added",
                a.addr, a.prefix_len, a.flags
            ));
        }
    }
    for r in &before.routes {
        if !after.routes.contains(r) {
            d.push(format!("route {} missing", r.describe()));
        }
    }
    for r in &after.routes {
        if !before.routes.contains(r) {
            d.push(format!("route {} added", r.describe()));
        }
    }
    for (k, v) in &before.sysctls {
        let now = after
            .sysctls
            .iter()
            .find(|(x, _)| x == k)
            .and_then(|(_, v)| v.clone());
        if *v != now {
            d.push(format!("sysctl {k}: was {v:?}, now {now:?}"));
        }
    }
    if before.host_file != after.host_file {
        d.push(format!(
            "host file: was {}, now {}",
            describe_file(&before.host_file),
            describe_file(&after.host_file)
        ));
    }
    d
}

fn describe_file(f: &Option<FileSpec>) -> String {
    match f {
        None => "absent".into(),
        Some(f) => format!(
            "{:?} owner {}:{} mode {:o}",
            f.content.trim_end(),
            f.uid,
            f.gid,
            f.mode
        ),
    }
}

/// After the inverses ran, the kernel may still differ from the pre-state in routes: deleting a
/// tap's last IPv4 address (undoing an add) deletes every route through it. The actions that put
/// the recorded routes back (and remove routes the pre-state did not have).
pub fn route_repairs(before: &PortSnapshot, now: &PortSnapshot) -> Vec<Action> {
    let mut out = Vec::new();
    for r in &now.routes {
        if !before.routes.contains(r) {
            out.push(Action::DelRoute { route: r.clone() });
        }
    }
    for r in &before.routes {
        if !now.routes.contains(r) {
            out.push(Action::AddRoute { route: r.clone() });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plumb::action::IFA_F_NOPREFIXROUTE;
    use crate::plumb::plan::host_route;

    /// Records every action; fails the ones whose name is listed.
    #[derive(Default)]
    struct Recorder {
        done: Vec<String>,
        fail: Vec<&'static str>,
    }

    impl HostOps for Recorder {
        fn run(&mut self, a: &Action) -> Result<(), crate::error::Error> {
            if self.fail.contains(&a.name()) {
                return Err(crate::error::Error::change(format!("{} failed", a.name())));
            }
            self.done.push(a.equivalent());
            Ok(())
        }
    }

    fn steps() -> Vec<Step> {
        let tap = "tapA".to_string();
        let gw = AddrSpec {
            addr: "198.51.100.1".parse().expect("ip"),
            prefix_len: 24,
            flags: IFA_F_NOPREFIXROUTE,
            broadcast: None,
        };
        let r = host_route("198.51.100.11".parse().expect("ip"), &tap);
        vec![
            Step {
                action: Action::SetMtu {
                    tap: tap.clone(),
                    mtu: 1450,
                },
                reason: "mtu".into(),
                fixes: vec!["tap.mtu"],
                inverse: vec![Action::SetMtu {
                    tap: tap.clone(),
                    mtu: 1500,
                }],
            },
            Step {
                action: Action::AddAddr {
                    tap: tap.clone(),
                    addr: gw.clone(),
                },
                reason: "gw".into(),
                fixes: vec!["tap.gateway"],
                inverse: vec![Action::DelAddr {
                    tap: tap.clone(),
                    addr: gw,
                }],
            },
            Step {
                action: Action::AddRoute { route: r.clone() },
                reason: "route".into(),
                fixes: vec!["route.host"],
                inverse: vec![Action::DelRoute { route: r }],
            },
        ]
    }

    #[test]
    fn failure_at_a_step_rolls_back_the_applied_ones_newest_first() {
        let s = steps();
        let mut ops = Recorder::default();
        let res = apply_steps(&mut ops, &s, Some(Inject::Step(3)));
        assert_eq!(res.len(), 3);
        assert!(res[2]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("injected")));
        let rb = rollback(&mut ops, &s, &res);
        assert_eq!(
            rb.iter().map(|r| r.equivalent.as_str()).collect::<Vec<_>>(),
            vec![
                "ip addr del 198.51.100.1/24 dev tapA",
                "ip link set tapA mtu 1500"
            ]
        );
        assert_eq!(ops.done.len(), 4, "{:?}", ops.done);
        // a real failure stops the plan at that step, nothing after it runs
        let mut ops = Recorder {
            fail: vec!["add-address"],
            ..Default::default()
        };
        let res = apply_steps(&mut ops, &s, None);
        assert_eq!(res.len(), 2);
        assert_eq!(ops.done, vec!["ip link set tapA mtu 1450"]);
        let rb = rollback(&mut ops, &s, &res);
        assert_eq!(rb.len(), 1);
        // a failing inverse does not stop the others
        let mut ops = Recorder {
            fail: vec!["delete-address"],
            ..Default::default()
        };
        let res = apply_steps(&mut ops, &s, Some(Inject::Step(3)));
        let rb = rollback(&mut ops, &s, &res);
        assert_eq!(rb.len(), 2);
        assert!(rb[0].error.is_some() && rb[1].error.is_none());
    }

    #[test]
    fn inject_parses_only_what_it_documents() {
        assert_eq!(Inject::parse("3"), Some(Inject::Step(3)));
        assert_eq!(Inject::parse("verify"), Some(Inject::Verify));
        assert_eq!(Inject::parse("0"), None);
        assert_eq!(Inject::parse("x"), None);
    }

    #[test]
    fn verification_wants_the_fixed_checks_ok_and_nothing_broken() {
        let s = steps();
        let before = vec![
            Check::fail("tap.mtu", "MTU 1500"),
            Check::ok("dhcp.server", "dnsmasq"),
            Check::fail("bgp.export", "not exported"),
            Check::warn("route.foreign", "other"),
        ];
        let good = vec![
            Check::ok("tap.mtu", "MTU 1450"),
            Check::ok("dhcp.server", "dnsmasq"),
            Check::fail("bgp.export", "not exported"),
        ];
        assert!(verify(&before, &good, &s, false).is_empty());
        let still = vec![Check::fail("tap.mtu", "MTU 1500")];
        assert_eq!(verify(&before, &still, &s, false).len(), 1);
        let broke = vec![
            Check::ok("tap.mtu", ""),
            Check::fail("dhcp.server", "dnsmasq pid 9 is gone"),
        ];
        let p = verify(&before, &broke, &s, false);
        assert!(p[0].contains("was ok, now fail"), "{p:?}");
        let nocarrier = vec![Check::fail("tap.state", "no carrier")];
        assert!(verify(&[], &nocarrier, &s, true).is_empty());
        assert_eq!(verify(&[], &nocarrier, &s, false).len(), 1);
    }

    #[test]
    fn snapshots_diff_and_route_repairs() {
        let r = host_route("198.51.100.11".parse().expect("ip"), "tapA");
        let before = PortSnapshot {
            routes: vec![r.clone()],
            sysctls: vec![("ipv4/conf/tapA/proxy_arp".into(), Some("0".into()))],
            ..Default::default()
        };
        assert!(diff(&before, &before.clone()).is_empty());
        let mut now = before.clone();
        now.routes.clear();
        now.sysctls[0].1 = Some("1".into());
        let d = diff(&before, &now);
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(
            route_repairs(&before, &now),
            vec![Action::AddRoute { route: r }]
        );
        let all = vec![
            host_route("198.51.100.11".parse().expect("ip"), "tapB"),
            host_route("198.51.100.12".parse().expect("ip"), "tapB"),
        ];
        let s = scoped_routes(&all, "tapA", &["198.51.100.11".parse().expect("ip")]);
        assert_eq!(s.len(), 1);
    }
}
