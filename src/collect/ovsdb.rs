//! Open vSwitch ports read from OVSDB over its unix socket (JSON-RPC, RFC 7047; no ovs-vsctl
//! fork): each Interface's `external_ids` (`iface-id`, `attached-mac`), `mtu_request`, type and
//! options (VXLAN `remote_ip`), and each Port's `tag` (4095: the agent never bound the port).
//! [`parse`] is pure; [`query`] and [`discover`] are the I/O edge.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::collect::deadline::{connect_unix, read_json_by, write_all_by, Deadline, JsonReadError};
use crate::error::{Error, Result};

/// One OVS interface with what Neutron writes on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OvsPort {
    pub name: String,
    /// `""` (system), `internal`, `vxlan`, `patch`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub iface_id: Option<String>,
    pub attached_mac: Option<String>,
    pub mtu_request: Option<u32>,
    /// The Port's VLAN tag (local VLAN of the network; 4095 = dead).
    pub tag: Option<u32>,
    /// `remote_ip` of a tunnel port.
    pub remote_ip: Option<String>,
    /// Set on a bridge's own internal interface (its name).
    pub bridge: Option<String>,
    /// The interface's MTU as OVS reports it.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// The bridge the interface is a port of.
    #[serde(default)]
    pub in_bridge: Option<String>,
    /// `options:peer` of a patch port (the patch port on the other bridge).
    #[serde(default)]
    pub peer: Option<String>,
    /// The OpenFlow port number: `None` while OVS has not assigned one yet, `Some(-1)` when the
    /// interface failed (its `error` says why).
    #[serde(default)]
    pub ofport: Option<i64>,
    /// `external_ids:iface-status` (`active` once the hypervisor plugged it; os-vif and Nova).
    #[serde(default)]
    pub iface_status: Option<String>,
    /// `external_ids:vm-uuid` (the instance the port is plugged into).
    #[serde(default)]
    pub vm_uuid: Option<String>,
    /// The interface's `error` column (why it has no ofport).
    #[serde(default)]
    pub error: Option<String>,
    /// `link_state` / `admin_state` (`up`, `down`).
    #[serde(default)]
    pub link_state: Option<String>,
    #[serde(default)]
    pub admin_state: Option<String>,
    /// `options:local_ip` of a tunnel port.
    #[serde(default)]
    pub local_ip: Option<String>,
    /// `options:key` (or `out_key`) of a tunnel port: `flow` when the VNI comes from the flows.
    #[serde(default)]
    pub key: Option<String>,
    /// `options:dst_port` of a tunnel port (4789 when unset, for VXLAN).
    #[serde(default)]
    pub dst_port: Option<u16>,
    /// The Port's `other_config`, as the Neutron agent writes it (`net_uuid`, `network_type`,
    /// `segmentation_id`, `tag`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub port_config: BTreeMap<String, String>,
}

/// One OVS bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OvsBridge {
    pub name: String,
    /// `system` (kernel) or `netdev` (userspace); `""` means `system`.
    pub datapath_type: String,
    /// `secure` or `standalone` (`""`: standalone).
    #[serde(default)]
    pub fail_mode: String,
}

/// What one OVSDB holds that vmpath reads: ports (with their interfaces), bridges, and the
/// switch's own identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OvsDb {
    pub ports: Vec<OvsPort>,
    #[serde(default)]
    pub bridges: Vec<OvsBridge>,
    /// `Open_vSwitch external_ids:hostname` (the host the Neutron agent reports as).
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub ovs_version: Option<String>,
}

impl OvsDb {
    pub fn port(&self, name: &str) -> Option<&OvsPort> {
        self.ports.iter().find(|p| p.name == name)
    }
    pub fn bridge(&self, name: &str) -> Option<&OvsBridge> {
        self.bridges.iter().find(|b| b.name == name)
    }
    /// Is `bridge` on the userspace datapath?
    pub fn userspace(&self, bridge: &str) -> bool {
        self.bridge(bridge)
            .is_some_and(|b| b.datapath_type == "netdev")
    }
}

/// The request [`query`] sends.
pub fn request() -> Value {
    json!({"method": "transact", "id": 1, "params": ["Open_vSwitch",
        {"op": "select", "table": "Interface", "where": [], "columns": ["_uuid", "name", "type", "external_ids", "mtu_request", "mtu", "options", "ofport", "link_state", "admin_state", "error"]},
        {"op": "select", "table": "Port", "where": [], "columns": ["_uuid", "name", "tag", "interfaces", "other_config"]},
        {"op": "select", "table": "Bridge", "where": [], "columns": ["name", "ports", "datapath_type", "fail_mode"]},
        {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["external_ids", "ovs_version"]}]})
}

/// OVSDB's `["map", [[k, v], …]]`.
fn map(v: &Value) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Some(pairs) = v.get(1).and_then(Value::as_array) {
        for p in pairs {
            if let (Some(k), Some(v)) = (
                p.get(0).and_then(Value::as_str),
                p.get(1).and_then(Value::as_str),
            ) {
                m.insert(k.to_string(), v.to_string());
            }
        }
    }
    m
}

/// The UUIDs of a reference column: `["uuid", U]` or `["set", [["uuid", U], …]]`.
fn uuids(v: &Value) -> Vec<String> {
    let one = |x: &Value| -> Option<String> {
        (x.get(0).and_then(Value::as_str) == Some("uuid"))
            .then(|| x.get(1).and_then(Value::as_str).map(String::from))
            .flatten()
    };
    match v.get(0).and_then(Value::as_str) {
        Some("uuid") => one(v).into_iter().collect(),
        Some("set") => v
            .get(1)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(one).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// An optional integer: a number, or `["set", []]` for none.
fn opt_int(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

/// An optional signed integer (`ofport`: -1 on error, `["set", []]` before assignment).
fn opt_i64(v: &Value) -> Option<i64> {
    v.as_i64()
}

/// An optional string: a string, or `["set", []]` for none (`""` counts as none too).
fn opt_str(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(String::from)
}

/// Ports from the answer to [`request`].
pub fn parse(answer: &Value) -> Result<Vec<OvsPort>> {
    parse_db(answer).map(|db| db.ports)
}

/// Everything the answer to [`request`] holds.
pub fn parse_db(answer: &Value) -> Result<OvsDb> {
    parse_ports(answer).map_err(Error::Unknown)
}

fn parse_ports(answer: &Value) -> std::result::Result<OvsDb, String> {
    if let Some(e) = answer.get("error").filter(|e| !e.is_null()) {
        return Err(format!("OVSDB error: {e}"));
    }
    let res = answer
        .get("result")
        .and_then(Value::as_array)
        .ok_or("OVSDB answer without a result")?;
    let rows = |i: usize| -> std::result::Result<&Vec<Value>, String> {
        let r = res.get(i).ok_or("short OVSDB answer")?;
        if let Some(e) = r.get("error") {
            return Err(format!("OVSDB error: {e}"));
        }
        r.get("rows")
            .and_then(Value::as_array)
            .ok_or_else(|| "OVSDB answer without rows".to_string())
    };
    let (ifaces, ports, bridges) = (rows(0)?, rows(1)?, rows(2)?);
    // Older answers (and captures) carry no Open_vSwitch table.
    let system = res
        .get(3)
        .and_then(|r| r.get("rows"))
        .and_then(Value::as_array)
        .and_then(|r| r.first());
    // Neutron names each port after its single interface: join the tag on the name.
    let mut tag_of: BTreeMap<String, Option<u32>> = BTreeMap::new();
    let mut config_of: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for p in ports {
        if let Some(n) = p.get("name").and_then(Value::as_str) {
            tag_of.insert(n.to_string(), p.get("tag").and_then(opt_int));
            let oc = p.get("other_config").map(map).unwrap_or_default();
            if !oc.is_empty() {
                config_of.insert(n.to_string(), oc);
            }
        }
    }
    let bridge_names: Vec<String> = bridges
        .iter()
        .filter_map(|b| b.get("name").and_then(Value::as_str).map(String::from))
        .collect();
    // Which bridge each interface is in: Bridge.ports → Port.interfaces (by UUID, when the
    // answer carries them).
    let port_ifaces: BTreeMap<String, Vec<String>> = ports
        .iter()
        .filter_map(|p| {
            let u = uuids(p.get("_uuid")?).into_iter().next()?;
            Some((u, uuids(p.get("interfaces")?)))
        })
        .collect();
    let mut bridge_of_iface: BTreeMap<String, String> = BTreeMap::new();
    for b in bridges {
        let Some(bn) = b.get("name").and_then(Value::as_str) else {
            continue;
        };
        for pu in b.get("ports").map(uuids).unwrap_or_default() {
            for iu in port_ifaces.get(&pu).into_iter().flatten() {
                bridge_of_iface.insert(iu.clone(), bn.to_string());
            }
        }
    }
    let mut out = Vec::new();
    for i in ifaces {
        let Some(name) = i.get("name").and_then(Value::as_str) else {
            continue;
        };
        let ext = i.get("external_ids").map(map).unwrap_or_default();
        let opts = i.get("options").map(map).unwrap_or_default();
        out.push(OvsPort {
            name: name.to_string(),
            kind: i
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            iface_id: ext.get("iface-id").cloned(),
            attached_mac: ext.get("attached-mac").cloned(),
            mtu_request: i.get("mtu_request").and_then(opt_int),
            tag: tag_of.get(name).copied().flatten(),
            remote_ip: opts.get("remote_ip").cloned(),
            bridge: None,
            mtu: i.get("mtu").and_then(opt_int),
            in_bridge: i
                .get("_uuid")
                .and_then(|u| uuids(u).into_iter().next())
                .and_then(|u| bridge_of_iface.get(&u).cloned()),
            peer: opts.get("peer").cloned(),
            ofport: i.get("ofport").and_then(opt_i64),
            iface_status: ext.get("iface-status").cloned(),
            vm_uuid: ext.get("vm-uuid").cloned(),
            error: i.get("error").and_then(opt_str),
            link_state: i.get("link_state").and_then(opt_str),
            admin_state: i.get("admin_state").and_then(opt_str),
            local_ip: opts.get("local_ip").cloned(),
            key: opts.get("out_key").or_else(|| opts.get("key")).cloned(),
            dst_port: opts.get("dst_port").and_then(|p| p.parse().ok()),
            port_config: config_of.get(name).cloned().unwrap_or_default(),
        });
        if bridge_names.iter().any(|b| b == name) {
            if let Some(last) = out.last_mut() {
                last.bridge = Some(name.to_string());
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    let mut bridges: Vec<OvsBridge> = bridges
        .iter()
        .filter_map(|b| {
            Some(OvsBridge {
                name: b.get("name").and_then(Value::as_str)?.to_string(),
                datapath_type: b.get("datapath_type").and_then(opt_str).unwrap_or_default(),
                fail_mode: b.get("fail_mode").and_then(opt_str).unwrap_or_default(),
            })
        })
        .collect();
    bridges.sort_by(|a, b| a.name.cmp(&b.name));
    let sys_ext = system
        .and_then(|s| s.get("external_ids"))
        .map(map)
        .unwrap_or_default();
    Ok(OvsDb {
        ports: out,
        bridges,
        hostname: sys_ext.get("hostname").cloned(),
        ovs_version: system.and_then(|s| s.get("ovs_version")).and_then(opt_str),
    })
}

/// Ask one ovsdb-server (its unix socket) for the ports. Bounded by `timeout` as a whole
/// (connect, request and answer).
pub fn query(sock: &Path, timeout: Duration) -> Result<Vec<OvsPort>> {
    query_db(sock, timeout).map(|db| db.ports)
}

/// [`query`], with the bridges and the switch's identity.
pub fn query_db(sock: &Path, timeout: Duration) -> Result<OvsDb> {
    let shown = sock.display();
    let deadline = Deadline::after(timeout);
    let failed = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::TimedOut || e.kind() == std::io::ErrorKind::WouldBlock {
            Error::unknown(format!("OVSDB {shown} did not answer within {timeout:?}"))
        } else {
            Error::unknown(format!("OVSDB {shown}: {e}"))
        }
    };
    let mut s = connect_unix(sock, &deadline).map_err(|e| match e.kind() {
        std::io::ErrorKind::TimedOut => failed(e),
        _ => Error::unknown(format!("cannot connect to OVSDB at {shown}: {e}")),
    })?;
    write_all_by(&mut s, request().to_string().as_bytes(), &deadline).map_err(failed)?;
    match read_json_by(&mut s, &deadline, 64 << 20) {
        Ok(v) => parse_db(&v),
        Err(JsonReadError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(
            Error::unknown(format!("OVSDB {shown} closed the connection")),
        ),
        Err(JsonReadError::Io(e)) => Err(failed(e)),
        Err(JsonReadError::TooLarge) => Err(Error::unknown(format!(
            "OVSDB {shown}: answer larger than 64 MiB"
        ))),
        Err(JsonReadError::Bad(e)) => Err(Error::unknown(format!("OVSDB {shown}: bad JSON: {e}"))),
    }
}

/// One OVSDB to ask: its socket, and why not to when the server is not trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub socket: PathBuf,
    pub untrusted: Option<String>,
}

/// The unix sockets of the ovsdb-servers among `procs` (this network namespace's) (`--remote=punix:PATH`, as
/// reachable from here), else the default `/run/openvswitch/db.sock` when it exists. A server
/// is asked only when it is trusted (`collect::trust`) and its socket is its own or root's.
pub fn discover(procs: &[super::procs::Process], policy: &super::trust::Policy) -> Vec<Server> {
    use std::os::unix::fs::MetadataExt;
    let mut out: Vec<Server> = Vec::new();
    for p in procs.iter().filter(|p| p.name == "ovsdb-server") {
        let trusted = super::trust::judge(p, policy);
        let uid = p.cred.as_ref().map_or(0, |c| c.uid);
        for a in &p.args {
            let Some(path) = a.strip_prefix("--remote=punix:") else {
                continue;
            };
            let socket = p.path(path);
            if out.iter().any(|s| s.socket == socket) {
                continue;
            }
            let untrusted = match &trusted {
                Err(why) => Some(why.clone()),
                Ok(()) => std::fs::metadata(&socket).ok().and_then(|md| {
                    (md.uid() != 0 && md.uid() != uid).then(|| {
                        format!(
                            "{} belongs to uid {}, neither root nor ovsdb-server's uid {uid}",
                            socket.display(),
                            md.uid()
                        )
                    })
                }),
            };
            out.push(Server { socket, untrusted });
        }
    }
    let default = PathBuf::from("/run/openvswitch/db.sock");
    if out.is_empty() && default.exists() {
        out.push(Server {
            socket: default,
            untrusted: None,
        });
    }
    out
}

/// The OVSDBs to ask: the sockets given (`--ovsdb`, trusted as the user named them), else the
/// ones [`discover`] finds among `procs`.
pub fn servers(
    given: &[PathBuf],
    procs: &[super::procs::Process],
    policy: &super::trust::Policy,
) -> Vec<Server> {
    if given.is_empty() {
        return discover(procs, policy);
    }
    given
        .iter()
        .map(|s| Server {
            socket: s.clone(),
            untrusted: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_real_ovsdb_answer() {
        let v: Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ovsdb/transact.json"
        )))
        .expect("json");
        let ports = parse(&v).expect("parses");
        let dead = ports
            .iter()
            .find(|p| p.name == "tap9a8b7c6d-5e")
            .expect("tap");
        assert_eq!(dead.tag, Some(4095));
        assert_eq!(
            dead.iface_id.as_deref(),
            Some("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d")
        );
        assert_eq!(dead.attached_mac.as_deref(), Some("fa:16:3e:44:55:66"));
        assert_eq!(dead.mtu_request, Some(1450));
        let qr = ports
            .iter()
            .find(|p| p.name == "qr-7d1b3c2a-11")
            .expect("qr");
        assert_eq!((qr.tag, qr.kind.as_str()), (Some(1), "internal"));
        let vx = ports.iter().find(|p| p.kind == "vxlan").expect("vxlan");
        assert_eq!(
            (vx.name.as_str(), vx.remote_ip.as_deref()),
            ("vxlan-c0000202", Some("192.0.2.2"))
        );
        assert_eq!(
            ports
                .iter()
                .find(|p| p.name == "br-int")
                .and_then(|p| p.tag),
            None
        );
    }

    #[test]
    fn reads_a_real_compute_node_answer() {
        let v: Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ovsdb/compute-transact.json"
        )))
        .expect("json");
        let db = parse_db(&v).expect("parses");
        assert_eq!(db.hostname.as_deref(), Some("hv1"));
        let vm = db.port("tapc6677132-b4").expect("vm tap");
        assert_eq!(vm.ofport, Some(3));
        assert_eq!(vm.tag, Some(1));
        assert_eq!(vm.iface_status.as_deref(), Some("active"));
        assert_eq!(
            vm.vm_uuid.as_deref(),
            Some("9b0b8a53-0000-4000-8000-000000000011")
        );
        assert_eq!(vm.in_bridge.as_deref(), Some("br-int"));
        assert_eq!(
            (vm.link_state.as_deref(), vm.error.as_deref()),
            (Some("up"), None)
        );
        assert_eq!(
            vm.port_config.get("segmentation_id").map(String::as_str),
            Some("879")
        );
        assert_eq!(db.port("tap5a1e2b3c-4d").and_then(|p| p.tag), Some(4095));
        // No such device: ofport -1 and the reason.
        let bad = db.port("tap0bad0bad-00").expect("broken");
        assert_eq!(bad.ofport, Some(-1));
        assert!(
            bad.error
                .as_deref()
                .is_some_and(|e| e.contains("No such device")),
            "{bad:?}"
        );
        let vx = db.port("vxlan-c633640b").expect("tunnel");
        assert_eq!(
            (
                vx.remote_ip.as_deref(),
                vx.local_ip.as_deref(),
                vx.key.as_deref()
            ),
            (Some("198.51.100.11"), Some("198.51.100.21"), Some("flow"))
        );
        assert_eq!(vx.in_bridge.as_deref(), Some("br-tun"));
        assert!(db.userspace("br-int") && db.userspace("br-tun"));
        assert_eq!(
            db.bridge("br-int").map(|b| b.fail_mode.as_str()),
            Some("secure")
        );
        // The older capture (no Open_vSwitch table) still parses.
        let old: Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ovsdb/transact.json"
        )))
        .expect("json");
        assert!(parse_db(&old).expect("old").hostname.is_none());
    }

    #[test]
    fn errors_and_garbage() {
        assert!(parse(&json!({"error": "unknown database", "result": null})).is_err());
        assert!(parse(&json!({"result": [{"error": "x"}]})).is_err());
        assert!(parse(&json!({})).is_err());
        assert!(
            parse(&json!({"result": [{"rows": []}, {"rows": []}, {"rows": []}]}))
                .expect("empty")
                .is_empty()
        );
    }
}
