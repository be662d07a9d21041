//! Integration tests of `vmpath plumb` against the built-in lab (lab/vmlab): real netlink, real
//! dnsmasq, BIRD and FRR. For every drift the lab can plant: plumb --apply repairs it, walk is
//! then all ok, traffic flows again, and a second apply is a no-op. Rollback at every step
//! restores the port exactly; a dry run changes nothing; two applies never interleave.
//!
//! One lab per test binary (its own directory), shared by the tests under a lock; the same
//! VMPATH_LAB_DIR / CI rules as tests/lab.rs.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{vmlab, Lab, VM1, VM1_PORT, VM1_TAP, VM2, VM3};

fn lab() -> Option<(&'static Lab, std::sync::MutexGuard<'static, ()>)> {
    common::lab("plumb-lab")
}

const VM1_V6: &str = "2001:db8:100::11";
const EXT: &str = "203.0.113.10";
const EXT6: &str = "2001:db8:203::10";

impl Lab {
    fn exec_cmd(&self, ns: &str, cmd: &[&str]) -> Command {
        let mut c = Command::new(vmlab());
        c.arg("exec").arg("--dir").arg(&self.dir);
        if !ns.is_empty() {
            c.arg("--ns").arg(ns);
        }
        c.args(cmd)
            .env("VMPATH_PLUMB_LOCK", self.dir.join("plumb.lock"))
            .env("VMPATH_PLUMB_AUDIT", self.dir.join("plumb-audit.log"))
            .env_remove("VMPATH_PLUMB_FAIL_STEP")
            .env_remove("VMPATH_PLUMB_HOLD_MS");
        c
    }

    fn exec(&self, ns: &str, cmd: &[&str]) -> Output {
        self.exec_cmd(ns, cmd).output().expect("run lab/vmlab exec")
    }

    fn plumb_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = vec![env!("CARGO_BIN_EXE_vmpath"), "plumb"];
        cmd.extend_from_slice(args);
        cmd.push("--json");
        self.exec_cmd("hv1", &cmd)
    }

    /// `vmpath plumb ARGS --json` on hv1: exit code and document.
    fn plumb(&self, args: &[&str]) -> (i32, Value) {
        json_of(&self.plumb_cmd(args).output().expect("plumb"), args)
    }

    fn plumb_failing_at(&self, step: &str, args: &[&str]) -> (i32, Value) {
        let out = self
            .plumb_cmd(args)
            .env("VMPATH_PLUMB_FAIL_STEP", step)
            .output()
            .expect("plumb");
        json_of(&out, args)
    }

    fn walk(&self, target: &str) -> (i32, Value) {
        let bin = env!("CARGO_BIN_EXE_vmpath");
        json_of(
            &self.exec("hv1", &[bin, "walk", target, "--json"]),
            &[target],
        )
    }

    /// Poll walk until every check is ok (BGP follows a route within seconds).
    fn walk_all_ok(&self, target: &str, what: &str) {
        let t = Instant::now();
        loop {
            let (code, doc) = self.walk(target);
            if code == 0 {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(25),
                "{what}: walk not all ok after 25 s:\n{}",
                not_ok(&doc).join("\n")
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn ok(&self, ns: &str, cmd: &[&str], what: &str) {
        let out = self.exec(ns, cmd);
        assert!(
            out.status.success(),
            "{what}: {cmd:?} in {ns} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ping(&self, from: &str, to: &str, what: &str) {
        // A few tries: neighbour resolution and BGP may need a moment after a repair.
        let t = Instant::now();
        loop {
            let out = self.exec(from, &["ping", "-c1", "-W1", to]);
            if out.status.success() {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "{what}: {from} cannot ping {to}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }

    /// Everything plumb may change on hv1, as text: links, addresses, routes, the tap's
    /// sysctls and the DHCP host files (content, owner, mode).
    fn snapshot(&self) -> String {
        let hosts = self.dir.join("hv1/dhcp-hosts");
        let script = format!(
            "ip -d link show; ip addr show; ip route show table all; ip -6 route show table all; \
             for f in /proc/sys/net/ipv4/conf/{t}/proxy_arp /proc/sys/net/ipv4/neigh/{t}/proxy_delay \
             /proc/sys/net/ipv6/conf/{t}/proxy_ndp; do echo \"$f $(cat $f 2>&1)\"; done; \
             for f in {h}/*; do stat -c '%n %U:%G %a' \"$f\"; cat \"$f\"; done",
            t = VM1_TAP,
            h = hosts.display()
        );
        let out = self.exec("hv1", &["sh", "-c", &script]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            // lifetimes and timers move by themselves
            .filter(|l| !l.contains("valid_lft") && !l.contains("expires"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Plant `faults`, run `f`, then clear them all (also when `f` panics).
    fn with_faults<F: FnOnce()>(&self, faults: &[&str], f: F) {
        for x in faults {
            self.vmlab(&["fault", x]);
        }
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        self.vmlab(&["clear", "all"]);
        if let Err(p) = res {
            std::panic::resume_unwind(p);
        }
    }

    fn audit_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("plumb-audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }
}

fn json_of(out: &Output, what: &[&str]) -> (i32, Value) {
    let code = out.status.code().unwrap_or(-1);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what:?}: bad JSON ({e}), exit {code}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, doc)
}

fn not_ok(doc: &Value) -> Vec<String> {
    doc["checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c["status"] != "ok")
                .map(|c| {
                    format!(
                        "{} {} {}: {}",
                        c["status"], c["id"], c["subject"], c["summary"]
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A failed assertion's message: what went wrong first (CI keeps only the head of long output),
/// then the whole document.
fn why(doc: &Value) -> String {
    let brief = serde_json::json!({
        "outcome": doc["outcome"],
        "exit_code": doc["exit_code"],
        "notes": doc["notes"],
        "steps": doc["steps"],
        "verification": doc["verification"],
        "rollback": doc["rollback"],
        "blocked": doc["blocked"],
        "not_fixed": doc["not_fixed"],
    });
    format!("{brief:#}\nfull report:\n{doc:#}")
}

fn actions(doc: &Value) -> Vec<String> {
    doc["actions"]
        .as_array()
        .expect("actions array")
        .iter()
        .map(|a| a["action"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn assert_diff_free(before: &str, after: &str, what: &str) {
    if before != after {
        let b: std::collections::BTreeSet<&str> = before.lines().collect();
        let a: std::collections::BTreeSet<&str> = after.lines().collect();
        panic!(
            "{what}: host changed\n- {:?}\n+ {:?}",
            b.difference(&a).collect::<Vec<_>>(),
            a.difference(&b).collect::<Vec<_>>()
        );
    }
}

/// A drift, how to repair it and how to see that traffic flows again.
struct Drift {
    fault: &'static str,
    target: &'static str,
    args: &'static [&'static str],
    expect: &'static [&'static str],
    traffic: fn(&Lab),
}

fn vm1_dhcp_offer(lab: &Lab) {
    lab.ok(
        "vm1",
        &["lab/dhcp-probe", "--timeout", "2"],
        "DHCP offer for vm1",
    )
}

fn vm1_out_and_in(lab: &Lab) {
    lab.ping("vm1", EXT, "vm1 -> ext1");
    lab.ping("ext1", VM1, "ext1 -> vm1");
}

const DRIFTS: &[Drift] = &[
    Drift {
        fault: "tap-down",
        target: VM1,
        // The kernel flushes the tap's IPv6 addresses and /128 with the link: no host record
        // names them any more, so the operator gives them.
        args: &[
            "--ip",
            VM1,
            "--ip",
            VM1_V6,
            "--gateway",
            "2001:db8:100::1/64",
        ],
        expect: &["set-up", "add-address", "add-route", "add-route"],
        traffic: |lab| {
            vm1_out_and_in(lab);
            lab.ping("vm1", EXT6, "vm1 -> ext1 over IPv6");
        },
    },
    Drift {
        fault: "mtu",
        target: VM1,
        args: &[],
        expect: &["set-mtu"],
        traffic: |lab| {
            // a full-size frame with DF crosses the tap
            lab.ok(
                "vm1",
                &["ping", "-c1", "-W2", "-M", "do", "-s", "1422", EXT],
                "1450-byte ping",
            );
        },
    },
    Drift {
        fault: "gw-missing",
        target: VM1,
        args: &[],
        expect: &["add-address"],
        traffic: vm1_out_and_in,
    },
    Drift {
        fault: "gw-prefixroute",
        target: VM1,
        args: &[],
        expect: &["delete-address", "add-address", "add-route"],
        traffic: |lab| {
            vm1_out_and_in(lab);
            // the connected /24 no longer steals the subnet (vm3's address) on hv1
            let out = lab.exec("hv1", &["ip", "route", "get", VM3]);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(!text.contains(VM1_TAP), "{text}");
        },
    },
    Drift {
        fault: "proxy-arp-off",
        target: VM1,
        args: &[],
        expect: &["sysctl"],
        traffic: |lab| lab.ping("vm1", VM2, "vm1 -> vm2"),
    },
    Drift {
        fault: "route-missing",
        target: VM1,
        args: &[],
        expect: &["add-route"],
        traffic: vm1_out_and_in,
    },
    Drift {
        fault: "route-wrong-tap",
        target: VM1,
        args: &["--prune"],
        expect: &["delete-route", "add-route"],
        traffic: vm1_out_and_in,
    },
    Drift {
        fault: "dhcp-missing",
        // no record is left to name the full port UUID: the operator names the port by it
        target: VM1_PORT,
        args: &[],
        expect: &["write-dhcp-host", "reload-dnsmasq"],
        traffic: vm1_dhcp_offer,
    },
    Drift {
        fault: "dhcp-wrong-mac",
        target: VM1,
        args: &["--trust", "host"],
        expect: &["write-dhcp-host", "reload-dnsmasq"],
        traffic: vm1_dhcp_offer,
    },
];

fn repair(lab: &Lab, d: &Drift) {
    let mut args = vec![d.target, "--apply"];
    args.extend_from_slice(d.args);
    let (code, doc) = lab.plumb(&args);
    assert_eq!(code, 0, "{}: plumb --apply:\n{}", d.fault, why(&doc));
    assert_eq!(doc["outcome"], "repaired", "{}: {}", d.fault, why(&doc));
    assert_eq!(doc["applied"], true);
    assert_eq!(actions(&doc), d.expect, "{}: {}", d.fault, why(&doc));
    for a in doc["actions"].as_array().expect("actions") {
        for k in ["reason", "equivalent"] {
            assert!(a[k].as_str().is_some_and(|s| !s.is_empty()), "{a}");
        }
    }
}

fn no_op(lab: &Lab, d: &Drift) {
    let mut args = vec![d.target, "--apply"];
    args.extend_from_slice(d.args);
    let (code, doc) = lab.plumb(&args);
    assert_eq!(code, 0, "{}: second apply:\n{}", d.fault, why(&doc));
    assert_eq!(
        doc["outcome"],
        "nothing-to-do",
        "{}: {}",
        d.fault,
        why(&doc)
    );
    assert_eq!(doc["actions"], serde_json::json!([]));
}

#[test]
fn each_drift_is_repaired_walk_is_ok_traffic_flows_and_a_second_apply_is_a_no_op() {
    let Some((lab, _g)) = lab() else { return };
    let audit_before = lab.audit_lines().len();
    let mut failures = Vec::new();
    for d in DRIFTS {
        let t = Instant::now();
        lab.vmlab(&["fault", d.fault]);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match d.fault {
                // without --prune the stale /32 stays and plumb says what would fix it
                "route-wrong-tap" => {
                    let (code, doc) = lab.plumb(&[d.target, "--apply"]);
                    assert_eq!(code, 2, "{}", why(&doc));
                    assert_eq!(doc["outcome"], "blocked");
                    assert!(doc["blocked"][0]["how"]
                        .as_str()
                        .unwrap_or("")
                        .contains("--prune"));
                    let (wc, _) = lab.walk(VM1);
                    assert_eq!(wc, 2, "walk must still fail without --prune");
                }
                // records that disagree are refused until told which to trust
                "dhcp-wrong-mac" => {
                    let out = lab
                        .plumb_cmd(&[d.target, "--apply"])
                        .output()
                        .expect("plumb");
                    assert_eq!(out.status.code(), Some(64));
                    let err = String::from_utf8_lossy(&out.stderr);
                    assert!(err.contains("disagree") && err.contains("--trust"), "{err}");
                }
                _ => {}
            }
            repair(lab, d);
            lab.walk_all_ok(VM1, d.fault);
            (d.traffic)(lab);
            no_op(lab, d);
        }));
        lab.vmlab(&["clear", d.fault]);
        eprintln!(
            "drift {:<16} {} in {:.1} s",
            d.fault,
            if r.is_ok() { "ok" } else { "FAILED" },
            t.elapsed().as_secs_f64()
        );
        if let Err(p) = r {
            failures.push(format!(
                "{}: {}",
                d.fault,
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // every applied run is in the audit log: user, time, target, plan, outcome
    let lines = lab.audit_lines();
    assert!(lines.len() >= audit_before + 2 * DRIFTS.len(), "{lines:#?}");
    for l in &lines[audit_before..] {
        for k in ["user", "time", "target", "plan", "outcome"] {
            assert!(!l[k].is_null(), "audit line lacks {k}: {l}");
        }
    }
}

/// The tap is gone (the VM's NIC unplugged): plumb creates a persistent tap as Nova does. Until
/// the hypervisor process opens it the tap has no carrier (walk says so); lab/vm-nic plays qemu
/// and attaches it to vm1, and then traffic flows through the recreated tap.
#[test]
fn a_missing_tap_is_recreated_as_a_persistent_tap_and_carries_traffic_once_attached() {
    let Some((lab, _g)) = lab() else { return };
    lab.with_faults(&["tap-missing"], || {
        let (code, doc) = lab.plumb(&[VM1, "--apply", "--tap-owner", "0", "--tap-group", "0"]);
        assert_eq!(code, 0, "{}", why(&doc));
        assert_eq!(
            actions(&doc),
            vec![
                "create-tap",
                "set-mac",
                "set-mtu",
                "set-up",
                "add-address",
                "sysctl",
                "sysctl",
                "add-route"
            ]
        );
        let link = lab.exec("hv1", &["ip", "-d", "link", "show", VM1_TAP]);
        let link = String::from_utf8_lossy(&link.stdout);
        assert!(
            link.contains("tun type tap") && link.contains("persist on"),
            "{link}"
        );
        assert!(
            link.contains("fe:16:3e:00:00:01") && link.contains("mtu 1450"),
            "{link}"
        );
        // nobody holds the tap yet: the one finding left is the missing carrier
        let (code, doc) = lab.walk(VM1);
        assert_eq!(code, 2);
        let bad = not_ok(&doc);
        assert!(bad.len() == 1 && bad[0].contains("tap.state"), "{bad:?}");
        // the hypervisor process attaches
        let mut nic = lab
            .exec_cmd(
                "",
                &[
                    "lab/vm-nic",
                    "hv1",
                    VM1_TAP,
                    "vm1",
                    "fa:16:3e:00:00:01",
                    "1450",
                    "198.51.100.11/24",
                    "198.51.100.1",
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start lab/vm-nic");
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            use std::io::BufRead;
            let mut line = String::new();
            let stdout = nic.stdout.take().expect("stdout");
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .expect("vm-nic output");
            assert_eq!(line.trim(), "ready");
            lab.walk_all_ok(VM1, "tap-missing");
            vm1_out_and_in(lab);
            let (code, doc) = lab.plumb(&[VM1, "--apply"]);
            assert_eq!(code, 0, "{}", why(&doc));
            assert_eq!(doc["outcome"], "nothing-to-do");
        }));
        // stop it by its pid (vmlab exec execs it)
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(nic.id()).expect("pid")),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = nic.wait();
        if let Err(p) = res {
            std::panic::resume_unwind(p);
        }
    });
}

const STACKED: &[&str] = &[
    "mtu",
    "proxy-arp-off",
    "gw-prefixroute",
    "route-missing",
    "dhcp-wrong-mac",
];

#[test]
fn a_failure_at_any_step_or_in_verification_leaves_the_port_exactly_as_before() {
    let Some((lab, _g)) = lab() else { return };
    lab.with_faults(STACKED, || {
        let args = [VM1, "--trust", "host"];
        let (code, plan) = lab.plumb(&args);
        assert_eq!(code, 2, "{plan:#}");
        let n = actions(&plan).len();
        assert_eq!(
            actions(&plan),
            vec![
                "set-mtu",
                "delete-address",
                "add-address",
                "sysctl",
                "add-route",
                "write-dhcp-host",
                "reload-dnsmasq"
            ]
        );
        let before = lab.snapshot();
        let mut points: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
        points.push("verify".into());
        for at in &points {
            let (code, doc) = lab.plumb_failing_at(at, &[VM1, "--trust", "host", "--apply"]);
            assert_eq!(code, 2, "fail at {at}: {}", why(&doc));
            assert_eq!(doc["outcome"], "rolled-back", "fail at {at}: {}", why(&doc));
            assert_eq!(
                doc["rollback"]["differences"],
                serde_json::json!([]),
                "fail at {at}: {}",
                why(&doc)
            );
            assert_diff_free(&before, &lab.snapshot(), &format!("failure at {at}"));
        }
        // and without a failure it repairs
        let (code, doc) = lab.plumb(&[VM1, "--trust", "host", "--apply"]);
        assert_eq!(code, 0, "{}", why(&doc));
        lab.walk_all_ok(VM1, "stacked drifts");
    });
}

#[test]
fn a_dry_run_changes_nothing_and_prints_the_plan() {
    let Some((lab, _g)) = lab() else { return };
    let (code, doc) = lab.plumb(&[VM1]);
    assert_eq!(code, 0, "{}", why(&doc));
    assert_eq!(doc["outcome"], "nothing-to-do");
    assert_eq!(doc["actions"], serde_json::json!([]));
    lab.with_faults(&["route-missing", "mtu", "proxy-arp-off"], || {
        let before = lab.snapshot();
        let (code, doc) = lab.plumb(&[VM1]);
        assert_eq!(code, 2, "{}", why(&doc));
        assert_eq!(doc["target"], VM1);
        assert_eq!(doc["applied"], false);
        assert_eq!(doc["outcome"], "planned");
        assert_eq!(actions(&doc), vec!["set-mtu", "sysctl", "add-route"]);
        assert_eq!(
            doc["actions"][2]["equivalent"],
            format!("ip route add {VM1}/32 dev {VM1_TAP} proto static scope link")
        );
        assert!(doc["actions"][0]["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("tap.mtu"));
        // where each desired value came from
        assert!(doc["port"]["desired"]["mtu"]["source"]
            .as_str()
            .unwrap_or("")
            .contains("option:mtu"));
        // the human form too
        let bin = env!("CARGO_BIN_EXE_vmpath");
        let out = lab.exec("hv1", &[bin, "plumb", VM1]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("dry run: nothing changed"), "{text}");
        assert!(
            text.contains(&format!("$ ip link set {VM1_TAP} mtu 1450")),
            "{text}"
        );
        assert_diff_free(&before, &lab.snapshot(), "dry run");
    });
}

#[test]
fn two_simultaneous_applies_never_interleave() {
    let Some((lab, _g)) = lab() else { return };
    lab.with_faults(&["mtu"], || {
        let start = |hold: &str| {
            lab.plumb_cmd(&[VM1, "--apply"])
                .env("VMPATH_PLUMB_HOLD_MS", hold)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn plumb")
        };
        let first = start("2000");
        // the first one holds the lock (its pid is in the lock file) before the second starts
        let t = Instant::now();
        while !std::fs::read_to_string(lab.dir.join("plumb.lock"))
            .unwrap_or_default()
            .contains(&format!("pid {} ", first.id()))
        {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "first plumb never took the lock"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let first_pid = first.id();
        let second = start("0").wait_with_output().expect("second");
        let first = first.wait_with_output().expect("first");
        assert_eq!(
            second.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&second.stderr)
        );
        let err = String::from_utf8_lossy(&second.stderr);
        assert!(
            err.contains(&format!("busy: held by pid {first_pid} since ")),
            "{err}"
        );
        assert_eq!(
            first.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&first.stdout)
        );
        // audit records never overlap in time: each run held the lock alone
        let mut spans: Vec<(String, String)> = lab
            .audit_lines()
            .iter()
            .map(|l| {
                (
                    l["time"].as_str().unwrap_or("").to_string(),
                    l["finished"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        spans.sort();
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "overlapping applies: {w:?}");
        }
    });
}

#[test]
fn without_its_capabilities_it_is_refused_with_exit_3() {
    let Some((lab, _g)) = lab() else { return };
    let bin = env!("CARGO_BIN_EXE_vmpath");
    let out = lab.exec(
        "hv1",
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            bin,
            "plumb",
            VM1,
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs CAP_NET_ADMIN") && !err.contains("panicked"),
        "{err}"
    );
}
