//! Neutron's records of a port, as the walks read them: the port (binding, MAC, addresses,
//! security), its network (MTU, segment), its subnets (gateways), and on the overlay the
//! router interface that is the subnet's gateway, the router's L3 agents (`ha_state` per host)
//! and the OVS agents' tunnel addresses (which host a VTEP is). The types parse Neutron's JSON
//! (pure); [`fetch`] asks for them with `fields=` so each answer stays small.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Session;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedIp {
    #[serde(default)]
    pub subnet_id: String,
    pub ip_address: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPair {
    /// An address or a CIDR.
    pub ip_address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
}

/// A Neutron port (the fields vmpath asks for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub network_id: String,
    #[serde(default)]
    pub mac_address: String,
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub allowed_address_pairs: Vec<AddressPair>,
    #[serde(default)]
    pub device_id: String,
    #[serde(default)]
    pub device_owner: String,
    #[serde(default)]
    pub status: String,
    #[serde(default = "yes")]
    pub admin_state_up: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_security_enabled: Option<bool>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub security_groups: Vec<String>,
    /// `binding:host_id` (admin-only: `None` when the credentials may not see it).
    #[serde(
        default,
        rename = "binding:host_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub binding_host: Option<String>,
    #[serde(
        default,
        rename = "binding:vif_type",
        skip_serializing_if = "Option::is_none"
    )]
    pub vif_type: Option<String>,
    #[serde(
        default,
        rename = "binding:vif_details",
        skip_serializing_if = "Value::is_null"
    )]
    pub vif_details: Value,
}

fn yes() -> bool {
    true
}

fn null_as_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(
        default,
        rename = "provider:network_type",
        skip_serializing_if = "Option::is_none"
    )]
    pub network_type: Option<String>,
    #[serde(
        default,
        rename = "provider:segmentation_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub segmentation_id: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub id: String,
    #[serde(default)]
    pub cidr: String,
    #[serde(default)]
    pub ip_version: u8,
    #[serde(default)]
    pub gateway_ip: Option<IpAddr>,
    #[serde(default = "yes")]
    pub enable_dhcp: bool,
}

/// A security-group rule (`GET /v2.0/security-group-rules`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SgRule {
    pub id: String,
    #[serde(default)]
    pub security_group_id: String,
    /// `ingress` or `egress`.
    pub direction: String,
    /// `IPv4` or `IPv6`.
    #[serde(default)]
    pub ethertype: String,
    /// `tcp`, `udp`, `icmp`, a number, or `None` (any).
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub port_range_min: Option<u32>,
    #[serde(default)]
    pub port_range_max: Option<u32>,
    #[serde(default)]
    pub remote_ip_prefix: Option<String>,
    #[serde(default)]
    pub remote_group_id: Option<String>,
    #[serde(default)]
    pub remote_address_group_id: Option<String>,
}

/// One L3 agent hosting a router (`GET /v2.0/routers/{id}/l3-agents`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct L3Agent {
    pub host: String,
    #[serde(default = "yes")]
    pub alive: bool,
    #[serde(default = "yes")]
    pub admin_state_up: bool,
    /// `active`, `standby`, `unknown`; `None` for a router that is not HA.
    #[serde(default)]
    pub ha_state: Option<String>,
}

/// An Open vSwitch agent's host and tunnel address (`configurations.tunneling_ip`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vtep {
    pub host: String,
    pub ip: IpAddr,
    pub alive: bool,
}

/// The router interface that is a subnet's gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gateway {
    pub router_id: String,
    pub port_id: String,
    /// The qr- device's MAC.
    pub mac: String,
    pub ip: IpAddr,
    pub subnet_id: String,
    pub device_owner: String,
}

/// What Neutron says of one port, and what came with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortRecords {
    pub port: Port,
    pub network: Result<Network>,
    pub subnets: Result<Vec<Subnet>>,
    /// The overlay's hand-off (asked for on an OVS compute node only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateways: Option<Result<Vec<Gateway>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l3_agents: Option<Result<Vec<L3Agent>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vteps: Option<Result<Vec<Vtep>>>,
    /// The rules of the port's security groups (asked when it has any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sg_rules: Option<Result<Vec<SgRule>>>,
}

impl PortRecords {
    /// The IPv4 gateway (else the first) of the port's subnets that a router interface holds.
    pub fn gateway(&self) -> Option<&Gateway> {
        let gws = self.gateways.as_ref()?.as_ref().ok()?;
        gws.iter().find(|g| g.ip.is_ipv4()).or_else(|| gws.first())
    }
}

pub const PORT_FIELDS: &[&str] = &[
    "id",
    "name",
    "network_id",
    "mac_address",
    "fixed_ips",
    "allowed_address_pairs",
    "device_id",
    "device_owner",
    "status",
    "admin_state_up",
    "port_security_enabled",
    "security_groups",
    "binding:host_id",
    "binding:vif_type",
    "binding:vif_details",
];

/// The device owners of a router's interface ports (legacy, HA, DVR).
pub const ROUTER_INTERFACE_OWNERS: &[&str] = &[
    "network:router_interface",
    "network:ha_router_replicated_interface",
    "network:router_interface_distributed",
];

/// A list answer's items (`{"ports": [...]}`).
pub fn parse_list<T: serde::de::DeserializeOwned>(body: &Value, key: &str) -> Result<Vec<T>> {
    let items = body
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| Error::unknown(format!("Neutron's answer has no `{key}` list")))?;
    items
        .iter()
        .map(|i| {
            serde_json::from_value(i.clone())
                .map_err(|e| Error::unknown(format!("Neutron's {key}: {e}")))
        })
        .collect()
}

/// A show answer's object (`{"port": {...}}`).
pub fn parse_one<T: serde::de::DeserializeOwned>(body: &Value, key: &str) -> Result<T> {
    let o = body
        .get(key)
        .ok_or_else(|| Error::unknown(format!("Neutron's answer has no `{key}`")))?;
    serde_json::from_value(o.clone()).map_err(|e| Error::unknown(format!("Neutron's {key}: {e}")))
}

/// The router interfaces on the port's network that hold a subnet's gateway address.
pub fn gateways(subnets: &[Subnet], router_ports: &[Port]) -> Vec<Gateway> {
    let mut out = Vec::new();
    for s in subnets {
        let Some(gw) = s.gateway_ip else { continue };
        for p in router_ports {
            if let Some(f) = p
                .fixed_ips
                .iter()
                .find(|f| f.ip_address == gw && (f.subnet_id.is_empty() || f.subnet_id == s.id))
            {
                out.push(Gateway {
                    router_id: p.device_id.clone(),
                    port_id: p.id.clone(),
                    mac: p.mac_address.to_ascii_lowercase(),
                    ip: f.ip_address,
                    subnet_id: s.id.clone(),
                    device_owner: p.device_owner.clone(),
                });
            }
        }
    }
    out
}

/// The OVS agents' tunnel addresses (`GET /v2.0/agents?agent_type=Open vSwitch agent`).
pub fn vteps(body: &Value) -> Result<Vec<Vtep>> {
    let agents = body
        .get("agents")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::unknown("Neutron's answer has no `agents` list"))?;
    Ok(agents
        .iter()
        .filter_map(|a| {
            let ip = a
                .get("configurations")?
                .get("tunneling_ip")?
                .as_str()?
                .parse()
                .ok()?;
            Some(Vtep {
                host: a.get("host")?.as_str()?.to_string(),
                ip,
                alive: a.get("alive").and_then(Value::as_bool).unwrap_or(true),
            })
        })
        .collect())
}

fn fields(list: &[&str]) -> Vec<(String, String)> {
    list.iter()
        .map(|f| ("fields".to_string(), (*f).to_string()))
        .collect()
}

/// Which port to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortQuery {
    Id(String),
    /// An instance: its ports (`device_id`).
    Device(String),
    Mac(String),
    Ip(IpAddr),
}

/// The ports a query names (an id that Neutron does not know: `Ok(vec![])`).
pub async fn find_ports_raw(
    s: &Session,
    q: &PortQuery,
) -> std::result::Result<Vec<Port>, super::ApiError> {
    let other = |e: Error| super::ApiError::Other(e.to_string());
    let mut f = fields(PORT_FIELDS);
    let filter = match q {
        PortQuery::Id(id) => {
            let path = format!("/v2.0/ports/{}", super::path_segment(id));
            return match s.get(&path, &f).await {
                Ok(b) => Ok(vec![parse_one(&b, "port").map_err(other)?]),
                Err(super::ApiError::NotFound) => Ok(Vec::new()),
                Err(e) => Err(e),
            };
        }
        PortQuery::Device(d) => ("device_id", d.clone()),
        PortQuery::Mac(m) => ("mac_address", m.clone()),
        PortQuery::Ip(ip) => ("fixed_ips", format!("ip_address={ip}")),
    };
    f.push((filter.0.to_string(), filter.1));
    let b = s.get("/v2.0/ports", &f).await?;
    parse_list(&b, "ports").map_err(other)
}

/// What the records of a port on network `net` need besides the port: the network, its subnets
/// and, on the overlay, its router interfaces and the OVS agents' VTEPs — asked in parallel.
pub struct NetParts {
    network: Result<Network>,
    subnets: Result<Vec<Subnet>>,
    router_ports: Option<Result<Vec<Port>>>,
    vteps: Option<Result<Vec<Vtep>>>,
}

pub async fn net_parts(s: &Session, net: &str, overlay: bool) -> NetParts {
    let network_q = fields(&[
        "id",
        "name",
        "mtu",
        "provider:network_type",
        "provider:segmentation_id",
    ]);
    let mut subnet_q = fields(&["id", "cidr", "ip_version", "gateway_ip", "enable_dhcp"]);
    subnet_q.push(("network_id".into(), net.to_string()));
    let mut rp_q = fields(&[
        "id",
        "mac_address",
        "fixed_ips",
        "device_id",
        "device_owner",
        "status",
    ]);
    rp_q.push(("network_id".into(), net.to_string()));
    for o in ROUTER_INTERFACE_OWNERS {
        rp_q.push(("device_owner".into(), (*o).to_string()));
    }
    let agents_q = vec![
        ("agent_type".to_string(), "Open vSwitch agent".to_string()),
        ("fields".to_string(), "host".to_string()),
        ("fields".to_string(), "configurations".to_string()),
        ("fields".to_string(), "alive".to_string()),
    ];
    let network_path = format!("/v2.0/networks/{}", super::path_segment(net));
    let network = async {
        s.get(&network_path, &network_q)
            .await
            .map_err(Error::from)
            .and_then(|b| parse_one::<Network>(&b, "network"))
    };
    let subnets = async {
        s.get("/v2.0/subnets", &subnet_q)
            .await
            .map_err(Error::from)
            .and_then(|b| parse_list::<Subnet>(&b, "subnets"))
    };
    let router_ports = async {
        if !overlay {
            return None;
        }
        Some(
            s.get("/v2.0/ports", &rp_q)
                .await
                .map_err(Error::from)
                .and_then(|b| parse_list::<Port>(&b, "ports")),
        )
    };
    let vteps = async {
        if !overlay {
            return None;
        }
        Some(
            s.get("/v2.0/agents", &agents_q)
                .await
                .map_err(Error::from)
                .and_then(|b| vteps(&b)),
        )
    };
    let (network, subnets, router_ports, vteps) =
        tokio::join!(network, subnets, router_ports, vteps);
    NetParts {
        network,
        subnets,
        router_ports,
        vteps,
    }
}

/// The records of `port` from its network's parts: the router interface holding its gateway,
/// and that router's L3 agents (one more call).
pub async fn assemble(s: &Session, port: Port, parts: NetParts) -> PortRecords {
    let NetParts {
        network,
        subnets,
        router_ports,
        vteps,
    } = parts;
    let gateways = router_ports.map(|rp| {
        let subs = subnets.as_ref().map_err(Clone::clone)?;
        Ok(gateways(subs, &rp?))
    });
    let router = gateways
        .as_ref()
        .and_then(|g| g.as_ref().ok())
        .and_then(|g| g.iter().find(|g| g.ip.is_ipv4()).or(g.first()))
        .map(|g| g.router_id.clone());
    let l3 = async {
        match router {
            Some(r) => {
                let path = format!("/v2.0/routers/{}/l3-agents", super::path_segment(&r));
                Some(
                    s.get(&path, &[])
                        .await
                        .map_err(Error::from)
                        .and_then(|b| parse_list::<L3Agent>(&b, "agents")),
                )
            }
            None => None,
        }
    };
    let mut sg_q: Vec<(String, String)> = port
        .security_groups
        .iter()
        .map(|g| ("security_group_id".to_string(), g.clone()))
        .collect();
    let rules = async {
        if sg_q.is_empty() || port.port_security_enabled == Some(false) {
            return None;
        }
        sg_q.extend(fields(&[
            "id",
            "security_group_id",
            "direction",
            "ethertype",
            "protocol",
            "port_range_min",
            "port_range_max",
            "remote_ip_prefix",
            "remote_group_id",
            "remote_address_group_id",
        ]));
        Some(
            s.get("/v2.0/security-group-rules", &sg_q)
                .await
                .map_err(Error::from)
                .and_then(|b| parse_list::<SgRule>(&b, "security_group_rules")),
        )
    };
    let (l3_agents, sg_rules) = tokio::join!(l3, rules);
    PortRecords {
        port,
        network,
        subnets,
        gateways,
        l3_agents,
        vteps,
        sg_rules,
    }
}

/// The records of `port`: its network's parts, then the router's agents.
pub async fn records(s: &Session, port: Port, overlay: bool) -> PortRecords {
    let parts = net_parts(s, &port.network_id, overlay).await;
    assemble(s, port, parts).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GET /v2.0/ports/{id}` from the real Neutron 29 lab (the VM port on hv1), trimmed.
    const PORT: &str = r#"{"port": {"id": "5d2f8a3c-1b4e-4f6a-9c7d-2e8b0a1f3c4d", "name": "vm1-port", "network_id": "0b7c9d2e-3f4a-4b5c-8d6e-7f8a9b0c1d2e", "mac_address": "fa:16:3e:5a:1b:2c", "fixed_ips": [{"subnet_id": "s4", "ip_address": "198.18.0.10"}, {"subnet_id": "s6", "ip_address": "2001:db8:0:1::10"}], "allowed_address_pairs": [], "device_id": "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", "device_owner": "compute:nova", "status": "ACTIVE", "admin_state_up": true, "port_security_enabled": true, "security_groups": ["sg1"], "binding:host_id": "hv1", "binding:vif_type": "ovs", "binding:vif_details": {"connectivity": "l2", "port_filter": true, "ovs_hybrid_plug": false, "datapath_type": "netdev", "bridge_name": "br-int"}}}"#;

    #[test]
    fn port_parses() {
        let b: Value = serde_json::from_str(PORT).unwrap();
        let p: Port = parse_one(&b, "port").unwrap();
        assert_eq!(p.binding_host.as_deref(), Some("hv1"));
        assert_eq!(p.vif_type.as_deref(), Some("ovs"));
        assert_eq!(p.vif_details["datapath_type"], "netdev");
        assert_eq!(p.fixed_ips.len(), 2);
        assert_eq!(p.port_security_enabled, Some(true));
        // Without admin rights the binding fields are absent; null lists are empty.
        let b = serde_json::json!({"port": {"id": "x", "allowed_address_pairs": null, "security_groups": null}});
        let p: Port = parse_one(&b, "port").unwrap();
        assert!(p.binding_host.is_none() && p.allowed_address_pairs.is_empty());
        assert!(parse_one::<Port>(&serde_json::json!({"ports": []}), "port").is_err());
    }

    #[test]
    fn gateway_is_the_router_interface_holding_the_subnet_gateway() {
        let subs = vec![
            Subnet {
                id: "s4".into(),
                cidr: "198.18.0.0/24".into(),
                ip_version: 4,
                gateway_ip: "198.18.0.1".parse().ok(),
                enable_dhcp: true,
            },
            Subnet {
                id: "s6".into(),
                cidr: "2001:db8:0:1::/64".into(),
                ip_version: 6,
                gateway_ip: "2001:db8:0:1::1".parse().ok(),
                enable_dhcp: true,
            },
        ];
        let rp: Vec<Port> = parse_list(
            &serde_json::json!({"ports": [
                {"id": "qr6", "mac_address": "FA:16:3E:00:00:06", "device_id": "r1", "device_owner": "network:ha_router_replicated_interface",
                 "fixed_ips": [{"subnet_id": "s6", "ip_address": "2001:db8:0:1::1"}]},
                {"id": "qr4", "mac_address": "fa:16:3e:00:00:04", "device_id": "r1", "device_owner": "network:ha_router_replicated_interface",
                 "fixed_ips": [{"subnet_id": "s4", "ip_address": "198.18.0.1"}]},
                {"id": "other", "mac_address": "fa:16:3e:00:00:09", "device_id": "r2", "device_owner": "network:router_interface",
                 "fixed_ips": [{"subnet_id": "s4", "ip_address": "198.18.0.254"}]}
            ]}),
            "ports",
        )
        .unwrap();
        let g = gateways(&subs, &rp);
        assert_eq!(g.len(), 2);
        let rec = PortRecords {
            port: parse_one(&serde_json::from_str(PORT).unwrap(), "port").unwrap(),
            network: Err(Error::unknown("x")),
            subnets: Ok(subs),
            gateways: Some(Ok(g)),
            l3_agents: None,
            vteps: None,
            sg_rules: None,
        };
        let gw = rec.gateway().unwrap();
        assert_eq!(
            (gw.mac.as_str(), gw.router_id.as_str()),
            ("fa:16:3e:00:00:04", "r1")
        );
    }

    #[test]
    fn vteps_from_the_agents_list() {
        let b = serde_json::json!({"agents": [
            {"host": "net1", "alive": true, "configurations": {"tunneling_ip": "198.51.100.11", "tunnel_types": ["vxlan"]}},
            {"host": "hv1", "alive": false, "configurations": {"tunneling_ip": "198.51.100.21"}},
            {"host": "flat-only", "configurations": {"bridge_mappings": {"ext": "br-ex"}}}
        ]});
        let v = vteps(&b).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[1],
            Vtep {
                host: "hv1".into(),
                ip: "198.51.100.21".parse().unwrap(),
                alive: false
            }
        );
        let l3: Vec<L3Agent> = parse_list(
            &serde_json::json!({"agents": [{"host": "net1", "ha_state": "active", "alive": true, "admin_state_up": true}, {"host": "net2", "ha_state": "standby"}]}),
            "agents",
        )
        .unwrap();
        assert_eq!(l3[1].ha_state.as_deref(), Some("standby"));
    }
}
