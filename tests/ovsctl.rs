//! vmpath against a real ovs-vswitchd over its unixctl control socket (tests/ovsctl.sh: ovsdb-server
//! and ovs-vswitchd, userspace datapath, in a private network, mount and PID namespace, in a
//! mount namespace of their own as in a container): discovery through the pidfile of a
//! `--monitor`ed daemon and `/proc/PID/root`, one session for many commands, traces that end in
//! a VXLAN tunnel with a known VNI, on a neighbor cache miss, and dropped at known tables, the
//! flow dump, routes, neighbors, `dpif/show`, `version`, error replies, a socket that is not the
//! daemon's, and a socket that never answers. Skipped outside CI when not root or without Open
//! vSwitch (lab/setup installs it); fails in CI (CI=true) when it cannot run.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vmpath::collect::deadline::Deadline;
use vmpath::collect::ovsctl::{self, flows, replies, Outcome, Session};
use vmpath::collect::procs::ProcTable;
use vmpath::collect::trust::Policy;

mod private;

/// The VM's egress packet to its router's MAC.
const VM: &str = "in_port=tapvm0,dl_src=fa:16:3e:00:00:11,dl_dst=fa:16:3e:00:00:01,icmp,\
                  nw_src=198.18.0.11,nw_dst=203.0.113.1,nw_ttl=64,icmp_type=8";
/// The lab's VXLAN VNI (br-tun: `tun_id=0x3e9`).
const VNI: u32 = 1001;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn installed(bin: &str) -> bool {
    [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    .iter()
    .any(|d| Path::new(d).join(bin).exists())
}

/// Root and Open vSwitch: else skipped with a message, or a failure in CI.
fn can_run() -> bool {
    if !nix::unistd::geteuid().is_root() {
        assert!(!in_ci(), "tests/ovsctl.rs needs root in CI");
        eprintln!("SKIPPED (not in CI): needs root");
        return false;
    }
    let missing: Vec<&str> = [
        "ovsdb-tool",
        "ovsdb-server",
        "ovs-vswitchd",
        "ovs-vsctl",
        "ovs-ofctl",
        "unshare",
    ]
    .into_iter()
    .filter(|b| !installed(b))
    .collect();
    if !missing.is_empty() {
        assert!(
            !in_ci(),
            "{missing:?} not installed (lab/setup installs them)"
        );
        eprintln!("SKIPPED (not in CI): {missing:?} not installed (lab/setup installs them)");
        return false;
    }
    true
}

#[test]
fn a_real_ovs_vswitchd_over_its_control_socket() {
    if !can_run() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vmpath-ovsctl-lab-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("work dir");
    let exe = std::env::current_exe().expect("test binary");
    let t = Instant::now();
    let out = private::run(
        120,
        true,
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ovsctl.sh"),
        &[&dir.to_string_lossy(), &exe.to_string_lossy()],
        "OUTER_NETNS",
    );
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "tests/ovsctl.sh failed ({}; logs in {}):\n{shown}",
        out.status,
        dir.display()
    );
    assert!(
        shown.contains("lab_side ... ok"),
        "the lab side did not run:\n{shown}"
    );
    eprintln!("ovs-vswitchd lab: {:?}", t.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("literal")
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(10))
}

fn dropped_at(bridge: &str, table: u8, priority: u32) -> Outcome {
    Outcome::Dropped {
        at: Some(ovsctl::TableRef {
            bridge: bridge.into(),
            table,
            priority: Some(priority),
        }),
    }
}

/// Runs inside the namespace tests/ovsctl.sh builds (`VMPATH_OVSCTL_LAB` names its work
/// directory); elsewhere it does nothing.
#[test]
fn lab_side() {
    let Some(w) = std::env::var_os("VMPATH_OVSCTL_LAB").map(PathBuf::from) else {
        return;
    };
    let pidfile = |n: &str| -> u32 {
        let p = w.join(format!("run/{n}.pid"));
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .trim()
            .parse()
            .expect("pid")
    };
    let child = pidfile("ovs-vswitchd");

    // Discovery: the daemon (not its monitor), its socket through /proc/PID/root.
    let procs = ProcTable::scan().expect("scan /proc").procs;
    assert!(
        procs
            .iter()
            .any(|p| p.name == format!("ovs-vswitchd: monitoring pid {child} (healthy)")),
        "no monitor: {procs:#?}"
    );
    let found = ovsctl::discover(&procs, &Policy::default());
    let want = PathBuf::from(format!(
        "/proc/{child}/root/run/openvswitch/ovs-vswitchd.{child}.ctl"
    ));
    assert_eq!(
        found,
        [ovsctl::Vswitchd {
            pid: child,
            socket: want.clone(),
            untrusted: None
        }]
    );
    let sock = &found[0].socket;
    assert!(
        !Path::new("/run/openvswitch")
            .join(format!("ovs-vswitchd.{child}.ctl"))
            .exists(),
        "the daemons' /run/openvswitch is their own"
    );

    // The kernel's route to the tunnel's remote reaches OVS's table shortly after start.
    let t = Instant::now();
    let route = loop {
        match ovsctl::call(sock, "ovs/route/lookup", &["198.51.100.11"], &deadline()) {
            Ok(r) => break r,
            Err(e) if t.elapsed() < Duration::from_secs(10) => {
                assert!(e.to_string().contains("Not found"), "{e}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("no route to the tunnel's remote after 10 s: {e}"),
        }
    };
    let r = ovsctl::parse_route_lookup(&route).expect("route");
    assert_eq!(
        (r.dev.as_str(), r.src),
        ("br-phy", Some(ip("198.51.100.21")))
    );

    let mut s = Session::connect(sock, &deadline()).expect("connect");
    let v = ovsctl::parse_version(&s.call("version", &[]).expect("version")).expect("parses");
    let installed = std::fs::read_to_string(w.join("version")).expect("version file");
    assert_eq!(
        installed.trim(),
        format!("ovs-vswitchd (Open vSwitch) {}", v.version)
    );
    assert_eq!(v.program, "ovs-vswitchd");

    let trace = |s: &mut Session, args: &[&str]| {
        let text = s.call("ofproto/trace", args).expect("trace");
        (ovsctl::parse_trace(&text), text)
    };
    // The tunnel's neighbor is not known yet: OVS says so (and sends an ARP request).
    let (t, text) = trace(&mut s, &["br-int", VM]);
    assert_eq!(
        t.verdict(),
        Outcome::NeighborMiss {
            remote: ip("198.51.100.11")
        },
        "{text}"
    );
    let ok = s
        .call(
            "tnl/neigh/set",
            &["br-phy", "198.51.100.11", "02:00:00:00:00:11"],
        )
        .expect("neigh set");
    assert_eq!(ok.trim(), "OK");
    let n = ovsctl::parse_tnl_neigh(&s.call("tnl/neigh/show", &[]).expect("neigh"));
    assert!(
        n.iter()
            .any(|x| x.ip == ip("198.51.100.11") && x.mac == "02:00:00:00:00:11"),
        "{n:?}"
    );

    // Through conntrack (two passes) into the tunnel, VNI 1001.
    let (t, text) = trace(&mut s, &["br-int", VM]);
    assert_eq!(t.passes.len(), 2, "{text}");
    assert_eq!(t.passes[1].ct_state.as_deref(), Some("trk|new"));
    let Outcome::Tunnel { exits } = t.verdict() else {
        panic!("{:?}\n{text}", t.verdict());
    };
    assert_eq!(exits.len(), 1, "{exits:?}");
    assert_eq!((exits[0].remote, exits[0].vni), (ip("198.51.100.11"), VNI));
    let hit: Vec<(&str, u8)> = t.passes[1]
        .tables
        .iter()
        .map(|h| (h.bridge.as_str(), h.table))
        .collect();
    for want in [
        ("br-int", 72),
        ("br-int", 94),
        ("br-tun", 20),
        ("br-phy", 0),
    ] {
        assert!(hit.contains(&want), "{want:?} not in {hit:?}\n{text}");
    }

    // Dropped, each at a known table.
    let spoof = "in_port=tapvm0,dl_src=fa:16:3e:00:00:11,dl_dst=fa:16:3e:00:00:01,icmp,nw_src=198.18.0.99,nw_dst=203.0.113.1";
    assert_eq!(
        trace(&mut s, &["br-int", spoof]).0.verdict(),
        dropped_at("br-int", 93, 0)
    );
    let dead = "in_port=tapdead0,dl_src=fa:16:3e:00:00:44,dl_dst=fa:16:3e:00:00:01,icmp";
    assert_eq!(
        trace(&mut s, &["br-int", dead]).0.verdict(),
        dropped_at("br-int", 0, 2)
    );
    let vni = "in_port=vxlan-c633640b,tun_id=0x999,dl_src=fa:16:3e:00:00:01,dl_dst=fa:16:3e:00:00:11,icmp";
    assert_eq!(
        trace(&mut s, &["br-tun", vni]).0.verdict(),
        dropped_at("br-tun", 4, 0)
    );

    // Error replies name the command and what the daemon said; the session goes on.
    let e = s
        .call("ofproto/trace", &["nosuchbr", "in_port=1"])
        .expect_err("unknown bridge")
        .to_string();
    assert!(
        e.contains("ofproto/trace failed: nosuchbr: unknown bridge"),
        "{e}"
    );
    let e = s
        .call("ofproto/trace", &["br-int", "in_port=nosuchport,icmp"])
        .expect_err("unknown port")
        .to_string();
    assert!(e.contains("invalid or unknown port for in_port"), "{e}");
    let e = s
        .call("bridge/dump-flows", &["nosuchbr"])
        .expect_err("unknown bridge")
        .to_string();
    assert!(e.contains("bridge/dump-flows failed:"), "{e}");

    // br-tun's flows: VLAN 1 is VNI 1001, flooded to the tunnel's ofport 2.
    let tun = ovsctl::parse_dump_flows(&s.call("bridge/dump-flows", &["br-tun"]).expect("flows"));
    assert_eq!(flows::vni_of_vlan(&tun, 1), Some(VNI));
    assert_eq!(flows::vlan_of_vni(&tun, VNI), Some(1));
    assert_eq!(flows::floods(&tun)[0].outputs, [2]);
    let u = flows::unicasts(&tun);
    assert_eq!(
        (u[0].mac.as_str(), u[0].output, u[0].vni),
        ("fa:16:3e:00:00:01", Some(2), Some(VNI))
    );
    let int = ovsctl::parse_dump_flows(&s.call("bridge/dump-flows", &["br-int"]).expect("flows"));
    assert_eq!(flows::dropped_in_ports(&int), [4]);

    let dp = ovsctl::parse_dpif_show(&s.call("dpif/show", &[]).expect("dpif"));
    let int = dp.iter().find(|b| b.name == "br-int").expect("br-int");
    let vm = int
        .ports
        .iter()
        .find(|p| p.name == "tapvm0")
        .expect("tapvm0");
    assert_eq!(vm.ofport, 3);
    let (b, p) =
        replies::dp_port_name(&dp, None, vm.dp_port.expect("dp port")).expect("by dp port");
    assert_eq!((b.name.as_str(), p.name.as_str()), ("br-int", "tapvm0"));
    let routes = ovsctl::parse_route_show(&s.call("ovs/route/show", &[]).expect("routes"));
    let r = replies::route_for(&routes, ip("198.51.100.11")).expect("route");
    assert_eq!((r.dev.as_str(), r.prefix_len), ("br-phy", 24));
    drop(s);

    // Several commands on one connection: one result each.
    let r = ovsctl::calls(
        sock,
        &[
            ("ofproto/list", &[][..]),
            ("ofproto/trace", &["nosuchbr", "in_port=1"][..]),
            ("version", &[][..]),
        ],
        &deadline(),
    );
    assert!(
        r[0].as_deref()
            .is_ok_and(|l| l.lines().any(|b| b == "br-tun")),
        "{r:?}"
    );
    assert!(r[1].is_err() && r[2].is_ok(), "{r:?}");

    // A socket that is neither root's nor the daemon's is not asked.
    std::os::unix::fs::chown(&want, Some(65534), None).expect("chown");
    let again = ovsctl::discover(&ProcTable::scan().expect("scan").procs, &Policy::default());
    std::os::unix::fs::chown(&want, Some(0), None).expect("chown back");
    let why = again[0].untrusted.as_deref().unwrap_or_default();
    assert!(why.contains("belongs to uid 65534"), "{again:?}");

    // A listener that never answers: the call ends at its deadline and says so.
    let silent = w.join("silent.ctl");
    let _l = std::os::unix::net::UnixListener::bind(&silent).expect("bind");
    let t = Instant::now();
    let e = ovsctl::call(
        &silent,
        "version",
        &[],
        &Deadline::after(Duration::from_millis(500)),
    )
    .expect_err("silent")
    .to_string();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(e.contains("did not answer version within 500ms"), "{e}");
}
