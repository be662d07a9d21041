//! Reading an Open vSwitch compute node once: OVSDB first (it says whether the target is an
//! OVS port here at all, before anything else is read), then the kernel's interfaces, addresses
//! and routes in one netlink snapshot. [`Facts`] is the one value the pure checks look at; it
//! serializes, so a captured host can be checked again without root (`VMPATH_FACTS_OUT`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Options;
use crate::collect::netlink::{HostNet, Netlink};
use crate::collect::ovsdb::{self, OvsDb};
use crate::error::{Error, Result};
use crate::port::target::Target;
use crate::port::vif::{self, Vif};

/// Everything the compute walk's checks look at.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Facts {
    pub host: String,
    /// The OVSDB socket read.
    pub ovsdb_socket: String,
    pub ovsdb: Result<OvsDb>,
    pub net: HostNet,
}

/// OVSDB read; the rest still to read.
pub struct Gathering {
    socket: String,
    db: OvsDb,
}

/// Read the OVSDB of this host: `Error::NotHere` when no trusted ovsdb-server runs here (not
/// an OVS host: the routed design applies), `Error::Unknown` when one runs but none answers
/// (the design of the port cannot be told).
pub fn start(opts: &Options) -> Result<Gathering> {
    let servers = if opts.ovsdb.is_empty() {
        ovsdb::discover(&opts.trust)
    } else {
        opts.ovsdb
            .iter()
            .map(|s| ovsdb::Server {
                socket: s.clone(),
                untrusted: None,
            })
            .collect()
    };
    let trusted: Vec<&ovsdb::Server> = servers.iter().filter(|s| s.untrusted.is_none()).collect();
    if trusted.is_empty() {
        let why = servers
            .iter()
            .filter_map(|s| {
                s.untrusted
                    .as_deref()
                    .map(|w| format!("{} not read: {w}", s.socket.display()))
            })
            .collect::<Vec<_>>();
        return Err(Error::not_here(if why.is_empty() {
            "no ovsdb-server runs here".to_string()
        } else {
            format!("no trusted ovsdb-server runs here ({})", why.join("; "))
        }));
    }
    let mut failures = Vec::new();
    for s in trusted {
        match ovsdb::query_db(&s.socket, opts.timeout) {
            Ok(db) => {
                return Ok(Gathering {
                    socket: s.socket.display().to_string(),
                    db,
                })
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    Err(Error::unknown(format!(
        "{}: cannot tell whether {} is plugged into Open vSwitch here; when it is a routed port, `--design routed` walks it without OVSDB",
        failures.join("; "),
        opts.target
    )))
}

impl Gathering {
    /// The VM port `target` names in OVSDB (`Error::NotHere` when none).
    pub fn resolve(&self, target: &Target) -> Result<Vif> {
        vif::resolve(target, &self.db)
    }

    /// Read the kernel's view (one netlink snapshot, bounded by `timeout`).
    pub fn finish(self, timeout: Duration) -> Result<Facts> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::unknown(format!("cannot start the async runtime: {e}")))?;
        let net = rt
            .block_on(async {
                let nl = Netlink::open().map_err(|e| e.to_string())?;
                tokio::time::timeout(timeout, nl.snapshot())
                    .await
                    .map_err(|_| format!("rtnetlink dump: no answer within {timeout:?}"))?
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| {
                Error::unknown(format!(
                    "{e}: cannot read this host's interfaces and routes — run vmpath as root, in the compute node's network namespace"
                ))
            })?;
        Ok(Facts {
            host: crate::collect::hostname::hostname(),
            ovsdb_socket: self.socket,
            ovsdb: Ok(self.db),
            net,
        })
    }
}
