//! vmpath on hosts that the REAL Neutron 29 agents built (lab/neutron/nlab): the compute node hv1
//! (neutron-openvswitch-agent, OVS firewall, userspace datapath, a VM plugged as os-vif does) and
//! the HA gateways net1 and net2 (neutron-l3-agent, keepalived). One test, run once: it brings the
//! lab up (or uses the one VMPATH_NEUTRON_LAB_DIR names, and leaves it running), walks the VM
//! healthy and with faults planted on hv1 (each found by its own check alone, then cleared),
//! checks the router on both gateways (exactly one primary), and takes the lab down, also when an
//! assertion fails. Outside CI it skips, with a message, when not root or when a component is
//! missing (lab/neutron/setup installs them); with CI=true that is a failure.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The whole test, lab included, stays within this.
const BUDGET: Duration = Duration::from_secs(600);
const VMPATH: &str = env!("CARGO_BIN_EXE_vmpath");

fn nlab() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/neutron/nlab")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// argv under `timeout` (killed after `secs`, then KILLed 5 s later).
fn run(argv: &[String], secs: u64) -> Output {
    Command::new("timeout")
        .args(["--kill-after=5", &secs.to_string()])
        .args(argv)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"))
}

struct Lab {
    dir: PathBuf,
    owned: bool,
    info: Value,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.owned {
            let t = Instant::now();
            let out = Command::new(nlab())
                .args(["down", "--dir"])
                .arg(&self.dir)
                .output();
            eprintln!(
                "neutron lab down in {:.1} s: {:?}",
                t.elapsed().as_secs_f64(),
                out.map(|o| o.status)
            );
        }
    }
}

impl Lab {
    fn start() -> Result<Lab, String> {
        if let Ok(dir) = std::env::var("VMPATH_NEUTRON_LAB_DIR") {
            let mut lab = Lab {
                dir: dir.into(),
                owned: false,
                info: Value::Null,
            };
            lab.load()?;
            return Ok(lab);
        }
        if !nix::unistd::geteuid().is_root() {
            return Err("the Neutron lab needs root (namespaces, daemons)".into());
        }
        let check = Command::new(nlab())
            .arg("check")
            .output()
            .map_err(|e| format!("cannot run lab/neutron/nlab: {e}"))?;
        if !check.status.success() {
            return Err(String::from_utf8_lossy(&check.stderr).trim().to_string());
        }
        let dir = std::env::temp_dir().join(format!("vmpath-neutron-{}", std::process::id()));
        // From here on the lab is ours to take down, whatever happens (Drop).
        let mut lab = Lab {
            dir,
            owned: true,
            info: Value::Null,
        };
        let t = Instant::now();
        let argv = [
            nlab().to_string_lossy().into_owned(),
            "up".into(),
            "--dir".into(),
            lab.dir.to_string_lossy().into_owned(),
            // the lab's watchdog takes it down after 15 min, should this process die
            "--ttl".into(),
            "900".into(),
            // nlab gives up by itself after this; `timeout` is the backstop
            "--timeout".into(),
            "400".into(),
        ];
        let out = run(&argv, 420);
        if !out.status.success() {
            // A lab that does not come up is a failure wherever it runs: its components are here.
            panic!(
                "lab/neutron/nlab up failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        eprintln!(
            "neutron lab up in {:.1} s:\n{}",
            t.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&out.stderr)
        );
        lab.load()?;
        Ok(lab)
    }

    fn load(&mut self) -> Result<(), String> {
        let p = self.dir.join("info.json");
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        self.info = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(())
    }

    fn s(&self, ptr: &str) -> String {
        match self.info.pointer(ptr) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => panic!("info.json has no {ptr}"),
        }
    }

    /// argv run on HOST (its network, mount and UTS namespace), within `secs`.
    fn on(&self, host: &str, argv: &[&str], secs: u64) -> Output {
        let enter = self.info["hosts"][host]["enter"]
            .as_array()
            .unwrap_or_else(|| panic!("info.json: no hosts.{host}.enter"));
        let mut full: Vec<String> = enter
            .iter()
            .map(|v| v.as_str().expect("enter is strings").to_string())
            .collect();
        full.extend(argv.iter().map(|s| s.to_string()));
        run(&full, secs)
    }

    /// argv on HOST, which must succeed; its stdout, trimmed.
    fn sh(&self, host: &str, argv: &[&str]) -> String {
        let out = self.on(host, argv, 60);
        assert!(
            out.status.success(),
            "{host}: {argv:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `vmpath ARGS --json` on HOST with `env` set: its exit code, document and everything it
    /// printed (stdout and stderr, to look for secrets in).
    fn vmpath_env(
        &self,
        host: &str,
        env: &[(String, String)],
        args: &[&str],
    ) -> (i32, Value, String) {
        let mut argv: Vec<String> = vec!["env".into()];
        argv.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        argv.push(VMPATH.into());
        argv.extend(args.iter().map(|s| s.to_string()));
        argv.push("--json".into());
        let out = self.on(host, &strs(&argv), 90);
        let code = out.status.code().unwrap_or(-1);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{host}: vmpath {args:?} (exit {code}): not JSON ({e}): {all}")
        });
        (code, doc, all)
    }

    /// lab/neutron/py/api.py on ctl with the lab admin's token: its stdout.
    fn api(&self, args: &[&str]) -> String {
        let mut argv = vec![
            "env".to_string(),
            "NLAB_KEYSTONE=http://127.0.0.1:5000/v3".into(),
            format!("NLAB_ADMIN_PW={}", self.s("/keystone/admin_password")),
            format!("NLAB_VMPATH_PW={}", self.s("/keystone/password")),
            "/usr/bin/python3".into(),
            format!("{}/lab/neutron/py/api.py", env!("CARGO_MANIFEST_DIR")),
            "http://127.0.0.1:9696/v2.0".into(),
        ];
        argv.extend(args.iter().map(|s| s.to_string()));
        self.sh("ctl", &strs(&argv))
    }

    /// `vmpath ARGS --json` on HOST: its exit code and document.
    fn vmpath(&self, host: &str, args: &[&str]) -> (i32, Value) {
        let mut argv = vec![VMPATH];
        argv.extend_from_slice(args);
        argv.push("--json");
        let out = self.on(host, &argv, 90);
        let code = out.status.code().unwrap_or(-1);
        let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{host}: vmpath {args:?} (exit {code}): not JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, doc)
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn checks(doc: &Value) -> &Vec<Value> {
    doc["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks in {doc:#}"))
}

/// The ids of the checks that are not ok.
fn not_ok(doc: &Value) -> BTreeSet<String> {
    checks(doc)
        .iter()
        .filter(|c| c["status"] != "ok")
        .map(|c| c["id"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn assert_healthy_walk(lab: &Lab, target: &str, what: &str) -> Value {
    let (code, doc) = lab.vmpath("hv1", &["walk", target]);
    assert_eq!(code, 0, "{what}: walk {target} is not all ok: {doc:#}");
    assert_eq!(doc["design"], "ovs", "{what}: {doc:#}");
    for c in checks(&doc) {
        assert_eq!(c["status"], "ok", "{what}: {c:#}");
        let id = c["id"].as_str().unwrap_or("");
        assert!(
            !vmpath::check::CATALOGUE.iter().any(|(r, _)| *r == id),
            "{what}: the routed design's check {id} ran on an OVS compute node: {doc:#}"
        );
    }
    doc
}

/// Plant a fault on hv1, walk at once (the agent's periodic work could undo it), require exactly
/// `want` to fail (nothing else not ok) with exit 2, clear it, require an all-ok walk again.
fn fault_case(
    lab: &Lab,
    name: &str,
    plant: &[&[&str]],
    walk: &[&str],
    want: &[&str],
    clear: &[&[&str]],
) {
    for c in plant {
        lab.sh("hv1", c);
    }
    let (code, doc) = lab.vmpath("hv1", walk);
    for c in clear {
        lab.sh("hv1", c);
    }
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    assert_eq!(not_ok(&doc), want, "fault {name}: {doc:#}");
    assert_eq!(code, 2, "fault {name}: {doc:#}");
    eprintln!("fault {name}: detected by {want:?} only");
    assert_healthy_walk(
        lab,
        &lab.s("/vm/port_id"),
        &format!("after clearing {name}"),
    );
}

/// SIGCONT for a SIGSTOPped process, also when an assertion fails while it is stopped.
struct Resume(i32);
impl Drop for Resume {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a PID this test stopped itself.
        unsafe {
            libc::kill(self.0, libc::SIGCONT);
        }
    }
}

#[test]
fn real_neutron_agents_compute_node_and_gateways() {
    let t0 = Instant::now();
    let lab = match Lab::start() {
        Ok(l) => l,
        Err(e) if in_ci() => panic!("the Neutron lab cannot run in CI: {e}"),
        Err(e) => {
            eprintln!("SKIPPED (not in CI): {e}");
            return;
        }
    };
    if lab.owned {
        // The hard bound: past the budget, take the lab down and end the test process, wherever
        // the test is (every command it runs has its own timeout too).
        let dir = lab.dir.clone();
        std::thread::spawn(move || {
            std::thread::sleep(BUDGET.saturating_sub(t0.elapsed()));
            eprintln!("tests/neutron.rs: over its budget of {BUDGET:?}: taking the lab down");
            let _ = Command::new(nlab())
                .args(["down", "--dir"])
                .arg(&dir)
                .output();
            std::process::exit(101);
        });
    }
    let port = lab.s("/vm/port_id");
    let tap = lab.s("/vm/tap");
    let mac = lab.s("/vm/mac");
    let mtu: u32 = lab.s("/network/mtu").parse().expect("mtu");

    // 1. hv1: the VM's port by UUID, tap and MAC; the agent's tag and the OpenFlow port.
    let doc = assert_healthy_walk(&lab, &port, "healthy");
    let vm_uuid = lab.s("/vm/vm_uuid");
    for t in [tap.as_str(), mac.as_str(), vm_uuid.as_str()] {
        assert_healthy_walk(&lab, t, "healthy");
    }
    let tag = lab.sh(
        "hv1",
        &["ovs-vsctl", "--timeout=10", "get", "Port", &tap, "tag"],
    );
    let ofport = lab.sh(
        "hv1",
        &[
            "ovs-vsctl",
            "--timeout=10",
            "get",
            "Interface",
            &tap,
            "ofport",
        ],
    );
    assert_eq!(doc["port"]["port_id"], port.as_str(), "{doc:#}");
    assert_eq!(doc["port"]["local_vlan"].to_string(), tag, "{doc:#}");
    assert_eq!(doc["port"]["ofport"].to_string(), ofport, "{doc:#}");
    assert_eq!(doc["port"]["mac"], mac.as_str(), "{doc:#}");
    assert_eq!(doc["port"]["plug"], "native", "{doc:#}");

    // 2. Neutron as the source of the desired state (Keystone, the API, the router's agents).
    neutron_source(&lab);

    // 3. faults on hv1.
    let vs = |args: &[&str]| -> Vec<String> {
        let mut v = vec!["ovs-vsctl".to_string(), "--timeout=10".into()];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    };
    let dead = vs(&["set", "Port", &tap, "tag=4095"]);
    let undead = vs(&["set", "Port", &tap, &format!("tag={tag}")]);
    fault_case(
        &lab,
        "port-dead",
        &[&strs(&dead)],
        &["walk", &port],
        &["brint.tag"],
        &[&strs(&undead)],
    );

    let low = (mtu - 100).to_string();
    let net_mtu = mtu.to_string();
    let no_req = vs(&["clear", "Interface", &tap, "mtu_request"]);
    let req = vs(&["set", "Interface", &tap, &format!("mtu_request={mtu}")]);
    fault_case(
        &lab,
        "tap-mtu",
        &[&strs(&no_req), &["ip", "link", "set", &tap, "mtu", &low]],
        &["walk", &port, "--mtu", &net_mtu],
        &["vif.mtu"],
        &[&["ip", "link", "set", &tap, "mtu", &net_mtu], &strs(&req)],
    );

    // The tunnel's local_ip is on br-phy's internal port (userspace datapath); its uplink eth1.
    let uplink = lab.s("/hosts/hv1/underlay_if");
    let uplink_mtu = lab.sh("hv1", &["cat", &format!("/sys/class/net/{uplink}/mtu")]);
    let short = (mtu + 50 - 1).to_string();
    fault_case(
        &lab,
        "underlay-mtu",
        &[&["ip", "link", "set", &uplink, "mtu", &short]],
        &["walk", &port],
        &["tunnel.mtu"],
        &[&["ip", "link", "set", &uplink, "mtu", &uplink_mtu]],
    );

    // A tunnel to a gateway removed: the tunnels that exist are all fine, but br-tun's flows still
    // send the network's frames to the removed port's OpenFlow number (the agent does not put the
    // port back by itself: it is not recreated within a minute).
    let gw_ip = lab.s("/hosts/net1/local_ip");
    let tunnels = lab.sh("hv1", &strs(&vs(&["list-ports", "br-tun"])));
    let tunnel = tunnels
        .lines()
        .filter(|p| p.starts_with("vxlan-"))
        .find(|p| {
            lab.sh(
                "hv1",
                &strs(&vs(&["get", "Interface", p, "options:remote_ip"])),
            ) == format!("\"{gw_ip}\"")
        })
        .unwrap_or_else(|| panic!("no tunnel to {gw_ip} in br-tun: {tunnels}"))
        .to_string();
    let t_ofport = lab.sh("hv1", &strs(&vs(&["get", "Interface", &tunnel, "ofport"])));
    let t_opts = lab.sh("hv1", &strs(&vs(&["get", "Interface", &tunnel, "options"])));
    lab.sh("hv1", &strs(&vs(&["del-port", "br-tun", &tunnel])));
    let (code, doc) = lab.vmpath("hv1", &["walk", &port]);
    let lost: Vec<&Value> = checks(&doc)
        .iter()
        .filter(|c| c["status"] != "ok")
        .collect();
    eprintln!(
        "fault tunnel-removed ({tunnel} to {gw_ip}, OpenFlow port {t_ofport}): walk exit {code}, not ok: {:?}",
        lost.iter().map(|c| format!("{} {}", c["id"], c["subject"])).collect::<Vec<_>>()
    );
    let mut readd = vs(&[
        "add-port",
        "br-tun",
        &tunnel,
        "--",
        "set",
        "Interface",
        &tunnel,
        "type=vxlan",
    ]);
    readd.push(format!("ofport_request={t_ofport}"));
    let opts = t_opts.trim_matches(|c| c == '{' || c == '}');
    for kv in opts.split(", ") {
        readd.push(format!("options:{}", kv.replace('"', "")));
    }
    lab.sh("hv1", &strs(&readd));
    assert_eq!(
        lab.sh("hv1", &strs(&vs(&["get", "Interface", &tunnel, "ofport"]))),
        t_ofport
    );
    // Found by the tunnel check alone: the flows send to an OpenFlow port that no longer exists.
    assert_eq!(code, 2, "tunnel-removed: {doc:#}");
    assert_eq!(
        lost.iter()
            .map(|c| (
                c["id"].as_str().unwrap_or(""),
                c["subject"].as_str().unwrap_or("")
            ))
            .collect::<Vec<_>>(),
        [("tunnel.port", format!("ofport {t_ofport}").as_str())],
        "tunnel-removed: {doc:#}"
    );
    assert_healthy_walk(&lab, &port, "after restoring the tunnel");

    // A flow the VM's traffic needs deleted from br-int (table 94's NORMAL, which forwards what
    // the firewall accepted), and a security-group rule of the OVS firewall dropping the VM's
    // new connections (a table-72 flow above the agent's): each found by its own check.
    let of = |args: &[&str]| -> Vec<String> {
        let mut v = vec!["ovs-ofctl".to_string()];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    };
    let del94 = of(&["--strict", "del-flows", "br-int", "table=94,priority=1"]);
    let add94 = of(&["add-flow", "br-int", "table=94,priority=1,actions=NORMAL"]);
    fault_case(
        &lab,
        "br-int-flow",
        &[&strs(&del94)],
        &["walk", &port],
        &["flow.egress"],
        &[&strs(&add94)],
    );
    let reg5: u64 = ofport.parse().expect("ofport");
    let sg_flow = format!("table=72,priority=80,ct_state=+new-est,ip,reg5={reg5:#x}");
    let sg_add = of(&[
        "add-flow",
        "br-int",
        &format!("{sg_flow},actions=resubmit(,93)"),
    ]);
    let sg_del = of(&["--strict", "del-flows", "br-int", &sg_flow]);
    lab.sh("hv1", &strs(&sg_add));
    let (code, doc) = lab.vmpath("hv1", &["walk", &port]);
    lab.sh("hv1", &strs(&sg_del));
    assert_eq!(code, 2, "sg-drop: {doc:#}");
    let bad: Vec<(String, String)> = checks(&doc)
        .iter()
        .filter(|c| c["status"] != "ok")
        .map(|c| {
            (
                c["id"].as_str().unwrap_or("").to_string(),
                c["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        bad,
        [
            ("sg.ovs".to_string(), "fail".to_string()),
            ("flow.egress".to_string(), "unknown".to_string())
        ],
        "sg-drop: {doc:#}"
    );
    eprintln!("fault sg-drop: detected by sg.ovs (flow.egress not judged past it)");
    assert_healthy_walk(&lab, &port, "after clearing sg-drop");

    // ovs-vswitchd not answering: the flow checks are unknown, within about --timeout.
    let vswitchd = lab.info["hosts"]["hv1"]["daemons"]["ovs-vswitchd"]
        .as_i64()
        .expect("hv1's ovs-vswitchd pid") as i32;
    let cmdline = std::fs::read(format!("/proc/{vswitchd}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("ovs-vswitchd"),
        "pid {vswitchd} is not ovs-vswitchd"
    );
    {
        // SAFETY: kill(2) with the recorded PID of the lab's ovs-vswitchd, checked just above.
        assert_eq!(unsafe { libc::kill(vswitchd, libc::SIGSTOP) }, 0);
        let _resume = Resume(vswitchd);
        let t = Instant::now();
        let (code, doc) = lab.vmpath("hv1", &["walk", &port, "--timeout", "2s"]);
        let took = t.elapsed();
        assert_eq!(code, 3, "{doc:#}");
        assert_eq!(
            not_ok(&doc),
            BTreeSet::from(["flow.egress".to_string()]),
            "{doc:#}"
        );
        assert!(
            took < Duration::from_secs(6),
            "walk took {took:?} with --timeout 2s"
        );
        eprintln!(
            "ovs-vswitchd stopped: walk exit 3 after {:.1} s",
            took.as_secs_f64()
        );
    }
    assert_healthy_walk(&lab, &port, "after ovs-vswitchd resumed");

    // ovsdb-server not answering: exit 3 within about --timeout.
    let ovsdb = lab.info["hosts"]["hv1"]["daemons"]["ovsdb-server"]
        .as_i64()
        .expect("hv1's ovsdb-server pid") as i32;
    let cmdline = std::fs::read(format!("/proc/{ovsdb}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("ovsdb-server"),
        "pid {ovsdb} is not ovsdb-server"
    );
    {
        // SAFETY: kill(2) with the recorded PID of the lab's ovsdb-server, checked just above.
        assert_eq!(unsafe { libc::kill(ovsdb, libc::SIGSTOP) }, 0);
        let _resume = Resume(ovsdb);
        let t = Instant::now();
        let (code, doc) = lab.vmpath("hv1", &["walk", &port, "--timeout", "2s"]);
        let took = t.elapsed();
        assert_eq!(code, 3, "{doc:#}");
        assert!(
            took < Duration::from_secs(6),
            "walk took {took:?} with --timeout 2s"
        );
        eprintln!(
            "ovsdb-server stopped: walk exit 3 after {:.1} s",
            took.as_secs_f64()
        );
    }
    assert_healthy_walk(&lab, &port, "after ovsdb-server resumed");

    // 4. the gateways: exactly one primary, every router check ok on both; node checks judged.
    let router = lab.s("/router/id");
    let mut primaries = Vec::new();
    let peer = lab.dir.join("routers-net1.json");
    for gw in ["net1", "net2"] {
        let (code, doc) = lab.vmpath(gw, &["routers"]);
        if gw == "net1" {
            std::fs::write(&peer, doc.to_string()).expect("write the peer document");
        }
        let r = &doc["routers"][0];
        assert_eq!(r["router_id"], router.as_str(), "{gw}: {doc:#}");
        if r["views"]["addresses"] == "primary" {
            primaries.push(gw);
        }
        judge_gateway(gw, "routers", code, &doc, &r["checks"]);
        let mut args = vec!["router", router.as_str()];
        let peer_s = peer.to_string_lossy().into_owned();
        if gw == "net2" {
            args.extend(["--peer", peer_s.as_str()]);
        }
        let (code, doc) = lab.vmpath(gw, &args);
        judge_gateway(gw, "router", code, &doc, &doc["routers"][0]["checks"]);
    }
    assert_eq!(primaries.len(), 1, "primaries: {primaries:?}");
    assert_eq!(
        primaries[0],
        lab.s("/router/primary"),
        "vmpath and the state files disagree on the primary"
    );
    eprintln!(
        "gateways: {} primary (API: {})",
        primaries[0],
        lab.s("/router/api_ha_states")
    );
    assert!(t0.elapsed() < BUDGET, "the test took {:?}", t0.elapsed());
}

/// The VM port's OpenFlow port number, from a walk.
fn doc_ofport(lab: &Lab, port: &str, env: &[(String, String)]) -> u64 {
    let (_, doc, _) = lab.vmpath_env("hv1", env, &["walk", port]);
    doc["port"]["ofport"]
        .as_u64()
        .unwrap_or_else(|| panic!("no ofport: {doc:#}"))
}

/// The Keystone POSTs of /v3/auth/tokens from hv1 so far (Keystone's access log).
fn keystone_auths(lab: &Lab) -> usize {
    std::fs::read_to_string(lab.dir.join("logs/keystone-access.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("192.0.2.21 ") && l.contains("POST /v3/auth/tokens"))
        .count()
}

fn check<'a>(doc: &'a Value, id: &str) -> &'a Value {
    checks(doc)
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {doc:#}"))
}

/// `walk --source neutron` on hv1 through the lab's real Keystone 30 and Neutron 29: password
/// (clouds.yaml + secure.yaml), application-credential and token (OS_* variables) auth; the
/// token cached across walks (one Keystone call for many); the trace towards the router's qr-
/// MAC and gateway address and the hand-off naming the router's primary; a port bound to
/// another host, a failed binding, a port Neutron does not have, the router's MAC sent to the
/// standby gateway, and Neutron not answering.
fn neutron_source(lab: &Lab) {
    let os = lab.dir.join("os");
    let xdg = lab.dir.join("xdg");
    std::fs::create_dir_all(&os).expect("os dir");
    let _ = std::fs::remove_dir_all(&xdg);
    std::fs::create_dir_all(&xdg).expect("xdg dir");
    std::fs::set_permissions(&xdg, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod xdg");
    let url = lab.s("/keystone/url");
    let password = lab.s("/keystone/password");
    let ac: Value = serde_json::from_str(
        &lab.api(&["appcred", &format!("vmpath-test-{}", std::process::id())]),
    )
    .expect("appcred");
    let ac_secret = ac["secret"].as_str().expect("secret").to_string();
    std::fs::write(
        os.join("clouds.yaml"),
        format!(
            "clouds:\n  nlab:\n    auth:\n      auth_url: {url}\n      username: vmpath\n      project_name: service\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n    interface: public\n  nlab-ac:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: {url}\n      application_credential_id: {}\n    region_name: RegionOne\n",
            ac["id"].as_str().expect("id")
        ),
    )
    .expect("clouds.yaml");
    std::fs::write(
        os.join("secure.yaml"),
        format!("clouds:\n  nlab:\n    auth:\n      password: {password}\n  nlab-ac:\n    auth:\n      application_credential_secret: {ac_secret}\n"),
    )
    .expect("secure.yaml");
    let env = |cloud: &str| -> Vec<(String, String)> {
        vec![
            (
                "OS_CLIENT_CONFIG_FILE".into(),
                os.join("clouds.yaml").display().to_string(),
            ),
            (
                "OS_CLIENT_SECURE_FILE".into(),
                os.join("secure.yaml").display().to_string(),
            ),
            ("OS_CLOUD".into(), cloud.into()),
            ("XDG_RUNTIME_DIR".into(), xdg.display().to_string()),
        ]
    };
    let port = lab.s("/vm/port_id");
    let router = lab.s("/router/id");
    let primary = lab.s("/router/primary");
    let gw4 = lab.s("/network/gateway4");
    let no_secret = |all: &str, what: &str| {
        for s in [password.as_str(), ac_secret.as_str()] {
            assert!(!all.contains(s), "{what}: a secret was printed: {all}");
        }
    };

    // The router interface holding the gateway address, as the API lists it.
    let rports: Value = serde_json::from_str(&lab.api(&[
        "get",
        &format!(
            "/ports?device_id={router}&network_id={}",
            lab.s("/network/id")
        ),
    ]))
    .expect("router ports");
    let qr_mac = rports["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["fixed_ips"].to_string().contains(&format!("\"{gw4}\"")))
        .and_then(|p| p["mac_address"].as_str())
        .unwrap_or_else(|| panic!("no router port holds {gw4}: {rports}"))
        .to_string();

    // Password auth: a new token (one Keystone call), then the cached one for the next walks.
    let before = keystone_auths(lab);
    let mut times = Vec::new();
    for i in 0..3 {
        let (code, doc, all) =
            lab.vmpath_env("hv1", &env("nlab"), &["walk", &port, "--source", "neutron"]);
        no_secret(&all, "password walk");
        assert_eq!(code, 0, "walk --source neutron: {doc:#}");
        assert!(checks(&doc).iter().all(|c| c["status"] == "ok"), "{doc:#}");
        let src = &doc["source"];
        assert_eq!(src["desired"], "neutron", "{doc:#}");
        assert_eq!(
            src["token"],
            if i == 0 { "new" } else { "cached" },
            "{doc:#}"
        );
        assert_eq!(src["keystone_calls"], if i == 0 { 1 } else { 0 }, "{doc:#}");
        times.push((
            src["elapsed_ms"].as_u64().unwrap_or(0),
            src["api_calls"].as_u64().unwrap_or(0),
        ));
        assert_eq!(check(&doc, "neutron.port")["status"], "ok", "{doc:#}");
        // The trace goes towards the router's qr- MAC and the gateway address, and the hand-off
        // names the router and its primary.
        let egress = check(&doc, "flow.egress")["evidence"].to_string();
        let next = check(&doc, "path.next")["summary"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(
            egress.contains(&format!("dl_dst={qr_mac}"))
                && egress.contains(&format!("nw_dst={gw4}")),
            "{egress}"
        );
        assert!(
            next.contains(&format!("vmpath router {router}"))
                && next.contains(&qr_mac)
                && next.contains(&format!("primary {primary}")),
            "{next}"
        );
    }
    assert_eq!(
        keystone_auths(lab) - before,
        1,
        "three walks, one Keystone call"
    );
    eprintln!("neutron source: password auth, three walks, one Keystone call; (Neutron ms, API calls): {times:?}");

    // Application credential (clouds.yaml + secure.yaml), and a token in OS_* variables.
    let (code, doc, all) = lab.vmpath_env(
        "hv1",
        &env("nlab-ac"),
        &["walk", &port, "--source", "neutron"],
    );
    no_secret(&all, "appcred walk");
    assert_eq!(
        (code, doc["source"]["desired"].as_str()),
        (0, Some("neutron")),
        "{doc:#}"
    );
    let token = lab.api(&["vmpath-token"]);
    let tok_env = vec![
        ("OS_AUTH_URL".to_string(), url.clone()),
        ("OS_AUTH_TYPE".into(), "token".into()),
        ("OS_TOKEN".into(), token.clone()),
        ("OS_PROJECT_NAME".into(), "service".into()),
        ("OS_PROJECT_DOMAIN_NAME".into(), "Default".into()),
        ("OS_REGION_NAME".into(), "RegionOne".into()),
        ("XDG_RUNTIME_DIR".into(), xdg.display().to_string()),
        (
            "OS_CLIENT_CONFIG_FILE".into(),
            "/nonexistent/clouds.yaml".into(),
        ),
    ];
    let (code, doc, all) = lab.vmpath_env("hv1", &tok_env, &["walk", &port, "--source", "neutron"]);
    assert!(!all.contains(&token), "the token was printed: {all}");
    assert_eq!(
        (code, doc["source"]["cloud"].as_str()),
        (0, Some("envvars")),
        "{doc:#}"
    );
    eprintln!("neutron source: application credential and token (OS_*) auth: all ok");

    // Neutron's security groups against the OVS firewall (sg.neutron): a rule added through the
    // API is enforced; its flow deleted on hv1 (a rule Neutron has, missing on the host) is a
    // failure; a flow letting in a port no rule allows is a warning.
    let rule = lab.api(&["sg-rule", &port, "tcp", "22", "198.51.100.0/24"]);
    let ofport = doc_ofport(lab, &port, &env("nlab"));
    let rule_flow = format!("table=82,tcp,reg5={ofport:#x},nw_src=198.51.100.0/24,tp_dst=22");
    let t = Instant::now();
    while !lab
        .sh("hv1", &["ovs-ofctl", "dump-flows", "br-int", &rule_flow])
        .contains("tp_dst=22")
        && t.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(500));
    }
    let (code, doc, _) = lab.vmpath_env("hv1", &env("nlab"), &["walk", &port]);
    assert_eq!(code, 0, "with the tcp/22 rule: {doc:#}");
    let c = check(&doc, "sg.neutron");
    assert!(
        c["evidence"].to_string().contains(&rule)
            && c["summary"].as_str().unwrap_or("").contains("2 traced"),
        "{c:#}"
    );
    lab.sh("hv1", &["ovs-ofctl", "del-flows", "br-int", &rule_flow]);
    let (code, doc, _) = lab.vmpath_env("hv1", &env("nlab"), &["walk", &port]);
    assert_eq!(code, 2, "rule flow deleted: {doc:#}");
    assert_eq!(
        not_ok(&doc),
        BTreeSet::from(["sg.neutron".to_string()]),
        "{doc:#}"
    );
    assert!(
        check(&doc, "sg.neutron")["summary"]
            .as_str()
            .unwrap_or("")
            .contains(&rule),
        "{doc:#}"
    );
    eprintln!("fault sg-rule-missing-on-host: detected by sg.neutron only");
    // The rule removed through the API: the agent rebuilds the port's firewall (bounded wait for
    // an all-ok walk); then a flow letting in tcp/4444, which no rule allows.
    lab.api(&["delete-sg-rule", &rule]);
    let all_ok = |what: &str| {
        let t = Instant::now();
        loop {
            let (code, doc, _) = lab.vmpath_env("hv1", &env("nlab"), &["walk", &port]);
            if code == 0 {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "{what}: no all-ok walk within 60 s: {doc:#}"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    };
    all_ok("after removing the rule");
    let open = format!("table=82,priority=90,ct_state=+new-est,tcp,reg5={ofport:#x},tp_dst=4444");
    lab.sh(
        "hv1",
        &[
            "ovs-ofctl",
            "add-flow",
            "br-int",
            &format!(
                "{open},actions=ct(commit,zone=NXM_NX_REG6[0..15]),output:{ofport},resubmit(,92)"
            ),
        ],
    );
    let (code, doc, _) = lab.vmpath_env("hv1", &env("nlab"), &["walk", &port]);
    lab.sh(
        "hv1",
        &["ovs-ofctl", "--strict", "del-flows", "br-int", &open],
    );
    assert_eq!(
        not_ok(&doc),
        BTreeSet::from(["sg.neutron".to_string()]),
        "{doc:#}"
    );
    assert_eq!(
        (code, check(&doc, "sg.neutron")["status"].as_str()),
        (1, Some("warn")),
        "{doc:#}"
    );
    eprintln!("fault sg-extra-on-host: sg.neutron warns (and only it)");
    all_ok("after removing the extra flow");

    // The gateways: Neutron's L3 agents (ha_state per host) agree with each node's keepalived,
    // state file and addresses.
    for gw in ["net1", "net2"] {
        let (code, doc, _) = lab.vmpath_env(gw, &env("nlab"), &["router", &router, "--no-listen"]);
        let c = doc["routers"][0]["checks"]
            .as_array()
            .and_then(|v| v.iter().find(|c| c["id"] == "router.neutron"))
            .unwrap_or_else(|| panic!("{gw}: no router.neutron in {doc:#}"))
            .clone();
        assert_eq!(c["status"], "ok", "{gw}: {c:#}");
        let role = if gw == primary {
            "active (primary)"
        } else {
            "standby (backup)"
        };
        assert!(
            c["summary"].as_str().unwrap_or("").contains(role),
            "{gw}: {c:#}"
        );
        assert_eq!(code, 0, "{gw}: {doc:#}");
    }
    eprintln!("neutron source: router.neutron agrees on both gateways");

    // The whole path, from ctl: Neutron names hv1 and the router's two gateways; vmpath runs
    // there over SSH (real sshd in each host, a key made here, BatchMode), all at once.
    let sshd = lab.dir.join("ssh-client");
    std::fs::create_dir_all(&sshd).expect("ssh dir");
    let key = sshd.join("id_ed25519");
    let _ = std::fs::remove_file(&key);
    let _ = std::fs::remove_file(sshd.join("id_ed25519.pub"));
    let kg = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "vmpath-test", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen");
    assert!(kg.status.success(), "ssh-keygen: {kg:?}");
    let pubkey = std::fs::read_to_string(sshd.join("id_ed25519.pub")).expect("pub key");
    std::fs::write(lab.s("/hosts/hv1/ssh/authorized_keys"), &pubkey).expect("authorized_keys");
    let mut cfg = String::new();
    for h in ["hv1", "net1", "net2"] {
        cfg.push_str(&format!(
            "Host {h}\n  HostName {}\n",
            lab.s(&format!("/hosts/{h}/ssh/address"))
        ));
    }
    cfg.push_str(&format!(
        "Host *\n  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  StrictHostKeyChecking accept-new\n",
        key.display(),
        sshd.join("known_hosts").display()
    ));
    let cfg_file = sshd.join("config");
    std::fs::write(&cfg_file, cfg).expect("ssh config");
    let cfg_s = cfg_file.display().to_string();
    let path_args = [
        "path",
        port.as_str(),
        "--ssh-config",
        cfg_s.as_str(),
        "--remote-vmpath",
        VMPATH,
    ];
    let t = Instant::now();
    let (code, doc, all) = lab.vmpath_env("ctl", &env("nlab"), &path_args);
    no_secret(&all, "path");
    assert_eq!(code, 0, "path: {doc:#}");
    assert_eq!(doc["design"], "overlay", "{doc:#}");
    let hops: Vec<(String, String, String)> = doc["hops"]
        .as_array()
        .expect("hops")
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap_or("").to_string(),
                h["role"].as_str().unwrap_or("").to_string(),
                h["verdict"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let standby = if primary == "net1" { "net2" } else { "net1" };
    assert_eq!(
        hops,
        vec![
            (
                "hv1".to_string(),
                "hypervisor".to_string(),
                "ok".to_string()
            ),
            (
                primary.clone(),
                "primary gateway".to_string(),
                "ok".to_string()
            ),
            (
                standby.to_string(),
                "standby gateway".to_string(),
                "ok".to_string()
            ),
        ],
        "{doc:#}"
    );
    eprintln!("neutron source: path over SSH: hv1, {primary} (primary), {standby} (standby) all ok in {:.1} s", t.elapsed().as_secs_f64());
    // The standby's sshd not answering: a partial path, that hop unknown with the reason.
    let sshd_pid = lab.info["hosts"][standby]["daemons"]["sshd"]
        .as_i64()
        .expect("sshd pid") as i32;
    let cmdline = std::fs::read(format!("/proc/{sshd_pid}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("sshd"),
        "pid {sshd_pid} is not sshd"
    );
    {
        // SAFETY: kill(2) with the recorded PID of the lab's sshd on the standby, checked above.
        assert_eq!(unsafe { libc::kill(sshd_pid, libc::SIGSTOP) }, 0);
        let _resume = Resume(sshd_pid);
        let mut args = path_args.to_vec();
        args.extend(["--host-timeout", "5s"]);
        let t = Instant::now();
        let (code, doc, _) = lab.vmpath_env("ctl", &env("nlab"), &args);
        let took = t.elapsed();
        assert_eq!(code, 3, "path with {standby}'s sshd stopped: {doc:#}");
        let h = doc["hops"]
            .as_array()
            .and_then(|v| v.iter().find(|h| h["host"] == standby))
            .expect("standby hop");
        assert_eq!(h["verdict"], "unknown", "{doc:#}");
        assert!(
            h["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{doc:#}"
        );
        assert!(took < Duration::from_secs(15), "path took {took:?}");
        eprintln!("neutron source: path with {standby}'s sshd stopped: exit 3 in {:.1} s, the other hops shown", took.as_secs_f64());
    }

    // On a host that does not have the port (the gateway net2), Neutron says where it is bound.
    for t in [port.as_str(), lab.s("/vm/vm_uuid").as_str()] {
        let (code, doc, _) = lab.vmpath_env("net2", &env("nlab"), &["walk", t]);
        assert_eq!(code, 64, "{doc:#}");
        let m = doc["error"]["message"].as_str().unwrap_or("").to_string();
        assert!(
            m.contains(&format!("port {port}")) && m.contains("bound to host hv1"),
            "walk {t} on net2: {m}"
        );
    }

    // The router's MAC sent to the standby gateway: a unicast flow above the learned one sends
    // it into the tunnel to the standby's VTEP. The packet still leaves with the right VNI
    // (flow.egress ok); path.next says it goes to a host that does not route it.
    let standby = if primary == "net1" { "net2" } else { "net1" };
    let standby_ip = lab.s(&format!("/hosts/{standby}/local_ip"));
    let (_, doc, _) = lab.vmpath_env("hv1", &env("nlab"), &["walk", &port]);
    let tag = doc["port"]["local_vlan"].to_string();
    let vni = lab.s("/network/vni");
    let tunnels = lab.sh(
        "hv1",
        &["ovs-vsctl", "--timeout=10", "list-ports", "br-tun"],
    );
    let to_standby = tunnels
        .lines()
        .find(|p| {
            p.starts_with("vxlan-")
                && lab.sh(
                    "hv1",
                    &[
                        "ovs-vsctl",
                        "--timeout=10",
                        "get",
                        "Interface",
                        p,
                        "options:remote_ip",
                    ],
                ) == format!("\"{standby_ip}\"")
        })
        .unwrap_or_else(|| panic!("no tunnel to {standby_ip}: {tunnels}"))
        .to_string();
    let spec = format!("table=20,priority=5,dl_vlan={tag},dl_dst={qr_mac}");
    lab.sh(
        "hv1",
        &[
            "ovs-ofctl",
            "add-flow",
            "br-tun",
            &format!("{spec},actions=strip_vlan,load:{vni}->NXM_NX_TUN_ID[],output:{to_standby}"),
        ],
    );
    let (code, doc, _) = lab.vmpath_env("hv1", &env("nlab"), &["walk", &port]);
    lab.sh(
        "hv1",
        &["ovs-ofctl", "--strict", "del-flows", "br-tun", &spec],
    );
    assert_eq!(code, 2, "router MAC to the standby: {doc:#}");
    assert_eq!(
        not_ok(&doc),
        BTreeSet::from(["path.next".to_string()]),
        "{doc:#}"
    );
    let s = check(&doc, "path.next")["summary"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        s.contains(&standby_ip) && s.contains(&format!("active on {primary}")),
        "{s}"
    );
    eprintln!("fault router-mac-to-standby: detected by path.next only");

    // A tap on hv1 for a port Neutron binds to another host, for one whose binding failed, and
    // for one Neutron does not have: neutron.port names each; the agent marks each port dead
    // (brint.tag), as it should.
    let net = lab.s("/network/id");
    let other: Value = serde_json::from_str(&lab.api(&["port", &net, "net2"])).expect("port");
    let failed: Value = serde_json::from_str(&lab.api(&["port", &net, "hv9"])).expect("port");
    assert_eq!(failed["vif_type"], "binding_failed", "{failed}");
    let ghost = "0badc0de-0000-4000-8000-000000000001";
    let cases = [
        (
            "bound-elsewhere",
            other["id"].as_str().unwrap_or("").to_string(),
            other["mac"].as_str().unwrap_or("").to_string(),
            "to host net2, not to this host",
        ),
        (
            "binding-failed",
            failed["id"].as_str().unwrap_or("").to_string(),
            failed["mac"].as_str().unwrap_or("").to_string(),
            "binding on hv9 failed",
        ),
        (
            "deleted",
            ghost.to_string(),
            "fa:16:3e:0b:ad:01".to_string(),
            "Neutron has no port",
        ),
    ];
    for (name, id, mac, says) in &cases {
        let tap = format!("tap{}", &id[..11]);
        // A veth (its peer up, as a running VM's end would be), plugged the way os-vif does.
        let peer = format!("vp{}", &id[..11]);
        let mtu = lab.s("/network/mtu");
        lab.sh(
            "hv1",
            &[
                "ip", "link", "add", &tap, "mtu", &mtu, "type", "veth", "peer", "name", &peer,
                "mtu", &mtu,
            ],
        );
        lab.sh("hv1", &["ip", "link", "set", &peer, "up"]);
        lab.sh("hv1", &["ip", "link", "set", &tap, "up"]);
        lab.sh(
            "hv1",
            &[
                "ovs-vsctl",
                "--timeout=10",
                "--",
                "add-port",
                "br-int",
                &tap,
                "--",
                "set",
                "Interface",
                &tap,
                &format!("external_ids:iface-id={id}"),
                "external_ids:iface-status=active",
                &format!("external_ids:attached-mac={mac}"),
            ],
        );
        // Give the agent a moment to look at it (it leaves such a port without a local VLAN, or
        // marks it dead: brint.tag either way).
        std::thread::sleep(Duration::from_secs(2));
        let (code, doc, _) = lab.vmpath_env("hv1", &env("nlab"), &["walk", &tap]);
        lab.sh(
            "hv1",
            &["ovs-vsctl", "--timeout=10", "del-port", "br-int", &tap],
        );
        lab.sh("hv1", &["ip", "link", "del", &tap]);
        assert_eq!(code, 2, "{name}: {doc:#}");
        let c = check(&doc, "neutron.port");
        assert_eq!(c["status"], "fail", "{name}: {doc:#}");
        assert!(
            c["summary"].as_str().unwrap_or("").contains(says),
            "{name}: {c:#}"
        );
        let bad = not_ok(&doc);
        assert!(
            bad.iter().all(|i| i == "neutron.port" || i == "brint.tag"),
            "{name}: {bad:?} {doc:#}"
        );
        eprintln!("neutron source: {name} found by neutron.port ({bad:?} not ok)");
    }
    for p in [&other, &failed] {
        lab.api(&["delete-port", p["id"].as_str().unwrap_or("")]);
    }

    // Neutron not answering (its API server stopped): the walk falls back to the host's records,
    // neutron.port is unknown, nothing hangs.
    let api_pid = lab.info["hosts"]["ctl"]["daemons"]["neutron-api"]
        .as_i64()
        .expect("neutron-api pid") as i32;
    let cmdline = std::fs::read(format!("/proc/{api_pid}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("gunicorn"),
        "pid {api_pid} is not the API's gunicorn"
    );
    {
        // The recorded PID is gunicorn's master, which leads its own process group (nlab starts
        // it with setsid); its worker answers the requests: stop the group.
        // SAFETY: kill(2) with the process group of the lab's Neutron API server, checked above.
        assert_eq!(unsafe { libc::kill(-api_pid, libc::SIGSTOP) }, 0);
        let _resume = Resume(-api_pid);
        let t = Instant::now();
        let (code, doc, _) = lab.vmpath_env(
            "hv1",
            &env("nlab"),
            &["walk", &port, "--source", "neutron", "--timeout", "2s"],
        );
        let took = t.elapsed();
        assert_eq!(code, 3, "Neutron down: {doc:#}");
        assert_eq!(
            not_ok(&doc),
            BTreeSet::from(["neutron.port".to_string()]),
            "{doc:#}"
        );
        assert_eq!(doc["source"]["desired"], "host", "{doc:#}");
        assert!(
            took < Duration::from_secs(8),
            "walk took {took:?} with Neutron down"
        );
        eprintln!(
            "neutron source: API stopped: exit 3 in {:.1} s, host records used",
            took.as_secs_f64()
        );
    }
}

/// Every router check and every node check ok, exit 0. (`mtu.vxlan` once counted the flat
/// external network's ports — qg-, br-ex's uplink, MTU 9050 — for the tunnels, although br-tun
/// carries only the tenant and HA networks' VLANs, MTU 9000: found on these real gateways.)
fn judge_gateway(gw: &str, cmd: &str, code: i32, doc: &Value, router_checks: &Value) {
    for c in router_checks
        .as_array()
        .unwrap_or_else(|| panic!("{gw}: no checks: {doc:#}"))
    {
        assert_eq!(c["status"], "ok", "{gw} {cmd}: {c:#}");
    }
    for c in doc["host_checks"]
        .as_array()
        .unwrap_or_else(|| panic!("{gw}: {doc:#}"))
    {
        assert_eq!(c["status"], "ok", "{gw} {cmd}: {c:#}");
    }
    assert_eq!(code, 0, "{gw} {cmd}: {doc:#}");
}
