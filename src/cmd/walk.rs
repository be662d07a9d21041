//! `vmpath walk TARGET`.

use std::path::PathBuf;

use clap::Args;

use crate::cli::GlobalArgs;
use crate::config::{self, Config};
use crate::model::exit;
use crate::output::{self, Style};
use crate::port::Overrides;
use crate::target::Target;
use crate::walk::{self, WalkOptions};

#[derive(Debug, Args)]
pub struct WalkArgs {
    #[command(flatten)]
    pub port: PortArgs,
    /// Evaluate one flow against the security group: [in:|out:]PROTO[/PORT][@PEER]
    /// (tcp/22, out:udp/53, icmp, tcp/443@203.0.113.10); `in` (default) is traffic to the VM
    #[arg(long, value_name = "FLOW")]
    pub flow: Option<String>,
}

/// The port and where to read its host state: shared by `walk` and `plumb`.
#[derive(Debug, Args)]
pub struct PortArgs {
    /// VM IPv4/IPv6 address, Neutron port UUID (or its 11-character prefix), tap name, or MAC
    #[arg(value_name = "TARGET")]
    pub target: String,
    /// How long to wait for each daemon (BIRD, FRR, firewall tools): 2s, 500ms
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Expected network MTU (default: dnsmasq's MTU option)
    #[arg(long, value_name = "BYTES")]
    pub mtu: Option<u32>,
    /// Expected gateway address on the tap, ADDR/LEN; repeat for IPv4 and IPv6
    /// (default: dnsmasq's router option, the other taps' gateway address)
    #[arg(long, value_name = "ADDR/LEN")]
    pub gateway: Vec<String>,
    /// The port's MAC, when the host's records are not to be trusted
    #[arg(long, value_name = "MAC")]
    pub mac: Option<String>,
    /// BIRD control socket (default: from the running bird's -s option)
    #[arg(long, value_name = "PATH")]
    pub bird_socket: Option<PathBuf>,
    /// FRR vty socket directory holding bgpd.vty (default: from the running bgpd's -N option)
    #[arg(long, value_name = "DIR")]
    pub frr_dir: Option<PathBuf>,
    /// dnsmasq hosts dir (default: from the running dnsmasq's --dhcp-hostsdir)
    #[arg(long, value_name = "DIR")]
    pub dhcp_hostsdir: Option<PathBuf>,
}

fn usage(msg: &str) -> u8 {
    eprintln!("vmpath walk: {msg}");
    exit::USAGE
}

/// Build the checked options from flags and the config file; `flow` is walk's `--flow`.
pub fn options(g: &GlobalArgs, a: &PortArgs, flow: Option<&str>) -> Result<WalkOptions, String> {
    let cfg = Config::load(g.config.as_deref())?;
    let target = Target::parse(&a.target)?;
    let timeout = config::parse_duration(
        a.timeout
            .as_deref()
            .or(cfg.timeout.as_deref())
            .unwrap_or("2s"),
    )?;
    let gw_src = if a.gateway.is_empty() {
        &cfg.gateways
    } else {
        &a.gateway
    };
    let gateways = gw_src
        .iter()
        .map(|g| config::parse_gateway(g))
        .collect::<Result<Vec<_>, _>>()?;
    let mac = match &a.mac {
        Some(m) => Some(
            crate::target::parse_mac(m)
                .ok_or_else(|| format!("invalid --mac '{m}': use aa:bb:cc:dd:ee:ff"))?,
        ),
        None => None,
    };
    if let Some(m) = a.mtu.or(cfg.mtu) {
        if !(68..=65535).contains(&m) {
            return Err(format!("invalid MTU {m}: 68..65535"));
        }
    }
    if let Some(f) = flow {
        crate::check::sg::parse_flow(f).map_err(|e| format!("invalid --flow: {e}"))?;
    }
    Ok(WalkOptions {
        target,
        flow: flow.map(str::to_string),
        timeout,
        overrides: Overrides {
            mtu: a.mtu.or(cfg.mtu),
            gateways,
            mac,
            ips: Vec::new(),
        },
        bird_socket: a.bird_socket.clone().or(cfg.bird_socket),
        frr_dir: a.frr_dir.clone().or(cfg.frr_dir),
        dhcp_hostsdir: a.dhcp_hostsdir.clone().or(cfg.dhcp_hostsdir),
    })
}

/// Missing privileges: the reason, or None when we may read everything.
pub fn privilege_problem() -> Option<String> {
    if nix::unistd::geteuid().is_root() {
        return None;
    }
    // CAP_NET_ADMIN (12) is what iptables-save, nft and the daemons' sockets need.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    if cap_eff & (1 << 12) != 0 {
        return None;
    }
    Some(
        "vmpath walk needs root (or CAP_NET_ADMIN): reading firewall rules (iptables-save, nft) and \
the routing daemons' control sockets is privileged. Run it with sudo."
            .into(),
    )
}

pub fn exec(g: &GlobalArgs, a: &WalkArgs) -> u8 {
    let opts = match options(g, &a.port, a.flow.as_deref()) {
        Ok(o) => o,
        Err(e) => return usage(&e),
    };
    if let Some(p) = privilege_problem() {
        eprintln!("vmpath walk: {p}");
        return exit::UNKNOWN;
    }
    // On a gateway node a router id names its qrouter namespace: the router's walk.
    if matches!(opts.target, Target::PortId(_) | Target::PortPrefix(_)) {
        if let Some(code) = crate::cmd::routers::walk_on_gateway(g, &opts.target) {
            return code;
        }
    }
    let report = match walk::run(&opts) {
        Ok(r) => r,
        Err(e) => {
            // Not a port here: on a gateway node, a tenant address names the router serving it.
            if matches!(opts.target, Target::Ip(_)) && e.exit_code == exit::USAGE {
                if let Some(code) = crate::cmd::routers::walk_on_gateway(g, &opts.target) {
                    return code;
                }
            }
            eprintln!("vmpath walk: {}", e.message);
            return e.exit_code;
        }
    };
    let res = output::emit(g.json, &report, |out| {
        let style = Style::detect(g.verbose);
        writeln!(
            out,
            "vmpath walk {} on {}: port {} on {} (matched by {})",
            report.target,
            report.host,
            report.port.port_id,
            report.port.tap,
            report.port.matched_by
        )?;
        output::render_checks(out, &report.checks, style)?;
        writeln!(
            out,
            "{}",
            output::verdict_line(
                report.verdict,
                &report.checks,
                &format!(
                    " ({} checks in {} ms)",
                    report.checks.len(),
                    report.elapsed_ms
                ),
                style
            )
        )
    });
    output::exit_after("walk", res, report.exit_code)
}
