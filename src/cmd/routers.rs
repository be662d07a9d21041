//! `vmpath routers` and `vmpath router ROUTER_ID` on a gateway node: arguments and rendering;
//! the work is in `crate::gateway`.

use std::path::PathBuf;

use clap::Args;

use super::args::GlobalArgs;
use crate::config;
use crate::error::{Error, Result};
use crate::gateway::{self, Options, WireMode};
use crate::model::exit_code;
use crate::output::{self, Style};

#[derive(Debug, Args)]
pub struct RoutersArgs {
    /// Directory of the host's named network namespaces
    #[arg(long, value_name = "DIR", default_value = gateway::DEFAULT_NETNS_DIR)]
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
    /// Also listen for VRRP adverts on every ha- interface, for 3 advert intervals (a backup that
    /// hears no primary); `router ID` does it unless --no-listen
    #[arg(long, conflicts_with = "no_wire")]
    pub listen: bool,
    /// With `router ID`: only the local state, no listening or probing
    #[arg(long, conflicts_with = "listen")]
    pub no_listen: bool,
    /// Do not ARP-probe each primary's gateway address (by default `routers` does, for 0.5 s, so
    /// that a split-brain shows in the overview)
    #[arg(long)]
    pub no_wire: bool,
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
    #[command(flatten)]
    pub source: super::args::SourceArgs,
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

fn options(g: &GlobalArgs, a: &RoutersArgs, only: Option<String>) -> Result<Options> {
    let cfg = config::Config::load(g.config.as_deref())?;
    let only_set = only.is_some();
    let timeout = config::parse_duration(&a.timeout).map_err(|e| e.context("--timeout"))?;
    let mut o = Options::new(timeout);
    o.netns_dir = a.netns_dir.clone();
    o.expect_bgp = cfg.expects("bgp");
    o.trust = cfg.trust()?;
    o.ha_confs = a.ha_confs.clone().or(cfg.ha_confs);
    o.only = only;
    o.peer = a.peer.clone();
    o.wire = if a.no_wire || (only_set && a.no_listen) {
        WireMode::Off
    } else if a.listen || only_set {
        WireMode::Listen
    } else {
        WireMode::Probe
    };
    o.ovsdb = a.ovsdb.clone();
    o.dump = !a.no_dump;
    o.bgp = !a.no_bgp;
    o.neutron = a.source.choose(g)?;
    o.bgp_overrides = crate::collect::bgp::Overrides {
        bird_socket: a.bird_socket.clone().or(cfg.bird_socket),
        frr_dir: a.frr_dir.clone().or(cfg.frr_dir),
    };
    Ok(o)
}

pub fn exec_routers(g: &GlobalArgs, a: &RoutersArgs) -> Result<u8> {
    let opts = options(g, a, None)?;
    run(g, &opts)
}

pub fn exec_router(g: &GlobalArgs, a: &RouterArgs) -> Result<u8> {
    if a.router_id.is_empty() || a.router_id.contains('/') {
        return Err(Error::usage(format!(
            "`{}` is not a router id",
            a.router_id
        )));
    }
    let opts = options(g, &a.common, Some(a.router_id.clone()))?;
    run(g, &opts)
}

/// Check the node (one router when `opts.only`) and render the report.
pub fn run(g: &GlobalArgs, opts: &Options) -> Result<u8> {
    crate::collect::caps::require(&gateway::needs(opts))?;
    let (rep, facts) = gateway::run(opts)?;
    if let Some(path) = std::env::var_os("VMPATH_FACTS_OUT") {
        output::write_facts(std::path::Path::new(&path), &facts);
    }
    let style = Style::detect(g.verbose);
    let res = output::emit(g.json, &rep, |out| {
        if opts.only.is_some() {
            output::routers::one(out, &rep, style)
        } else {
            output::routers::all(out, &rep, style)
        }
    });
    Ok(output::exit_after("routers", res, exit_code(rep.verdict)))
}
