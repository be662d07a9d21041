//! Where a walk takes the port's desired state from (`--source`): Neutron (its API, through the
//! cloud's credentials), or the host's own records. `auto` (the default) is Neutron when
//! credentials are configured, else the host's records. Every report says which was used and
//! why (`source` in the JSON).

use serde::Serialize;

use crate::collect::openstack::clouds::Cloud;
use crate::collect::openstack::{NeutronFacts, TokenSource};
use crate::error::{Error, Result};

/// `--source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Auto,
    Neutron,
    Host,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Neutron => "neutron",
            Mode::Host => "host",
        }
    }
}

/// The choice made before the walk.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub mode: Mode,
    /// The cloud to ask (none: the host's records only).
    pub cloud: Option<Cloud>,
    /// Why no cloud is asked, when `auto` found none or a broken one.
    pub note: Option<String>,
    /// The name Neutron binds this host's ports to (`neutron_host` in the config).
    pub host: Option<String>,
}

impl Source {
    /// From `--source` and what loading the credentials gave. `neutron` without usable
    /// credentials is a usage error; `auto` then walks on the host's records and says why.
    pub fn choose(
        mode: Mode,
        loaded: Result<Option<Cloud>>,
        host: Option<String>,
    ) -> Result<Source> {
        let (cloud, note) = match (mode, loaded) {
            (Mode::Host, _) => (None, Some("--source host".to_string())),
            (Mode::Neutron, Ok(Some(c))) | (Mode::Auto, Ok(Some(c))) => (Some(c), None),
            (Mode::Neutron, Ok(None)) => {
                return Err(Error::usage(
                    "--source neutron: no OpenStack credentials found (set OS_CLOUD with a clouds.yaml in ., ~/.config/openstack or /etc/openstack, or OS_AUTH_URL and the other OS_* variables)",
                ))
            }
            (Mode::Neutron, Err(e)) => return Err(e.context("--source neutron")),
            (Mode::Auto, Ok(None)) => (None, Some("no OpenStack credentials configured".into())),
            (Mode::Auto, Err(e)) => (None, Some(format!("credentials not usable: {e}"))),
        };
        Ok(Source {
            mode,
            cloud,
            note,
            host,
        })
    }

    /// What the report says of the source, after the walk.
    pub fn report(&self, n: Option<&NeutronFacts>) -> SourceReport {
        let mut r = SourceReport {
            mode: self.mode.name(),
            desired: "host",
            cloud: self.cloud.as_ref().map(|c| c.name.clone()),
            endpoint: None,
            token: None,
            keystone_calls: None,
            api_calls: None,
            elapsed_ms: None,
            note: self.note.clone(),
        };
        if let Some(n) = n {
            r.endpoint = Some(n.endpoint.clone()).filter(|e| !e.is_empty());
            r.token = n.token;
            r.keystone_calls = Some(n.keystone_calls);
            r.api_calls = Some(n.api_calls);
            r.elapsed_ms = Some(n.elapsed_ms);
            match &n.ports {
                Ok(p) if !p.is_empty() => r.desired = "neutron",
                Ok(_) => {
                    r.note = Some("Neutron has no such port: the host's records were used".into())
                }
                Err(e) => {
                    r.note = Some(format!(
                        "Neutron not reached ({e}): the host's records were used"
                    ))
                }
            }
        }
        r
    }
}

impl Source {
    /// Where Neutron has what `target` names, when this host has nothing for it: a sentence per
    /// port (bound to which host, the command to run there), or why Neutron could not say.
    /// `None` without credentials, or for a target Neutron cannot be asked about (a tap name).
    pub fn locate(
        &self,
        target: &crate::port::target::Target,
        timeout: std::time::Duration,
    ) -> Option<String> {
        use crate::collect::openstack::neutron::PortQuery;
        use crate::port::target::Target;
        let cloud = self.cloud.as_ref()?;
        let q = match target {
            Target::Ip(ip) => PortQuery::Ip(*ip),
            Target::Mac(m) => PortQuery::Mac(m.clone()),
            Target::PortId(id) => PortQuery::Id(id.clone()),
            Target::PortPrefix(_) | Target::Tap(_) => return None,
        };
        Some(
            match crate::collect::openstack::find(cloud, &q, timeout) {
                Err(e) => format!("Neutron (cloud '{}') could not say where it is: {e}", cloud.name),
                Ok(ports) if ports.is_empty() => {
                    format!("Neutron (cloud '{}') has no port for {target} either", cloud.name)
                }
                Ok(ports) => ports
                    .iter()
                    .map(|p| {
                        let host = p.binding_host.as_deref().unwrap_or("");
                        let owner = if p.device_owner.is_empty() {
                            String::new()
                        } else {
                            format!(", {} {}", p.device_owner, p.device_id)
                        };
                        if host.is_empty() {
                            format!(
                                "Neutron (cloud '{}'): port {} ({}{owner}) is bound to no host (binding:vif_type {})",
                                cloud.name,
                                p.id,
                                p.status,
                                p.vif_type.as_deref().unwrap_or("not visible")
                            )
                        } else {
                            format!(
                                "Neutron (cloud '{}'): port {} ({}{owner}) is bound to host {host}: run `vmpath walk {}` there",
                                cloud.name, p.id, p.status, p.id
                            )
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            },
        )
    }
}

impl Source {
    /// What a routed hypervisor's walk says of its source: the host's records (it does not read
    /// Neutron yet), and so when Neutron was asked for.
    pub fn routed_report(&self) -> SourceReport {
        let mut r = self.report(None);
        if self.cloud.is_some() {
            r.note = Some(
                "the routed walk does not read Neutron yet: the host's records were used".into(),
            );
        }
        r
    }
}

/// `source` in a walk's JSON.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SourceReport {
    /// `--source` as given (`auto`, `neutron`, `host`).
    pub mode: &'static str,
    /// What the desired state came from: `neutron` or `host`.
    pub desired: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `cached` (no Keystone call) or `new`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keystone_calls: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_calls: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
    /// Why the host's records were used, when they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl SourceReport {
    /// One line for the table's header.
    pub fn line(&self) -> String {
        match self.desired {
            "neutron" => format!(
                "desired state: Neutron (cloud '{}', {} API calls, {} token, {} ms)",
                self.cloud.as_deref().unwrap_or("?"),
                self.api_calls.unwrap_or(0),
                match self.token {
                    Some(TokenSource::Cached) => "cached",
                    _ => "new",
                },
                self.elapsed_ms.unwrap_or(0)
            ),
            _ => format!(
                "desired state: this host's records{}",
                self.note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ),
        }
    }
}
