//! Arguments more than one subcommand takes: the global flags, and the port and its sources
//! (`walk` and `plumb`), turned into a walk's validated options.

use std::path::PathBuf;

use clap::Args;

use crate::config::{self, Config};
use crate::error::{Error, Result};
use crate::port::target::Target;
use crate::port::Overrides;
use crate::walk::{Sources, WalkOptions};

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print one JSON document instead of a table (shape documented in README.md)
    #[arg(long, global = true)]
    pub json: bool,
    /// Show the evidence of every check, not only of those that are not ok
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Config file [default: /etc/vmpath/config.toml, if present]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Where the desired state comes from: `walk`, `routers`, `router`.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Where the desired state comes from: neutron (the API, through clouds.yaml or OS_*
    /// credentials), host (this host's records), auto (Neutron when credentials are configured)
    #[arg(long, value_enum, value_name = "SOURCE", default_value = "auto")]
    pub source: SourceArg,
    /// The clouds.yaml cloud to use [default: OS_CLOUD, the config's `cloud`, OS_* variables,
    /// or the only cloud in clouds.yaml]
    #[arg(long, value_name = "NAME")]
    pub os_cloud: Option<String>,
}

/// `--source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceArg {
    Auto,
    Neutron,
    Host,
}

impl SourceArgs {
    /// `--source` and the credentials it needs (clouds.yaml / OS_* read here, once).
    pub fn choose(&self, g: &GlobalArgs) -> Result<crate::port::source::Source> {
        use crate::port::source::{Mode, Source};
        let mode = match self.source {
            SourceArg::Auto => Mode::Auto,
            SourceArg::Neutron => Mode::Neutron,
            SourceArg::Host => Mode::Host,
        };
        let cfg = Config::load(g.config.as_deref())?;
        let loaded = if mode == Mode::Host {
            Ok(None)
        } else {
            let env = crate::collect::openstack::clouds::Env::current();
            let asked = self
                .os_cloud
                .clone()
                .or_else(|| env.vars.get("OS_CLOUD").cloned().filter(|c| !c.is_empty()))
                .or(cfg.cloud.clone());
            crate::collect::openstack::clouds::load(&env, asked.as_deref())
        };
        Source::choose(mode, loaded, cfg.neutron_host.clone())
    }
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

/// The walk's options from the flags and the config file (a flag wins over the file); `flow` is
/// walk's `--flow`. Every error is `Error::Usage`.
pub fn walk_options(g: &GlobalArgs, a: &PortArgs, flow: Option<&str>) -> Result<WalkOptions> {
    let cfg = Config::load(g.config.as_deref())?;
    let trust = cfg.trust()?;
    let target = Target::parse(&a.target)?;
    let timeout = match (&a.timeout, &cfg.timeout) {
        (Some(t), _) => config::parse_duration(t).map_err(|e| e.context("--timeout"))?,
        (None, Some(t)) => {
            config::parse_duration(t).map_err(|e| e.context("timeout in the config file"))?
        }
        (None, None) => std::time::Duration::from_secs(2),
    };
    let gw_src = if a.gateway.is_empty() {
        &cfg.gateways
    } else {
        &a.gateway
    };
    let gateways = gw_src
        .iter()
        .map(|g| config::parse_gateway(g))
        .collect::<Result<Vec<_>>>()?;
    let mac =
        match &a.mac {
            Some(m) => Some(crate::port::target::parse_mac(m).ok_or_else(|| {
                Error::usage(format!("invalid --mac '{m}': use aa:bb:cc:dd:ee:ff"))
            })?),
            None => None,
        };
    if let Some(m) = a.mtu.or(cfg.mtu) {
        if !(68..=65535).contains(&m) {
            return Err(Error::usage(format!("invalid MTU {m}: 68..65535")));
        }
    }
    let flow = match flow {
        Some(f) => Some(crate::check::sg::parse_flow(f).map_err(|e| e.context("invalid --flow"))?),
        None => None,
    };
    Ok(WalkOptions {
        target,
        flow,
        timeout,
        source: Default::default(),
        overrides: Overrides {
            mtu: a.mtu.or(cfg.mtu),
            gateways,
            mac,
            ips: Vec::new(),
        },
        expect: crate::check::Expect {
            dhcp: cfg.expects("dhcp"),
            bgp: cfg.expects("bgp"),
        },
        sources: Sources {
            bird_socket: a.bird_socket.clone().or(cfg.bird_socket),
            frr_dir: a.frr_dir.clone().or(cfg.frr_dir),
            dhcp_hostsdir: a.dhcp_hostsdir.clone().or(cfg.dhcp_hostsdir.clone()),
            trust,
        },
    })
}
