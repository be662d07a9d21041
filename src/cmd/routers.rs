//! `vmpath routers` and `vmpath router ROUTER_ID` on a gateway node.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use comfy_table::{presets, ContentArrangement, Table};

use crate::cli::GlobalArgs;
use crate::config;
use crate::model::{exit, exit_code};
use crate::output::{self, Style};
use crate::routers::{self, Options, RoutersReport};

#[derive(Debug, Args)]
pub struct RoutersArgs {
    /// Directory of the host's named network namespaces
    #[arg(long, value_name = "DIR", default_value = "/run/netns")]
    pub netns_dir: PathBuf,
    /// Neutron's ha_confs directory (default: from keepalived's command lines)
    #[arg(long, value_name = "DIR")]
    pub ha_confs: Option<PathBuf>,
    /// The other gateway's `vmpath routers --json`: check that exactly one is primary
    #[arg(long, value_name = "FILE")]
    pub peer: Option<PathBuf>,
    /// How long to wait for each namespace's netlink answers: 2s, 500ms
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    pub timeout: String,
    /// Also listen for VRRP adverts on every ha- interface and ARP-probe each primary's gateway
    /// address (3 advert intervals; `router ID` does it unless --no-listen)
    #[arg(long)]
    pub listen: bool,
    /// With `router ID`: only the local state, no listening or probing
    #[arg(long, conflicts_with = "listen")]
    pub no_listen: bool,
    /// OVSDB unix socket to read (repeat; default: from running ovsdb-server processes)
    #[arg(long, value_name = "SOCKET")]
    pub ovsdb: Vec<PathBuf>,
    /// Do not ask keepalived for its own state (by default each router's keepalived gets its
    /// JSON-dump signal, `keepalived --signum=JSON`, and vmpath reads the keepalived.json it writes)
    #[arg(long)]
    pub no_dump: bool,
    /// Do not ask the node's BGP speaker about tenant prefixes (for gateways that do not
    /// announce them)
    #[arg(long)]
    pub no_bgp: bool,
    /// BIRD control socket (default: from the running bird's -s option)
    #[arg(long, value_name = "PATH")]
    pub bird_socket: Option<PathBuf>,
    /// FRR vty socket directory holding bgpd.vty (default: from the running bgpd's -N option)
    #[arg(long, value_name = "DIR")]
    pub frr_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RouterArgs {
    /// The router's UUID (its namespace is qrouter-<UUID>), or the start of it that names one
    /// router on this node (6a1d4f2e)
    #[arg(value_name = "ROUTER_ID")]
    pub router_id: String,
    #[command(flatten)]
    pub common: RoutersArgs,
}

fn options(g: &GlobalArgs, a: &RoutersArgs, only: Option<String>) -> Result<Options, String> {
    let cfg = config::Config::load(g.config.as_deref())?;
    let only_set = only.is_some();
    let timeout = config::parse_duration(&a.timeout).map_err(|e| format!("bad --timeout: {e}"))?;
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    Ok(Options {
        netns_dir: a.netns_dir.clone(),
        ha_confs: a.ha_confs.clone().or(cfg.ha_confs),
        only,
        peer: a.peer.clone(),
        timeout,
        workers: (cpus * 2).clamp(2, 16),
        wire: a.listen || (only_set && !a.no_listen),
        ovsdb: a.ovsdb.clone(),
        dump: !a.no_dump,
        bgp: !a.no_bgp,
        bgp_overrides: crate::collect::bgp::Overrides {
            bird_socket: a.bird_socket.clone().or(cfg.bird_socket),
            frr_dir: a.frr_dir.clone().or(cfg.frr_dir),
        },
    })
}

fn privileged() -> bool {
    nix::unistd::geteuid().is_root()
}

pub fn exec_routers(g: &GlobalArgs, a: &RoutersArgs) -> u8 {
    run(g, a, None)
}

pub fn exec_router(g: &GlobalArgs, a: &RouterArgs) -> u8 {
    if a.router_id.is_empty() || a.router_id.contains('/') {
        eprintln!("vmpath router: `{}` is not a router id", a.router_id);
        return exit::USAGE;
    }
    run(g, &a.common, Some(a.router_id.clone()))
}

/// The defaults of `vmpath router`, for `vmpath walk` given a router id or a tenant address.
fn defaults() -> RoutersArgs {
    RoutersArgs {
        netns_dir: PathBuf::from("/run/netns"),
        ha_confs: None,
        peer: None,
        timeout: "2s".into(),
        listen: false,
        no_listen: false,
        ovsdb: Vec::new(),
        no_dump: false,
        no_bgp: false,
        bird_socket: None,
        frr_dir: None,
    }
}

/// `vmpath walk TARGET` on a gateway node: the router that TARGET names (its id) or serves (a
/// tenant address behind it), if this node has it. `None` when TARGET is neither, so the walk
/// reports its own error.
pub fn walk_on_gateway(g: &GlobalArgs, target: &crate::target::Target) -> Option<u8> {
    use crate::target::Target;
    let mut a = defaults();
    if let Some(t) = config::Config::load(g.config.as_deref())
        .ok()
        .and_then(|c| c.timeout)
    {
        a.timeout = t;
    }
    let routers: Vec<String> = std::fs::read_dir(&a.netns_dir)
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("qrouter-"))
        .collect();
    if routers.is_empty() || !privileged() {
        return None;
    }
    let names: Vec<&str> = routers.iter().map(String::as_str).collect();
    let id = match target {
        Target::PortId(id) | Target::PortPrefix(id)
            if crate::routers::select_router(&names, id).is_ok() =>
        {
            id.clone()
        }
        Target::Ip(ip) => {
            // Which router's tenant prefix holds the address: a quick local read of every router.
            let mut quick = options(g, &a, None).ok()?;
            quick.dump = false;
            quick.bgp = false;
            quick.ovsdb = Vec::new();
            let rep = routers::run(&quick).ok()?;
            let r = rep.routers.iter().find(|r| {
                r.tenant_prefixes.iter().any(|p| {
                    crate::config::parse_gateway(p).is_ok_and(|(net, len)| {
                        crate::collect::netlink::prefix_contains(net, len, *ip)
                    })
                })
            })?;
            if !g.json {
                println!(
                    "vmpath walk {ip}: no port for it on this gateway node; it is behind router {} (tenant prefix {}):",
                    r.router_id,
                    r.tenant_prefixes.join(", ")
                );
            }
            r.router_id.clone()
        }
        _ => return None,
    };
    Some(run(g, &a, Some(id)))
}

fn run(g: &GlobalArgs, a: &RoutersArgs, only: Option<String>) -> u8 {
    let opts = match options(g, a, only.clone()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("vmpath: {e}");
            return exit::USAGE;
        }
    };
    if !privileged() {
        eprintln!(
            "vmpath: reading router namespaces needs root (setns into each qrouter namespace needs CAP_SYS_ADMIN): run it with sudo"
        );
        return exit::UNKNOWN;
    }
    let rep = match routers::run(&opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vmpath: {e}");
            return if only.is_some() {
                exit::USAGE
            } else {
                exit::UNKNOWN
            };
        }
    };
    let res = output::emit(g.json, &rep, |out| {
        if only.is_some() {
            render_one(out, &rep, Style::detect(g.verbose))
        } else {
            render_all(out, &rep, Style::detect(g.verbose))
        }
    });
    if res.is_err() {
        return exit::UNKNOWN;
    }
    exit_code(rep.verdict)
}

fn render_all(out: &mut dyn Write, r: &RoutersReport, style: Style) -> std::io::Result<()> {
    writeln!(
        out,
        "vmpath routers on {}: {} routers, {} dhcp namespaces, ha_confs {} ({:.0} ms)",
        r.host,
        r.routers.len(),
        r.dhcp.len(),
        r.ha_confs.as_deref().unwrap_or("unknown"),
        r.elapsed_ms
    )?;
    let header = [
        "router",
        "keepalived",
        "state file",
        "addresses",
        "ifaces",
        "conntrack",
        "default",
        "advertised",
        "verdict",
    ];
    let rows: Vec<Vec<String>> = r
        .routers
        .iter()
        .map(|x| {
            let st = |id: &str| {
                x.checks
                    .iter()
                    .find(|c| c.id == id)
                    .map(|c| c.status.as_str())
                    .unwrap_or("-")
            };
            vec![
                x.router_id.clone(),
                x.views.keepalived.clone(),
                x.views.state_file.clone(),
                x.views.addresses.clone(),
                st("router.interfaces").to_string(),
                x.conntrack_percent
                    .map(|p| format!("{p:.1} %"))
                    .unwrap_or_else(|| "-".into()),
                st("router.default_route").to_string(),
                advertised(&x.checks),
                x.verdict.as_str().to_uppercase(),
            ]
        })
        .collect();
    if style.table {
        let mut t = Table::new();
        t.load_style(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        t.set_header(header.to_vec());
        for row in &rows {
            t.add_row(row.clone());
        }
        writeln!(out, "{t}")?;
    } else {
        // Plain aligned columns for pipes and logs (scripts use --json).
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        writeln!(out, "{}", line(header.to_vec()))?;
        for row in &rows {
            writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
        }
    }
    for x in &r.routers {
        let bad: Vec<crate::model::Check> = x
            .checks
            .iter()
            .filter(|c| c.status != crate::model::Status::Ok)
            .cloned()
            .collect();
        if !bad.is_empty() {
            writeln!(out, "\nrouter {} ({}):", x.router_id, x.verdict.as_str())?;
            output::render_checks(out, &bad, style)?;
        }
    }
    if !r.host_checks.is_empty() {
        writeln!(out, "\nnode {}:", r.host)?;
        output::render_checks(out, &r.host_checks, style)?;
    }
    if !r.dhcp.is_empty() {
        writeln!(out)?;
    }
    for d in &r.dhcp {
        let ifs = if d.interfaces.is_empty() {
            "no interfaces".to_string()
        } else {
            d.interfaces.join(", ")
        };
        writeln!(out, "dhcp {}: {ifs}", d.namespace)?;
    }
    writeln!(out, "verdict: {}", r.verdict.as_str().to_uppercase())
}

/// `2/2`: (peer, tenant prefix) advertisements made of those expected; `-` when not asked.
fn advertised(checks: &[crate::model::Check]) -> String {
    let ex: Vec<_> = checks.iter().filter(|c| c.id == "bgp.export").collect();
    if ex.is_empty() {
        return "-".into();
    }
    let ok = ex
        .iter()
        .filter(|c| c.status == crate::model::Status::Ok)
        .count();
    format!("{ok}/{}", ex.len())
}

fn render_one(out: &mut dyn Write, r: &RoutersReport, style: Style) -> std::io::Result<()> {
    for x in &r.routers {
        writeln!(
            out,
            "vmpath router {} on {}: keepalived {}, state file {}, addresses say {}",
            x.router_id, r.host, x.views.keepalived, x.views.state_file, x.views.addresses
        )?;
        // The node's own checks belong to the router's story too (its BGP session carries the
        // tenant prefix, its VXLAN devices the tenant traffic).
        let all: Vec<crate::model::Check> =
            x.checks.iter().chain(&r.host_checks).cloned().collect();
        output::render_checks(out, &all, style)?;
        writeln!(
            out,
            "{}",
            output::verdict_line(crate::model::verdict(&all), &all, "", style)
        )?;
    }
    Ok(())
}
