//! Integration tests of `vmpath walk` against the built-in lab (lab/vmlab): real namespaces,
//! veth taps, BIRD 2, FRR, dnsmasq, iptables and nftables. One lab per test binary, shared by all
//! tests; tests that plant faults hold a lock so they never overlap.
//!
//! Uses an already running lab when VMPATH_LAB_DIR is set (left running afterwards); otherwise
//! starts one and tears it down at exit. Outside CI, the tests skip (with a message) when not
//! root or when a lab component is missing; with CI=true that is a failure.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{vmlab, Lab, VM1, VM1_PORT, VM1_TAP, VM2, VM3};

fn lab() -> Option<(&'static Lab, std::sync::MutexGuard<'static, ()>)> {
    common::lab("lab")
}

impl Lab {
    /// Run a command inside hypervisor `ns`, or on a simulated host of the HA part (gwA, gwB,
    /// cmp1: its netns and its own mount namespace).
    fn exec(&self, ns: &str, cmd: &[&str]) -> Output {
        let opt = if ["gwA", "gwB", "cmp1"].contains(&ns) {
            "--host"
        } else {
            "--ns"
        };
        Command::new(vmlab())
            .arg("exec")
            .arg("--dir")
            .arg(&self.dir)
            .arg(opt)
            .arg(ns)
            .args(cmd)
            .output()
            .expect("run lab/vmlab exec")
    }

    fn vmpath(&self, ns: &str, args: &[&str]) -> Output {
        let bin = env!("CARGO_BIN_EXE_vmpath");
        let mut cmd = vec![bin];
        cmd.extend_from_slice(args);
        self.exec(ns, &cmd)
    }

    /// `vmpath walk TARGET --json` in `ns`: (exit code, document).
    fn walk(&self, ns: &str, target: &str, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["walk", target, "--json"];
        args.extend_from_slice(extra);
        let out = self.vmpath(ns, &args);
        json_of(&out, &format!("walk {target} in {ns}"))
    }

    fn with_fault<F: FnOnce()>(&self, name: &str, f: F) {
        self.vmlab(&["fault", name]);
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        self.vmlab(&["clear", name]);
        if let Err(p) = res {
            std::panic::resume_unwind(p);
        }
    }
}

/// Exit code and JSON document of a vmpath run; panics with its output when it is not JSON.
fn json_of(out: &Output, what: &str) -> (i32, Value) {
    let code = out.status.code().unwrap_or(-1);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: bad JSON ({e}), exit {code}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, doc)
}

fn checks(doc: &Value) -> &Vec<Value> {
    doc["checks"].as_array().expect("checks array")
}

/// Checks that are not ok, as "id" or "id subject".
fn not_ok(doc: &Value) -> Vec<(String, String)> {
    checks(doc)
        .iter()
        .filter(|c| c["status"] != "ok")
        .map(|c| {
            (
                c["id"].as_str().unwrap_or("?").to_string(),
                c["status"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

fn describe(doc: &Value) -> String {
    checks(doc)
        .iter()
        .filter(|c| c["status"] != "ok")
        .map(|c| {
            format!(
                "{} {} {}: {} | {}",
                c["status"], c["id"], c["subject"], c["summary"], c["evidence"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Assert the failing checks: every id in `must` fails, every other non-ok check is in `may`.
/// A `must` entry of lab/faults.tsv: `id` (the check fails) or `id:warn` (the severity policy
/// makes it a warning: traffic still flows).
fn expectation(m: &str) -> (&str, &str) {
    m.split_once(':').unwrap_or((m, "fail"))
}

fn assert_fails(doc: &Value, must: &[&str], may: &[&str]) {
    let bad = not_ok(doc);
    let ids: BTreeSet<&str> = bad.iter().map(|(i, _)| i.as_str()).collect();
    for m in must {
        let (id, want) = expectation(m);
        let rows: Vec<&str> = bad
            .iter()
            .filter(|(i, _)| i == id)
            .map(|(_, s)| s.as_str())
            .collect();
        assert!(
            rows.contains(&want) && (want == "fail" || rows.iter().all(|s| *s == want)),
            "expected {id} to {} (rows: {rows:?}); not ok:\n{}",
            if want == "fail" {
                "fail"
            } else {
                "warn, and only warn"
            },
            describe(doc)
        );
    }
    let must_ids: Vec<&str> = must.iter().map(|m| expectation(m).0).collect();
    for i in &ids {
        assert!(
            must_ids.contains(i) || may.contains(i),
            "unexpected non-ok check {i}:\n{}",
            describe(doc)
        );
    }
    // Every check that is not ok carries a fix.
    for c in checks(doc).iter().filter(|c| c["status"] != "ok") {
        assert!(
            c["fix"].as_str().is_some_and(|f| !f.is_empty()),
            "no fix: {c}"
        );
    }
}

fn check<'a>(doc: &'a Value, id: &str) -> Vec<&'a Value> {
    checks(doc).iter().filter(|c| c["id"] == id).collect()
}

/// The single row of `id` with `status` (asserts there is exactly one).
fn the_one<'a>(doc: &'a Value, id: &str, status: &str) -> &'a Value {
    let bad: Vec<_> = check(doc, id)
        .into_iter()
        .filter(|c| c["status"] == status)
        .collect();
    assert_eq!(bad.len(), 1, "{}", describe(doc));
    bad[0]
}

#[test]
fn healthy_lab_is_all_ok_on_bird_and_frr_hosts() {
    let Some((lab, _g)) = lab() else { return };
    for (ns, vm) in [
        ("hv1", VM1),
        ("hv1", VM2),
        ("hv2", VM3),
        ("hv2", "198.51.100.22"),
    ] {
        let (code, doc) = lab.walk(ns, vm, &[]);
        assert_eq!(code, 0, "{ns} {vm}:\n{}", describe(&doc));
        assert_eq!(doc["verdict"], "ok");
        // every hop is present, BGP with both peers
        for id in [
            "tap.exists",
            "tap.gateway",
            "tap.proxy_arp",
            "route.host",
            "route.lookup",
            "sg.chains",
            "dhcp.host",
            "metadata.proxy",
            "bgp.rib",
            "bgp.session",
            "bgp.export",
        ] {
            assert!(!check(&doc, id).is_empty(), "{ns} {vm}: no {id}");
        }
        assert!(
            check(&doc, "bgp.session").len() >= 2,
            "{ns}: fewer than 2 peers"
        );
        let ids: Vec<&str> = vmpath::check::CATALOGUE.iter().map(|(i, _)| *i).collect();
        for c in checks(&doc) {
            assert!(
                ids.contains(&c["id"].as_str().unwrap_or("")),
                "{c} not in the catalogue"
            );
            for k in ["id", "hop", "status", "summary", "evidence"] {
                assert!(c.get(k).is_some(), "{c} lacks {k}");
            }
        }
    }
    // The speaker is the right daemon on each host.
    let (_, d1) = lab.walk("hv1", VM1, &[]);
    assert!(check(&d1, "bgp.daemon")[0]["summary"]
        .as_str()
        .unwrap_or("")
        .contains("BIRD"));
    let (_, d2) = lab.walk("hv2", VM3, &[]);
    assert!(check(&d2, "bgp.daemon")[0]["summary"]
        .as_str()
        .unwrap_or("")
        .contains("FRR"));
}

/// tvm1's port on the Open vSwitch compute node cmp1 (the HA part).
const TVM1_PORT: &str = "e5f6a7b8-7c8d-4e9f-9a0b-9c0d1e2f3ab0";

/// On the OVS compute node cmp1 the walk finds the design by itself: every target form gives
/// the overlay walk, all ok, with none of the routed design's checks; `--design routed` forces
/// the routed walk; `--design ovs` on a routed hypervisor names what is missing.
#[test]
fn the_compute_node_walk_is_all_ok_and_has_no_routed_check() {
    let Some((lab, _g)) = lab() else { return };
    let ovs_ids: BTreeSet<&str> = vmpath::check::ovs::OVS_CATALOGUE
        .iter()
        .map(|(i, _)| *i)
        .collect();
    for t in [
        TVM1_PORT,
        "e5f6a7b8-7c",
        "tape5f6a7b8-7c",
        "fa:16:3e:00:01:0b",
    ] {
        let (code, doc) = lab.walk("cmp1", t, &[]);
        assert_eq!(code, 0, "cmp1 {t}:\n{}", describe(&doc));
        assert_eq!(doc["design"], "ovs", "{t}");
        assert_eq!(doc["port"]["port_id"], TVM1_PORT, "{t}");
        assert_eq!(doc["port"]["plug"], "native", "{t}");
        assert_eq!(doc["port"]["local_vlan"], 1, "{t}");
        for id in [
            "vif.tap",
            "vif.mtu",
            "vif.ovs",
            "brint.tag",
            "tunnel.port",
            "tunnel.route",
            "tunnel.mtu",
        ] {
            assert!(!check(&doc, id).is_empty(), "cmp1 {t}: no {id}");
        }
        for c in checks(&doc) {
            let id = c["id"].as_str().unwrap_or("");
            assert!(
                ovs_ids.contains(id),
                "cmp1 {t}: {id} is not a compute-node check"
            );
            for k in ["id", "hop", "status", "summary", "evidence"] {
                assert!(c.get(k).is_some(), "{c} lacks {k}");
            }
        }
    }
    // Asked for, the routed design's walk runs there (and is wrong about it, as expected).
    let (_, doc) = lab.walk("cmp1", TVM1_PORT, &["--design", "routed"]);
    assert_eq!(doc["design"], "routed", "{doc}");
    let (code, doc) = lab.walk("hv1", VM1_PORT, &["--design", "ovs"]);
    assert_eq!(code, 64, "ovs walk on hv1: {doc}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("ovsdb-server")),
        "{doc}"
    );
    // A routed hypervisor is still walked as one.
    let (code, doc) = lab.walk("hv1", VM1_PORT, &[]);
    assert_eq!(
        (code, doc["design"].as_str()),
        (0, Some("routed")),
        "{}",
        describe(&doc)
    );
}

#[test]
fn every_target_form_finds_the_same_port() {
    let Some((lab, _g)) = lab() else { return };
    for t in [
        VM1,
        "2001:db8:100::11",
        VM1_PORT,
        "3f1c2a4e-5b",
        VM1_TAP,
        "fa:16:3e:00:00:01",
    ] {
        let (code, doc) = lab.walk("hv1", t, &[]);
        assert_eq!(code, 0, "{t}: {}", describe(&doc));
        assert_eq!(doc["port"]["tap"], VM1_TAP, "{t}");
        assert_eq!(doc["port"]["port_id"], VM1_PORT, "{t}");
        assert_eq!(doc["target"], t.to_ascii_lowercase());
    }
}

/// One row of lab/faults.tsv (its header explains the columns): a fault, where vmpath runs to
/// see it, what it is given there, the table-driven test that plants it, the checks that must
/// fail and the checks that may also fail as its direct consequence.
struct Fault {
    name: &'static str,
    host: &'static str,
    target: &'static str,
    test: &'static str,
    must: Vec<&'static str>,
    may: Vec<&'static str>,
    what: &'static str,
}

/// The fault table lab/vmlab reads too.
const FAULT_TABLE: &str = include_str!("../lab/faults.tsv");

/// A list column: "-" is empty, items are comma-separated.
fn list_column(col: &'static str) -> Vec<&'static str> {
    if col == "-" {
        Vec::new()
    } else {
        col.split(',').collect()
    }
}

/// The rows of lab/faults.tsv, in its order (comment lines start with '#').
fn faults() -> Vec<Fault> {
    FAULT_TABLE
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let c: Vec<&'static str> = l.split('\t').collect();
            assert_eq!(
                c.len(),
                7,
                "lab/faults.tsv: not 7 tab-separated columns: {l:?}"
            );
            Fault {
                name: c[0],
                host: c[1],
                target: c[2],
                test: c[3],
                must: list_column(c[4]),
                may: list_column(c[5]),
                what: c[6],
            }
        })
        .collect()
}

#[test]
fn each_fault_fails_its_check_and_clearing_it_restores_ok() {
    let Some((lab, _g)) = lab() else { return };
    let mut failures = Vec::new();
    for f in faults().iter().filter(|f| f.test == "walk") {
        let (fault, ns, vm, must, may) = (f.name, f.host, f.target, &f.must[..], &f.may[..]);
        let t = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lab.with_fault(fault, || {
                let (code, doc) = lab.walk(ns, vm, &[]);
                assert_fails(&doc, must, may);
                let worst = if must.iter().any(|m| {
                    check(&doc, expectation(m).0)
                        .iter()
                        .any(|c| c["status"] == "fail")
                }) {
                    2
                } else {
                    1
                };
                assert_eq!(code, worst, "{fault}: exit code\n{}", describe(&doc));
            });
            let (code, doc) = lab.walk(ns, vm, &[]);
            assert_eq!(code, 0, "after clearing {fault}:\n{}", describe(&doc));
        }));
        eprintln!(
            "fault {fault:<18} {} in {:.1} s",
            if r.is_ok() { "ok" } else { "FAILED" },
            t.elapsed().as_secs_f64()
        );
        if let Err(p) = r {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{fault}: {msg}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fault(s) misdiagnosed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The delimiter of the here-document that shell line `line` opens, if any (`<<EOF`,
/// `<<'EOF'`; not a here-string `<<<`).
fn heredoc_tag(line: &str) -> Option<String> {
    let rest = &line[line.find("<<")? + 2..];
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    if rest.starts_with('<') {
        return None;
    }
    let tag: String = rest
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!tag.is_empty()).then_some(tag)
}

/// The arms of the `case` statements in shell function `name` of `code`: (labels, lines) for
/// every arm whose labels are plain words (fault names), in order. The function ends at the
/// first `}` line outside a here-document.
fn case_arms<'a>(code: &'a str, name: &str) -> Vec<(Vec<&'a str>, Vec<&'a str>)> {
    let head = format!("{name}() {{");
    let mut lines = code.lines().skip_while(|l| l.trim_end() != head);
    assert!(lines.next().is_some(), "no function {name}() in lab/");
    let is_word = |w: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    let mut arms: Vec<(Vec<&str>, Vec<&str>)> = Vec::new();
    let mut heredoc: Option<String> = None;
    for l in lines {
        if let Some(tag) = &heredoc {
            if l.trim() == tag {
                heredoc = None;
            }
            continue;
        }
        if l == "}" {
            break;
        }
        heredoc = heredoc_tag(l);
        let labels = l
            .trim_start()
            .split_once(')')
            .map(|(pat, _)| pat.split('|').map(str::trim).collect::<Vec<_>>())
            .filter(|ws| ws.iter().all(|w| is_word(w)));
        match (labels, arms.last_mut()) {
            (Some(ws), _) => arms.push((ws, vec![l])),
            (None, Some((_, body))) => body.push(l),
            (None, None) => {}
        }
    }
    arms
}

/// lab/faults.tsv agrees with the lab: it is well formed and names only vmpath's checks; the
/// lab's fault code plants and clears exactly the faults it lists (each one handed to the HA
/// part's functions has an arm there), and `vmlab help` lists them in its order. Needs no root.
#[test]
fn the_fault_table_matches_the_lab() {
    let rows = faults();
    let names: Vec<&str> = rows.iter().map(|f| f.name).collect();
    let table: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(table.len(), names.len(), "a fault name twice: {names:?}");
    let ids: BTreeSet<&str> = vmpath::check::CATALOGUE
        .iter()
        .chain(vmpath::check::router::ROUTER_CATALOGUE)
        .chain(vmpath::check::ovs::OVS_CATALOGUE)
        .map(|(i, _)| *i)
        .collect();
    for f in &rows {
        assert!(
            ["walk", "routers", "-"].contains(&f.test),
            "{}: test {:?}",
            f.name,
            f.test
        );
        for col in [f.name, f.host, f.target, f.test, f.what] {
            assert!(
                !col.is_empty() && col.trim() == col,
                "{}: column {col:?}",
                f.name
            );
        }
        for id in f
            .must
            .iter()
            .map(|m| expectation(m).0)
            .chain(f.may.iter().copied())
        {
            assert!(ids.contains(id), "{}: {id} is not a vmpath check", f.name);
        }
        for m in &f.must {
            assert!(
                matches!(expectation(m).1, "fail" | "warn"),
                "{}: {m}: a must entry is ID or ID:warn",
                f.name
            );
        }
        if f.test != "-" {
            assert!(
                !f.must.is_empty() && f.host != "-",
                "{}: no host or must",
                f.name
            );
        }
        if f.test == "walk" {
            assert!(f.target != "-", "{}: walk without a target", f.name);
        }
    }
    assert!(
        FAULT_TABLE.ends_with('\n'),
        "lab/faults.tsv: no final newline"
    );
    // The lab's code: lab/vmlab and lab/lib/*.sh.
    let lab_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("lab");
    let mut files = vec![lab_dir.join("vmlab")];
    let mut libs: Vec<PathBuf> = std::fs::read_dir(lab_dir.join("lib"))
        .expect("read lab/lib")
        .map(|e| e.expect("lab/lib entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "sh"))
        .collect();
    libs.sort();
    files.extend(libs);
    let code: String = files
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read the lab's code") + "\n")
        .collect();
    for (top, ha) in [("plant", "ha_plant"), ("heal", "ha_heal")] {
        let arms = case_arms(&code, top);
        let done: BTreeSet<&str> = arms.iter().flat_map(|(ws, _)| ws.iter().copied()).collect();
        assert_eq!(
            done, table,
            "{top}() and lab/faults.tsv name different faults"
        );
        let handed: BTreeSet<&str> = arms
            .iter()
            .filter(|(_, body)| body.iter().any(|l| l.contains(ha)))
            .flat_map(|(ws, _)| ws.iter().copied())
            .collect();
        let there: BTreeSet<&str> = case_arms(&code, ha)
            .iter()
            .flat_map(|(ws, _)| ws.iter().copied())
            .collect();
        assert_eq!(
            handed, there,
            "{top}() hands {ha}() other faults than it has"
        );
    }
    // vmlab takes its fault list from the table.
    let out = Command::new(vmlab())
        .arg("help")
        .output()
        .expect("run lab/vmlab help");
    let help = String::from_utf8_lossy(&out.stdout);
    let listed: Vec<&str> = help
        .lines()
        .find_map(|l| l.strip_prefix("faults: "))
        .expect("vmlab help lists the faults")
        .split(' ')
        .collect();
    assert_eq!(listed, names, "vmlab help and lab/faults.tsv");
}

#[test]
fn fault_details_name_the_culprit() {
    let Some((lab, _g)) = lab() else { return };
    lab.with_fault("route-wrong-tap", || {
        let (_, doc) = lab.walk("hv1", VM1, &[]);
        let rh = check(&doc, "route.host");
        assert!(
            rh.iter().any(|c| c["summary"]
                .as_str()
                .unwrap_or("")
                .contains("tap7a2b3c4d-1e")),
            "{rh:?}"
        );
        // the VM that received the stray /32 sees it as foreign
        let (_, doc2) = lab.walk("hv1", VM2, &[]);
        assert!(
            check(&doc2, "route.foreign")
                .iter()
                .any(|c| c["status"] == "warn"),
            "{}",
            describe(&doc2)
        );
    });
    // One ToR no longer receives the /32 while the other does: a warning (redundancy lost).
    lab.with_fault("export-filter", || {
        let (_, doc) = lab.walk("hv1", VM1, &[]);
        let bad = the_one(&doc, "bgp.export", "warn");
        assert!(
            bad["subject"].as_str().unwrap_or("").starts_with("tor1 "),
            "{bad}"
        );
        assert!(
            bad["summary"].as_str().unwrap_or("").contains("filter"),
            "{bad}"
        );
    });
    lab.with_fault("export-filter-hv2", || {
        let (_, doc) = lab.walk("hv2", VM3, &[]);
        let bad = the_one(&doc, "bgp.export", "warn");
        assert!(
            bad["summary"].as_str().unwrap_or("").contains("route-map"),
            "{bad}"
        );
    });
    lab.with_fault("sg-drop", || {
        let (_, doc) = lab.walk("hv1", VM1, &[]);
        let d = &check(&doc, "sg.drops")[0];
        assert_eq!(d["status"], "warn");
        assert!(
            d["summary"].as_str().unwrap_or("").contains("dport 22"),
            "{d}"
        );
        // the flow is dropped; another port's flow is not
        let (code, doc) = lab.walk("hv1", VM1, &["--flow", "tcp/22"]);
        assert_eq!(code, 2, "{}", describe(&doc));
        // the DROP is in the IPv4 rules only: the IPv4 flow fails, the IPv6 one passes
        for c in check(&doc, "sg.flow") {
            let v4 = c["subject"].as_str().unwrap_or("").contains(VM1);
            assert_eq!(c["status"], if v4 { "fail" } else { "ok" }, "{c}");
        }
        let (code, doc) = lab.walk("hv1", VM2, &["--flow", "tcp/22"]);
        assert_eq!(code, 0, "{}", describe(&doc));
    });
}

#[test]
fn flows_are_judged_against_the_real_rules() {
    let Some((lab, _g)) = lab() else { return };
    for (ns, vm) in [("hv1", VM1), ("hv2", VM3)] {
        let (code, doc) = lab.walk(ns, vm, &["--flow", "tcp/22"]);
        assert_eq!(code, 0, "{ns} tcp/22: {}", describe(&doc));
        let (code, doc) = lab.walk(ns, vm, &["--flow", "tcp/80"]);
        assert_eq!(
            code,
            2,
            "{ns} tcp/80 should be dropped by the default rules: {}",
            describe(&doc)
        );
        assert_fails(&doc, &["sg.flow"], &[]);
    }
}

#[test]
fn a_hung_daemon_is_unknown_within_the_timeout() {
    let Some((lab, _g)) = lab() else { return };
    // Freeze BIRD (SIGSTOP by its pid): its socket still accepts but never answers.
    let pid = std::fs::read_to_string(lab.dir.join("run/bird-hv1.pid")).expect("bird pid file");
    let pid = pid.trim();
    let stop = |sig: &str| {
        let out = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid)
            .output()
            .expect("kill");
        assert!(out.status.success(), "kill -{sig} {pid}");
    };
    stop("STOP");
    let t = Instant::now();
    let res = std::panic::catch_unwind(|| lab.walk("hv1", VM1, &["--timeout", "400ms"]));
    let took = t.elapsed();
    stop("CONT");
    let (code, doc) = res.expect("walk");
    assert_eq!(code, 3, "{}", describe(&doc));
    assert!(took < Duration::from_secs(3), "walk took {took:?}");
    let bgp: Vec<_> = checks(&doc).iter().filter(|c| c["hop"] == "bgp").collect();
    assert!(
        !bgp.is_empty() && bgp.iter().all(|c| c["status"] == "unknown"),
        "{bgp:?}"
    );
    assert!(check(&doc, "bgp.daemon")[0]["summary"]
        .as_str()
        .unwrap_or("")
        .contains("answer"));
    // every other check still ran
    assert!(check(&doc, "dhcp.host")[0]["status"] == "ok");
}

#[test]
fn bad_input_is_usage_error_and_non_root_is_exit_3() {
    let Some((lab, _g)) = lab() else { return };
    for bad in [
        "198.51.100.300",
        "fa:16:3e:00",
        "3f1c2a4e-5b6d",
        "not-a-target",
    ] {
        let out = lab.vmpath("hv1", &["walk", bad]);
        assert_eq!(out.status.code(), Some(64), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(bad) && err.lines().count() == 1,
            "{bad}: {err}"
        );
    }
    // well-formed but not on this host
    let out = lab.vmpath("hv1", &["walk", VM3]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains(VM3));
    let out = lab.vmpath("hv1", &["walk", VM1, "--flow", "tcp/99999"]);
    assert_eq!(out.status.code(), Some(64));
    let out = lab.vmpath("hv1", &["walk"]);
    assert_eq!(out.status.code(), Some(64));
    // not root: a clear message, exit 3, no panic
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
            "walk",
            VM1,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("root") && !err.contains("panicked"), "{err}");
}

#[test]
fn walk_changes_nothing_on_the_host() {
    let Some((lab, _g)) = lab() else { return };
    let snap = || {
        let mut s = String::new();
        for cmd in [
            &["ip", "-d", "link", "show"][..],
            &["ip", "addr", "show"],
            &["ip", "route", "show", "table", "all"],
            &["ip", "-6", "route", "show", "table", "all"],
            &["iptables-save"],
            &["nft", "list", "ruleset"],
            &["sysctl", "-a", "--pattern", "proxy|forwarding"],
        ] {
            let o = lab.exec("hv1", cmd);
            s.push_str(&String::from_utf8_lossy(&o.stdout));
        }
        // counters move with traffic; strip them
        s.lines()
            .filter(|l| !l.contains("packets") && !l.starts_with('#'))
            .map(|l| match l.split_once(" [") {
                Some((chain, _)) if l.starts_with(':') => chain, // chain policy counters
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let before = snap();
    for _ in 0..3 {
        lab.walk("hv1", VM1, &["--flow", "tcp/22"]);
    }
    let after = snap();
    let (b, a): (BTreeSet<&str>, BTreeSet<&str>) =
        (before.lines().collect(), after.lines().collect());
    let gone: Vec<_> = b.difference(&a).collect();
    let new: Vec<_> = a.difference(&b).collect();
    assert!(
        gone.is_empty() && new.is_empty(),
        "walk changed the host:\n- {gone:?}\n+ {new:?}"
    );
}

#[test]
fn human_output_is_plain_text_when_piped() {
    let Some((lab, _g)) = lab() else { return };
    let out = lab.vmpath("hv1", &["walk", VM1]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains('\u{1b}'), "ANSI escapes in piped output");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.last().is_some_and(|l| l.starts_with("verdict: OK")),
        "{text}"
    );
    // path order: tap before route before sg before dhcp before metadata before bgp
    let pos = |id: &str| {
        lines
            .iter()
            .position(|l| l.split_whitespace().nth(1) == Some(id))
            .unwrap_or_else(|| panic!("{id} missing:\n{text}"))
    };
    let order = [
        "tap.exists",
        "tap.gateway",
        "tap.proxy_arp",
        "route.host",
        "neigh.vm",
        "sg.chains",
        "dhcp.host",
        "metadata.proxy",
        "bgp.rib",
        "bgp.session",
    ];
    for w in order.windows(2) {
        assert!(pos(w[0]) < pos(w[1]), "{} after {}", w[0], w[1]);
    }
}

#[test]
fn flags_and_the_config_file_override_discovery() {
    let Some((lab, _g)) = lab() else { return };
    // An expected MTU from a flag wins over dnsmasq's option: the tap no longer matches.
    let (code, doc) = lab.walk("hv1", VM1, &["--mtu", "9000"]);
    assert_eq!(code, 2);
    assert_fails(&doc, &["tap.mtu"], &[]);
    assert_eq!(doc["port"]["desired"]["mtu"]["source"], "--mtu flag");
    // The same from a config file; a flag still wins over the file.
    let cfg = lab.dir.join("vmpath-test.toml");
    std::fs::write(&cfg, "mtu = 9000\ntimeout = \"1s\"\n").expect("write config");
    let cfg = cfg.to_string_lossy().to_string();
    let (code, doc) = lab.walk("hv1", VM1, &["--config", &cfg]);
    assert_eq!(code, 2, "{}", describe(&doc));
    assert_fails(&doc, &["tap.mtu"], &[]);
    let (code, _) = lab.walk("hv1", VM1, &["--config", &cfg, "--mtu", "1450"]);
    assert_eq!(code, 0);
    // A wrong gateway given by flag is checked against.
    let (code, doc) = lab.walk("hv1", VM2, &["--gateway", "198.51.100.254/24"]);
    assert_eq!(code, 2);
    assert_fails(&doc, &["tap.gateway"], &[]);
    // A control socket given by flag replaces the discovered one.
    let (code, doc) = lab.walk("hv1", VM1, &["--bird-socket", "/run/bird/nonexistent.ctl"]);
    assert_eq!(code, 3, "{}", describe(&doc));
    assert!(check(&doc, "bgp.daemon")[0]["summary"]
        .as_str()
        .unwrap_or("")
        .contains("nonexistent"));
    // A malformed config file is a usage error naming the file.
    let bad = lab.dir.join("vmpath-bad.toml");
    std::fs::write(&bad, "mtu = \"big\"\n").expect("write config");
    let out = lab.vmpath("hv1", &["walk", VM1, "--config", &bad.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("vmpath-bad.toml"));
}

/// Split `[p:b] rest` into counters and text.
fn split_counted(line: &str) -> (Option<(u64, u64)>, &str) {
    // Chain headers: `:NAME POLICY [p:b]`.
    if line.starts_with(':') {
        if let Some((text, c)) = line.rsplit_once(" [") {
            if let Some((p, b)) = c.trim_end_matches(']').split_once(':') {
                if let (Ok(p), Ok(b)) = (p.parse(), b.parse()) {
                    return (Some((p, b)), text);
                }
            }
        }
    }
    if let Some(rest) = line.strip_prefix('[') {
        if let Some((c, text)) = rest.split_once("] ") {
            if let Some((p, b)) = c.split_once(':') {
                if let (Ok(p), Ok(b)) = (p.parse(), b.parse()) {
                    return (Some((p, b)), text);
                }
            }
        }
    }
    (None, line)
}

/// The iptables-nft rules vmpath reads over nfnetlink are, rule for rule, what `iptables-save -c`
/// prints, with counters between a save taken before and one taken after (traffic moves them).
#[test]
fn iptables_rules_read_over_netlink_equal_iptables_save() {
    let Some((lab, _g)) = lab() else { return };
    let info: Value = serde_json::from_slice(&lab.vmlab(&["info"]).stdout).expect("lab info");
    let pidfile = info["hypervisors"]["hv1"]["dnsmasq_pidfile"]
        .as_str()
        .expect("hv1 dnsmasq pidfile");
    let pid = std::fs::read_to_string(pidfile).expect("read pidfile");
    let ns = PathBuf::from(format!("/proc/{}/ns/net", pid.trim()));
    let compare = |label: &str| {
        for (family, bin) in [(2u8, "iptables-save"), (10u8, "ip6tables-save")] {
            let before =
                String::from_utf8_lossy(&lab.exec("hv1", &[bin, "-c"]).stdout).into_owned();
            let native = vmpath::collect::netns::run_in(&ns, move || {
                vmpath::collect::firewall::xtnl::read(family, Duration::from_secs(2))
            })
            .expect("enter hv1")
            .unwrap_or_else(|e| panic!("{label}: {bin} over netlink: {e}"));
            let after = String::from_utf8_lossy(&lab.exec("hv1", &[bin, "-c"]).stdout).into_owned();
            let lines = |t: &str| -> Vec<String> {
                t.lines()
                    .filter(|l| !l.starts_with('#'))
                    .map(String::from)
                    .collect()
            };
            let (b, n, a) = (lines(&before), lines(&native), lines(&after));
            assert!(n.len() > 20, "{label} {bin}: too few lines:\n{native}");
            assert_eq!(b.len(), n.len(), "{label} {bin}:\n{before}\n---\n{native}");
            assert_eq!(a.len(), n.len(), "{label} {bin}");
            for ((lb, ln), la) in b.iter().zip(&n).zip(&a) {
                // Chain headers carry counters after the policy; compare them the same way.
                let (cb, tb) = split_counted(lb);
                let (cn, tn) = split_counted(ln);
                let (ca, _) = split_counted(la);
                assert_eq!(tb, tn, "{label} {bin}");
                if let (Some(cb), Some(cn), Some(ca)) = (cb, cn, ca) {
                    assert!(
                        cb.0 <= cn.0 && cn.0 <= ca.0 && cb.1 <= cn.1 && cn.1 <= ca.1,
                        "{label} {bin}: counters of `{tn}`: {cb:?} <= {cn:?} <= {ca:?}"
                    );
                }
            }
        }
    };
    compare("healthy");
    lab.with_fault("sg-drop", || compare("sg-drop"));
}

// ---------------------------------------------------------------------------------------------
// vmpath probe on the lab's ECMP part: pc1 -- r1 ==ECMP==> gw1 | gw2 -- srv1
// ---------------------------------------------------------------------------------------------

fn lab_info(lab: &Lab) -> Value {
    serde_json::from_slice(&lab.vmlab(&["info"]).stdout).expect("lab info")
}

/// `vmpath probe ARGS --json` in pc1: (exit code, document).
fn probe(lab: &Lab, args: &[&str]) -> (i32, Value) {
    let mut a = vec!["probe"];
    a.extend_from_slice(args);
    a.push("--json");
    let out = lab.vmpath("pc1", &a);
    json_of(&out, &format!("probe {args:?}"))
}

/// The gateway r1 itself picks for one of pc1's flows (`ip route get … sport S dport D`).
fn router_choice(lab: &Lab, info: &Value, v6: bool, sport: u16, dport: u16) -> String {
    let key = if v6 { "ground_truth6" } else { "ground_truth4" };
    let argv: Vec<String> = info["probe"][key]
        .as_array()
        .expect("ground truth command")
        .iter()
        .map(|v| {
            v.as_str()
                .expect("string")
                .replace("{sport}", &sport.to_string())
                .replace("{dport}", &dport.to_string())
        })
        .collect();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = lab.exec("r1", &argv);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "via" {
            return words.next().expect("address after via").to_string();
        }
    }
    panic!("no `via` in {argv:?}: {text}");
}

fn flows_of(doc: &Value) -> &Vec<Value> {
    doc["flows"].as_array().expect("flows")
}

fn sport_of(f: &Value) -> u16 {
    f["sport"].as_u64().expect("sport") as u16
}

fn hop_addr(f: &Value, ttl: u64) -> Option<String> {
    f["hops"]
        .as_array()?
        .iter()
        .find(|h| h["ttl"].as_u64() == Some(ttl))
        .and_then(|h| h["address"].as_str())
        .map(String::from)
}

/// Healthy, with the routers' default ICMP rate limits: every flow reaches the destination,
/// both ECMP paths are found, each flow's hop 2 is the gateway r1 itself picks for it, and no
/// probe leaves a half-open connection on the server.
#[test]
fn probe_healthy_finds_both_paths_and_no_false_failure() {
    let Some((lab, _g)) = lab() else { return };
    let info = lab_info(lab);
    let p = &info["probe"];
    let port = p["open_port"].as_u64().expect("open port") as u16;
    for v6 in [false, true] {
        let dst = p[if v6 { "dest_ipv6" } else { "dest_ipv4" }]
            .as_str()
            .expect("dst");
        let (code, doc) = probe(
            lab,
            &[
                dst,
                "--port",
                &port.to_string(),
                "--flows",
                "16",
                "--hops",
                "all",
            ],
        );
        assert_eq!(code, 0, "{doc:#}");
        assert_eq!(doc["summary"]["failing"], 0, "{doc:#}");
        assert_eq!(doc["summary"]["reached"], 16);
        let d = &doc["summary"]["divergence"];
        assert_eq!(d["hop"], 2, "{doc:#}");
        let branches: BTreeSet<String> = d["branches"]
            .as_array()
            .expect("branches")
            .iter()
            .map(|b| b["address"].as_str().expect("addr").to_string())
            .collect();
        let fam = if v6 { "ipv6" } else { "ipv4" };
        let want: BTreeSet<String> = ["gw1", "gw2"]
            .iter()
            .map(|g| p["gateways"][g][fam].as_str().expect("gw").to_string())
            .collect();
        assert_eq!(branches, want, "{doc:#}");
        for f in flows_of(&doc) {
            assert_eq!(f["outcome"], "open", "{f:#}");
            let sport = sport_of(f);
            let hop2 = hop_addr(f, 2);
            // A hop may stay silent under rate limiting; then it must be marked as such.
            match hop2 {
                Some(a) => assert_eq!(
                    a,
                    router_choice(lab, &info, v6, sport, port),
                    "sport {sport}"
                ),
                None => assert_eq!(f["hops"][1]["note"], "rate-limited", "{f:#}"),
            }
        }
    }
    let ss = lab.exec("srv1", &["ss", "-Htn", "state", "syn-recv"]);
    let ours: Vec<String> = String::from_utf8_lossy(&ss.stdout)
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .last()
                .and_then(|peer| peer.rsplit(':').next())
                .and_then(|p| p.parse::<u16>().ok())
                .is_some_and(|p| (33000..33016).contains(&p))
        })
        .map(String::from)
        .collect();
    assert!(
        ours.is_empty(),
        "half-open on srv1 after the probes: {ours:?}"
    );
}

/// One gateway drops the traffic: the failing flows are exactly those r1 sends through it, the
/// gateway is named, and classification takes one timeout (not ICMP-paced).
#[test]
fn probe_blackhole_fails_exactly_the_flows_through_the_bad_gateway() {
    let Some((lab, _g)) = lab() else { return };
    let info = lab_info(lab);
    let p = &info["probe"];
    let port = p["open_port"].as_u64().expect("open port") as u16;
    let bad = p["blackhole_gateway"].as_str().expect("bad gw").to_string();
    let fault = p["blackhole_fault"].as_str().expect("fault").to_string();
    lab.with_fault(&fault, || {
        for v6 in [false, true] {
            let fam = if v6 { "ipv6" } else { "ipv4" };
            let dst = p[if v6 { "dest_ipv6" } else { "dest_ipv4" }]
                .as_str()
                .expect("dst");
            let bad_addr = p["gateways"][&bad][fam]
                .as_str()
                .expect("bad gw addr")
                .to_string();
            let (code, doc) = probe(
                lab,
                &[dst, "--port", &port.to_string(), "--sports", "33000-33031"],
            );
            assert_eq!(code, 2, "{doc:#}");
            let failing: BTreeSet<u16> = flows_of(&doc)
                .iter()
                .filter(|f| f["outcome"] != "open")
                .map(sport_of)
                .collect();
            let expected: BTreeSet<u16> = (33000..=33031)
                .filter(|s| router_choice(lab, &info, v6, *s, port) == bad_addr)
                .collect();
            assert!(
                !expected.is_empty() && expected.len() < 32,
                "the seed splits the flows"
            );
            assert_eq!(failing, expected, "{doc:#}");
            for f in flows_of(&doc).iter().filter(|f| f["outcome"] != "open") {
                assert_eq!(f["outcome"], "silent");
            }
            let last = doc["summary"]["failing_last_hops"]
                .as_array()
                .expect("last hops");
            assert_eq!(last.len(), 1, "{doc:#}");
            assert_eq!(last[0]["address"], bad_addr.as_str());
            assert_eq!(last[0]["hop"], 2);
            let text = doc["summary"]["lines"].to_string();
            assert!(text.contains(&bad_addr), "{text}");
            let classify = doc["classify_ms"].as_f64().expect("classify_ms");
            assert!(classify < 1500.0, "classified in {classify} ms");
        }
    });
}

/// A closed port (RST) counts as reached; an ICMP unreachable is reported with its code.
#[test]
fn probe_closed_port_is_reached_and_unreachable_has_its_code() {
    let Some((lab, _g)) = lab() else { return };
    let info = lab_info(lab);
    let p = &info["probe"];
    for v6 in [false, true] {
        let dst = p[if v6 { "dest_ipv6" } else { "dest_ipv4" }]
            .as_str()
            .expect("dst");
        let closed = p["closed_port"].to_string();
        let (code, doc) = probe(
            lab,
            &[dst, "--port", &closed, "--flows", "4", "--hops", "none"],
        );
        assert_eq!(code, 0, "{doc:#}");
        assert!(
            flows_of(&doc).iter().all(|f| f["outcome"] == "closed"),
            "{doc:#}"
        );
        let unreach = p["unreachable_port"].to_string();
        let want = &p[if v6 {
            "unreachable_icmp6"
        } else {
            "unreachable_icmp4"
        }]["code"];
        let (code, doc) = probe(
            lab,
            &[dst, "--port", &unreach, "--flows", "4", "--hops", "none"],
        );
        assert_eq!(code, 2, "{doc:#}");
        for f in flows_of(&doc) {
            assert_eq!(f["outcome"], "unreachable", "{f:#}");
            assert_eq!(&f["icmp_code"], want, "{f:#}");
            assert_eq!(f["reply_from"], dst);
        }
    }
}

/// `--netns` probes from inside a named namespace; bad input is a usage error.
#[test]
fn probe_from_a_named_netns_and_bad_input() {
    let Some((lab, _g)) = lab() else { return };
    let info = lab_info(lab);
    let p = &info["probe"];
    let dst = p["dest_ipv4"].as_str().expect("dst");
    let port = p["open_port"].to_string();
    let bin = env!("CARGO_BIN_EXE_vmpath");
    let out = Command::new(vmlab())
        .args(["exec", "--dir"])
        .arg(&lab.dir)
        .args([
            bin, "probe", dst, "--port", &port, "--flows", "2", "--netns", "pc1", "--json",
        ])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["source"], p["client_ipv4"]);
    let out = lab.vmpath("pc1", &["probe", "not-an-ip"]);
    assert_eq!(out.status.code(), Some(64));
    let out = lab.vmpath("pc1", &["probe", dst, "--netns", "no-such-ns"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ip netns list"));
    let out = lab.vmpath("pc1", &["probe", dst, "--sports", "70000"]);
    assert_eq!(out.status.code(), Some(64));
    // Without CAP_NET_RAW: exit 3 and the exact fix.
    let out = lab.exec(
        "pc1",
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            bin,
            "probe",
            dst,
            "--port",
            &port,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CAP_NET_RAW") && err.contains("setcap") && !err.contains("panicked"),
        "{err}"
    );
}

/// `--repeat` tells random loss from a blackhole: with gw1 dropping half of its packets at random
/// some gw1 flows change outcome across attempts (exit 1 or 2, `consistent: false`), while the
/// blackholed gw2 flows fail every attempt.
#[test]
fn probe_repeat_tells_random_loss_from_a_blackhole() {
    let Some((lab, _g)) = lab() else { return };
    let info = lab_info(lab);
    let p = &info["probe"];
    let dst = p["dest_ipv4"].as_str().expect("dst");
    let port = p["open_port"].as_u64().expect("port") as u16;
    let gw1 = p["gateways"]["gw1"]["ipv4"]
        .as_str()
        .expect("gw1")
        .to_string();
    let fault = p["blackhole_fault"].as_str().expect("fault").to_string();
    for cmd in [
        "add table inet vmpath_test_loss",
        "add chain inet vmpath_test_loss f { type filter hook forward priority 0 ; }",
        "add rule inet vmpath_test_loss f tcp dport 8080 numgen random mod 2 == 0 drop",
    ] {
        let add = lab.exec("gw1", &["nft", cmd]);
        assert!(
            add.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&add.stderr)
        );
    }
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lab.with_fault(&fault, || {
            let (code, doc) = probe(
                lab,
                &[
                    dst,
                    "--port",
                    &port.to_string(),
                    "--sports",
                    "33000-33031",
                    "--repeat",
                    "6",
                    "--hops",
                    "none",
                ],
            );
            assert_eq!(code, 2, "{doc:#}");
            let mut lossy = 0;
            for f in flows_of(&doc) {
                let via = router_choice(lab, &info, false, sport_of(f), port);
                let attempts = f["attempts"].as_array().expect("attempts");
                assert_eq!(attempts.len(), 6);
                if via == gw1 {
                    if f["consistent"] == false {
                        lossy += 1;
                    }
                } else {
                    assert_eq!(f["consistent"], true, "{f:#}");
                    assert!(attempts.iter().all(|a| a == "silent"), "{f:#}");
                }
            }
            assert!(lossy > 0, "no gw1 flow saw random loss: {doc:#}");
            assert!(doc["summary"]["intermittent"].as_u64().unwrap_or(0) >= lossy);
        });
    }));
    let del = lab.exec(
        "gw1",
        &["nft", "delete", "table", "inet", "vmpath_test_loss"],
    );
    assert!(
        del.status.success(),
        "{}",
        String::from_utf8_lossy(&del.stderr)
    );
    if let Err(e) = res {
        std::panic::resume_unwind(e);
    }
}

/// IPv4 by default: every reaching flow gets a hop map, traced or taken from a traced flow that
/// recorded the same route (Record Route echoed by srv1), and every flow's hop 2 is the gateway
/// r1 itself picks for it.
#[test]
fn probe_record_route_maps_every_flow_correctly() {
    let Some((lab, _g)) = lab() else { return };
    let info = lab_info(lab);
    let p = &info["probe"];
    let dst = p["dest_ipv4"].as_str().expect("dst");
    let port = p["open_port"].as_u64().expect("port") as u16;
    let (code, doc) = probe(
        lab,
        &[dst, "--port", &port.to_string(), "--sports", "33100-33131"],
    );
    assert_eq!(code, 0, "{doc:#}");
    let mut from_record = 0;
    for f in flows_of(&doc) {
        let sport = sport_of(f);
        if f.get("hops_from").is_some() {
            from_record += 1;
            assert!(
                f["recorded_route"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty()),
                "{f:#}"
            );
        }
        assert_eq!(
            hop_addr(f, 2).expect("hop 2 known for every flow"),
            router_choice(lab, &info, false, sport, port),
            "sport {sport}: {f:#}"
        );
    }
    assert!(
        from_record >= 20,
        "only {from_record} flows mapped by recorded route"
    );
    let classify = doc["elapsed_ms"].as_f64().expect("elapsed");
    assert!(classify < 1000.0, "full maps took {classify} ms");
}

// ---------------------------------------------------------------------------------------------
// vmpath routers on the lab's HA gateways (gwA, gwB: one router, keepalived, OVS, VXLAN)
// ---------------------------------------------------------------------------------------------

/// `vmpath routers --listen --json` run on gateway host `host` (its netns and mount namespace),
/// with `--ha-confs` from lab.json (discovery needs a running keepalived, or Neutron's config).
fn routers_on(lab: &Lab, host: &str) -> (i32, Value) {
    routers_with(lab, host, &[])
}

/// `vmpath routers --listen --json` on a gateway host, with extra arguments.
fn routers_with(lab: &Lab, host: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--listen"];
    args.extend_from_slice(extra);
    routers_run(lab, host, &args)
}

/// `vmpath routers --json --ha-confs DIR ARGS…` on a gateway host.
fn routers_run(lab: &Lab, host: &str, extra: &[&str]) -> (i32, Value) {
    let info = lab_info(lab);
    let ha = info["ha"]["gateways"][host]["ha_confs"]
        .as_str()
        .expect("ha_confs")
        .to_string();
    let out = Command::new(vmlab())
        .args(["exec", "--dir"])
        .arg(&lab.dir)
        .args([
            "--host",
            host,
            env!("CARGO_BIN_EXE_vmpath"),
            "routers",
            "--json",
            "--ha-confs",
            &ha,
        ])
        .args(extra)
        .output()
        .expect("run vmpath routers");
    json_of(&out, &format!("routers on {host}"))
}

/// Non-ok checks of a routers document: router checks and node checks, as (id, status).
fn routers_not_ok(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for r in doc["routers"].as_array().into_iter().flatten() {
        for c in r["checks"].as_array().into_iter().flatten() {
            if c["status"] != "ok" {
                out.insert((
                    c["id"].as_str().unwrap_or("").into(),
                    c["status"].as_str().unwrap_or("").into(),
                ));
            }
        }
    }
    for c in doc["host_checks"].as_array().into_iter().flatten() {
        if c["status"] != "ok" {
            out.insert((
                c["id"].as_str().unwrap_or("").into(),
                c["status"].as_str().unwrap_or("").into(),
            ));
        }
    }
    out
}

/// The healthy HA part is all ok on both gateways (one primary); each fault fails its check.
#[test]
fn routers_on_the_ha_gateways_healthy_and_faults() {
    let Some((lab, _g)) = lab() else { return };
    let info = lab_info(lab);
    assert!(info["ha"].is_object(), "lab.json has no ha part");
    let mut roles = Vec::new();
    for h in ["gwA", "gwB"] {
        let (code, doc) = routers_on(lab, h);
        assert_eq!(code, 0, "{h}: {:?}\n{doc:#}", routers_not_ok(&doc));
        assert_eq!(doc["routers"].as_array().map(Vec::len), Some(1), "{h}");
        assert!(
            doc["dhcp"].as_array().is_some_and(|d| d.len() == 1),
            "{h}: qdhcp listed"
        );
        assert!(
            doc["host_checks"]
                .as_array()
                .is_some_and(|c| c.iter().any(|x| x["id"] == "ovs.ports")),
            "{h}: OVS read"
        );
        roles.push(
            doc["routers"][0]["views"]["addresses"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
    }
    roles.sort();
    assert_eq!(roles, ["backup", "primary"]);
    // keepalived's own report (JSON dump) and the tenant prefix advertised by each gateway's
    // BGP speaker (BIRD on gwA, FRR on gwB).
    let peer_file = lab.dir.join("routers-gwA.json");
    for h in ["gwA", "gwB"] {
        let (_, doc) = routers_on(lab, h);
        let r = &doc["routers"][0];
        let want = if r["views"]["addresses"] == "primary" {
            "MASTER"
        } else {
            "BACKUP"
        };
        assert_eq!(r["views"]["keepalived"], want, "{h}: {r:#}");
        assert_eq!(
            r["tenant_prefixes"],
            serde_json::json!(["192.0.2.0/24"]),
            "{h}"
        );
        let ex: Vec<&Value> = r["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["id"] == "bgp.export" || c["id"] == "bgp.rib")
            .collect();
        assert_eq!(ex.len(), 2, "{h}: one rib and one export row: {ex:#?}");
        assert!(ex.iter().all(|c| c["status"] == "ok"), "{h}: {ex:#?}");
        if h == "gwA" {
            std::fs::write(&peer_file, serde_json::to_vec(&doc).expect("json")).expect("write");
        }
    }
    let (code, doc) = routers_with(lab, "gwB", &["--peer", &peer_file.to_string_lossy()]);
    assert_eq!(code, 0, "--peer healthy: {:?}", routers_not_ok(&doc));
    // Split-brain (VRRP cut between the gateways): both MASTER, the ARP probe finds the other
    // gateway, and --peer sees two primaries.
    lab.with_fault("vrrp-split-brain", || {
        for h in ["gwA", "gwB"] {
            let (code, doc) = routers_on(lab, h);
            let bad = routers_not_ok(&doc);
            assert_eq!(code, 2, "split-brain on {h}: {bad:?}");
            assert_eq!(doc["routers"][0]["views"]["keepalived"], "MASTER", "{h}");
            assert!(
                bad.contains(&("router.dad".into(), "fail".into())),
                "{h}: {bad:?}"
            );
            if h == "gwA" {
                std::fs::write(&peer_file, serde_json::to_vec(&doc).expect("json")).expect("write");
            }
        }
        let (_, doc) = routers_with(lab, "gwB", &["--peer", &peer_file.to_string_lossy()]);
        let bad = routers_not_ok(&doc);
        assert!(
            bad.contains(&("router.peer".into(), "fail".into())),
            "{bad:?}"
        );
    });
    // `vmpath walk` on a gateway: a router id, or a tenant address behind it, is the router's
    // walk; an address that is neither is still a usage error.
    let rid = info["ha"]["router_id"]
        .as_str()
        .expect("ha.router_id")
        .to_string();
    // Operators paste short ids: `router` takes a unique prefix, walk the 11 characters of a
    // Neutron device name.
    let out = Command::new(vmlab())
        .args(["exec", "--dir"])
        .arg(&lab.dir)
        .args(["--host", "gwA", env!("CARGO_BIN_EXE_vmpath"), "router"])
        .args([&rid[..8], "--no-listen", "--json"])
        .output()
        .expect("run vmpath router");
    let (code, doc) = json_of(&out, "router by its first 8 characters");
    assert_eq!(code, 0, "{:?}", routers_not_ok(&doc));
    assert_eq!(doc["routers"][0]["router_id"], rid.as_str());
    for (h, target) in [
        ("gwA", rid.as_str()),
        ("gwA", &rid[..11]),
        ("gwB", "192.0.2.11"),
    ] {
        let out = Command::new(vmlab())
            .args(["exec", "--dir"])
            .arg(&lab.dir)
            .args([
                "--host",
                h,
                env!("CARGO_BIN_EXE_vmpath"),
                "walk",
                target,
                "--json",
            ])
            .output()
            .expect("run vmpath walk");
        let (code, doc) = json_of(&out, &format!("walk {target} on {h}"));
        assert_eq!(code, 0, "walk {target} on {h}: {:?}", routers_not_ok(&doc));
        assert_eq!(doc["routers"][0]["router_id"], rid.as_str(), "{h}");
        assert!(doc["routers"][0]["checks"]
            .as_array()
            .is_some_and(|c| c.iter().any(|x| x["id"] == "router.adverts")));
    }
    let out = Command::new(vmlab())
        .args(["exec", "--dir"])
        .arg(&lab.dir)
        .args([
            "--host",
            "gwB",
            env!("CARGO_BIN_EXE_vmpath"),
            "walk",
            "198.51.100.99",
        ])
        .output()
        .expect("run vmpath walk");
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    // The router's qg- with a smaller MTU than its node end (OVS keeps the node end's):
    // router.mtu_peer fails (restored after).
    let qg = info["ha"]["qg_if"].as_str().expect("ha.qg_if").to_string();
    let qns = info["ha"]["qrouter_netns"]
        .as_str()
        .expect("ha.qrouter_netns")
        .to_string();
    let set_mtu = |mtu: &str| {
        let st = Command::new(vmlab())
            .args(["exec", "--dir"])
            .arg(&lab.dir)
            .args([
                "--host", "gwA", "--ns", &qns, "ip", "link", "set", &qg, "mtu", mtu,
            ])
            .status()
            .expect("ip link set");
        assert!(st.success(), "set {qg} mtu {mtu}");
    };
    set_mtu("1400");
    let (code, doc) = routers_on(lab, "gwA");
    set_mtu("1500");
    let bad = routers_not_ok(&doc);
    assert_eq!(code, 2, "{bad:?}");
    assert!(
        bad.contains(&("router.mtu_peer".into(), "fail".into())),
        "{bad:?}"
    );
    // Each fault lab/faults.tsv gives to this test: the gateway to look at (host), the checks
    // that must fail there.
    for f in faults().iter().filter(|f| f.test == "routers") {
        let (fault, host, must) = (f.name, f.host, &f.must);
        lab.with_fault(fault, || {
            let (code, doc) = routers_on(lab, host);
            let bad = routers_not_ok(&doc);
            assert_eq!(code, 2, "{fault} on {host}: {bad:?}");
            for m in must {
                let (id, want) = expectation(m);
                assert!(
                    bad.contains(&(id.to_string(), want.to_string())),
                    "{fault} on {host}: {id} is not {want}: {bad:?}"
                );
            }
        });
    }
}

/// A healthy variant of lab/variants.tsv.
struct Variant {
    name: &'static str,
    host: &'static str,
    target: &'static str,
    test: &'static str,
    warn: Vec<&'static str>,
}

const VARIANT_TABLE: &str = include_str!("../lab/variants.tsv");

fn variants() -> Vec<Variant> {
    VARIANT_TABLE
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let c: Vec<&'static str> = l.split('\t').collect();
            assert_eq!(
                c.len(),
                6,
                "lab/variants.tsv: not 6 tab-separated columns: {l:?}"
            );
            Variant {
                name: c[0],
                host: c[1],
                target: c[2],
                test: c[3],
                warn: list_column(c[4]),
            }
        })
        .collect()
}

/// `vmpath routers --json` with its defaults (the overview: ARP probes, no listening).
fn routers_overview(lab: &Lab, host: &str) -> (i32, Value) {
    routers_run(lab, host, &[])
}

fn all_checks(doc: &Value) -> Vec<&Value> {
    let mut v: Vec<&Value> = doc["checks"].as_array().into_iter().flatten().collect();
    for r in doc["routers"].as_array().into_iter().flatten() {
        v.extend(r["checks"].as_array().into_iter().flatten());
    }
    v.extend(doc["host_checks"].as_array().into_iter().flatten());
    v
}

/// The variant really is in effect: what vmpath saw shows it (so that "healthy" is not just a
/// variant that did nothing).
fn assert_variant_seen(name: &str, doc: &Value) {
    let has = |id: &str, needle: &str| {
        all_checks(doc).iter().any(|c| {
            c["id"] == id
                && (c["summary"].as_str().unwrap_or("").contains(needle)
                    || c["evidence"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|e| e.as_str().unwrap_or("").contains(needle)))
        })
    };
    let seen = match name {
        "neutron-dhcp-hostsfile" => {
            has("dhcp.host", "dhcp-hostsfile: fa:16:3e:00:00:01,tag:dhcpv6")
        }
        "no-port-security" => has("sg.chains", "is unfiltered"),
        "calico-dispatch" => has("sg.chains", "cali-"),
        "ingress-only" => {
            has("sg.chains", "IPv4: to the VM;") && !has("sg.chains", "from the VM and")
        }
        "gw-no-bgp" => has("bgp.daemon", "not used"),
        // The device is there (on gwA), and vmpath leaves it to the OVS tunnel ports.
        "ovs-vxlan-sys" => !all_checks(doc)
            .iter()
            .any(|c| c["id"] == "mtu.vxlan" && c["subject"] == "vxlan_sys_4789"),
        "vxlan-in-bridge" => has("mtu.vxlan", "largest frame into vxlan-4242: 1450"),
        other => {
            panic!("variant {other}: no proof it is in effect (add one to assert_variant_seen)")
        }
    };
    assert!(
        seen,
        "variant {name} is not visible in vmpath's output:\n{doc:#}"
    );
}

/// Every healthy variant of lab/variants.tsv (real deployments' other valid choices) is judged
/// healthy: exit 0, or 1 with only the warnings the table names. The false-alarm count is the
/// result, and must be 0.
#[test]
fn healthy_variants_raise_no_false_alarm() {
    let Some((lab, _g)) = lab() else { return };
    let mut alarms: Vec<String> = Vec::new();
    let vs = variants();
    for v in &vs {
        let t = Instant::now();
        let run = || match v.test {
            "walk" => lab.walk(v.host, v.target, &[]),
            "routers" => routers_overview(lab, v.host),
            other => panic!("{}: unknown test {other}", v.name),
        };
        lab.with_fault(v.name, || {
            let (code, doc) = run();
            assert_variant_seen(v.name, &doc);
            if v.name == "ovs-vxlan-sys" {
                // `lab/vmlab exec` must succeed: the device exists on gwA.
                lab.vmlab(&[
                    "exec",
                    "--host",
                    "gwA",
                    "ip",
                    "link",
                    "show",
                    "vxlan_sys_4789",
                ]);
            }
            let mut worst = 0;
            for c in all_checks(&doc) {
                let (id, st) = (
                    c["id"].as_str().unwrap_or(""),
                    c["status"].as_str().unwrap_or(""),
                );
                match st {
                    "ok" => {}
                    "warn" if v.warn.contains(&id) => worst = worst.max(1),
                    _ => alarms.push(format!(
                        "{}: {id} {st}: {}",
                        v.name,
                        c["summary"].as_str().unwrap_or("")
                    )),
                }
            }
            if alarms
                .iter()
                .all(|a| !a.starts_with(&format!("{}:", v.name)))
            {
                assert_eq!(code, worst, "{}: exit code", v.name);
            }
        });
        let (code, doc) = run();
        assert_eq!(code, 0, "after clearing {}: {doc:#}", v.name);
        eprintln!(
            "variant {:<24} judged in {:.1} s",
            v.name,
            t.elapsed().as_secs_f64()
        );
    }
    eprintln!(
        "healthy variants: {}, false alarms: {}",
        vs.len(),
        alarms.len()
    );
    assert!(
        alarms.is_empty(),
        "false alarms on healthy variants:\n{}",
        alarms.join("\n")
    );
}

/// lab/variants.tsv and the lab's variant code (lab/lib/variants.sh) name the same variants; every
/// check id the table names exists.
#[test]
fn the_variant_table_matches_the_lab() {
    let code = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/lib/variants.sh"),
    )
    .expect("lab/lib/variants.sh");
    let cases = |f: &str| -> BTreeSet<String> {
        let body = &code[code.find(&format!("{f}() {{")).expect("function")..];
        let body = &body[..body.find("\n}\n").expect("end")];
        body.lines()
            .filter_map(|l| l.trim().strip_suffix(')'))
            .filter(|l| !l.starts_with('*') && !l.contains('('))
            .map(|l| {
                l.split('|')
                    .map(|x| x.trim().to_string())
                    .collect::<Vec<_>>()
            })
            .filter(|names| names.iter().all(|n| !n.is_empty() && !n.contains(' ')))
            .flatten()
            .collect()
    };
    let names: BTreeSet<String> = variants().iter().map(|v| v.name.to_string()).collect();
    assert_eq!(
        cases("variant_plant"),
        names,
        "variant_plant cases vs lab/variants.tsv"
    );
    assert_eq!(
        cases("variant_heal"),
        names,
        "variant_heal cases vs lab/variants.tsv"
    );
    let faults: BTreeSet<&str> = faults().iter().map(|f| f.name).collect();
    let ids: BTreeSet<&str> = vmpath::check::CATALOGUE
        .iter()
        .chain(vmpath::check::router::ROUTER_CATALOGUE)
        .chain(vmpath::check::ovs::OVS_CATALOGUE)
        .map(|(id, _)| *id)
        .collect();
    for v in variants() {
        assert!(
            !faults.contains(v.name),
            "{} is a fault and a variant",
            v.name
        );
        assert!(
            matches!(v.test, "walk" | "routers"),
            "{}: test {}",
            v.name,
            v.test
        );
        assert!(
            (v.test == "walk") == (v.target != "-"),
            "{}: target",
            v.name
        );
        for id in &v.warn {
            assert!(ids.contains(id), "{}: {id} is not a vmpath check", v.name);
        }
    }
}
