//! Which port the target names on an Open vSwitch compute node (the overlay design): the VM's
//! interface as OVSDB knows it — `external_ids:iface-id` (the Neutron port), `attached-mac`, the
//! Interface's name — and how it is plugged: natively (the tap is the OVS port) or hybrid (tap →
//! Linux bridge `qbr` → veth `qvb`/`qvo`, the `qvo` end in OVS). Pure.

use serde::Serialize;

use crate::collect::ovsdb::{OvsDb, OvsPort};
use crate::error::{Error, Result};
use crate::port::target::{Target, PORT_PREFIX_LEN};

/// The devices of a hybrid plug (os-vif `ovs_hybrid_plug`): names are the prefix + the first
/// 11 characters of the port UUID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hybrid {
    pub qbr: String,
    pub qvb: String,
    pub qvo: String,
}

/// The VM's interface on this compute node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vif {
    /// The Neutron port (`external_ids:iface-id`), when the Interface carries one.
    pub port_id: Option<String>,
    /// `external_ids:attached-mac`.
    pub mac: Option<String>,
    /// The VM's own device on this host (the tap; for vhost-user the OVS port itself).
    pub tap: String,
    /// The OVS Interface the port is plugged as (the tap, or `qvo…` when hybrid).
    pub ovs_iface: String,
    /// The bridge that Interface is in (the integration bridge, `br-int`).
    pub bridge: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hybrid: Option<Hybrid>,
    /// How the target was matched.
    pub matched_by: String,
}

impl Vif {
    /// The OVSDB Interface of the port.
    pub fn iface<'a>(&self, db: &'a OvsDb) -> Option<&'a OvsPort> {
        db.port(&self.ovs_iface)
    }
}

/// The 11-character port prefix of a Nova/os-vif device name (`tap`, `qvo`, `qvb`, `qbr`, `vhu`).
fn prefix_of(name: &str) -> Option<&str> {
    ["tap", "qvo", "qvb", "qbr", "vhu"]
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .filter(|rest| rest.len() == PORT_PREFIX_LEN)
}

/// The Vif for an OVS Interface that is a VM port.
fn vif_of(p: &OvsPort, matched_by: String) -> Option<Vif> {
    let bridge = p.in_bridge.clone()?;
    let hybrid = p.name.strip_prefix("qvo").map(|prefix| Hybrid {
        qbr: format!("qbr{prefix}"),
        qvb: format!("qvb{prefix}"),
        qvo: p.name.clone(),
    });
    let tap = match (&hybrid, p.name.strip_prefix("qvo")) {
        (Some(_), Some(prefix)) => format!("tap{prefix}"),
        _ => p.name.clone(),
    };
    Some(Vif {
        port_id: p.iface_id.clone(),
        mac: p.attached_mac.clone(),
        tap,
        ovs_iface: p.name.clone(),
        bridge,
        hybrid,
        matched_by,
    })
}

/// Is this OVS Interface a VM's port: a device in a bridge that is no bridge's own, no patch,
/// no tunnel and no internal port, and none of a network node's router, HA or DHCP devices.
fn is_vm_port(p: &OvsPort) -> bool {
    p.bridge.is_none()
        && p.in_bridge.is_some()
        && !matches!(
            p.kind.as_str(),
            "patch" | "vxlan" | "geneve" | "gre" | "stt" | "internal"
        )
        && !["qr-", "qg-", "ha-", "ns-", "sg-", "fg-", "rfp-"]
            .iter()
            .any(|n| p.name.starts_with(n))
}

/// The port `target` names among the OVS Interfaces of this host. `Error::NotHere` when none
/// does (the caller then tries the routed design), `Error::Usage` when several do.
pub fn resolve(target: &Target, db: &OvsDb) -> Result<Vif> {
    let vm_ports = || db.ports.iter().filter(|p| is_vm_port(p));
    let found: Vec<(&OvsPort, String)> = match target {
        Target::PortId(id) => {
            let by_port: Vec<_> = vm_ports()
                .filter(|p| p.iface_id.as_deref() == Some(id.as_str()))
                .map(|p| (p, "OVSDB external_ids:iface-id".to_string()))
                .collect();
            if by_port.is_empty() {
                // An instance UUID: the ports plugged into it (os-vif's vm-uuid).
                vm_ports()
                    .filter(|p| p.vm_uuid.as_deref() == Some(id.as_str()))
                    .map(|p| {
                        (
                            p,
                            "OVSDB external_ids:vm-uuid (the instance's port)".to_string(),
                        )
                    })
                    .collect()
            } else {
                by_port
            }
        }
        Target::PortPrefix(pre) => vm_ports()
            .filter(|p| {
                p.iface_id
                    .as_deref()
                    .is_some_and(|i| i.starts_with(pre.as_str()))
                    || prefix_of(&p.name) == Some(pre.as_str())
            })
            .map(|p| (p, "the port-id prefix (OVSDB iface-id)".to_string()))
            .collect(),
        Target::Tap(name) => {
            let direct: Vec<_> = vm_ports()
                .filter(|p| &p.name == name)
                .map(|p| (p, "OVS interface name".to_string()))
                .collect();
            if direct.is_empty() {
                // A hybrid plug: the tap, qbr or qvb of a port whose qvo is in OVS.
                match prefix_of(name) {
                    Some(pre) => vm_ports()
                        .filter(|p| p.name == format!("qvo{pre}"))
                        .map(|p| (p, format!("{name} → its hybrid plug's {}", p.name)))
                        .collect(),
                    None => Vec::new(),
                }
            } else {
                direct
            }
        }
        Target::Mac(mac) => vm_ports()
            .filter(|p| {
                p.attached_mac
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(mac))
            })
            .map(|p| (p, "OVSDB external_ids:attached-mac".to_string()))
            .collect(),
        Target::Ip(ip) => {
            return Err(Error::not_here(format!(
                "{ip}: on an Open vSwitch compute node an address is matched through the flows; \
name the port by its UUID, tap or MAC"
            )))
        }
    };
    match found.as_slice() {
        [] => Err(Error::not_here(format!(
            "no Open vSwitch port on this host matches {target}"
        ))),
        [(p, how)] => vif_of(p, how.clone())
            .ok_or_else(|| Error::not_here(format!("{} is in no OVS bridge", p.name))),
        many => Err(Error::usage(format!(
            "{target} matches {} OVS ports ({}): name one by its port UUID or tap",
            many.len(),
            many.iter()
                .map(|(p, _)| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> OvsDb {
        let v: serde_json::Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ovsdb/compute-transact.json"
        )))
        .expect("json");
        crate::collect::ovsdb::parse_db(&v).expect("parses")
    }

    #[test]
    fn a_native_port_by_uuid_prefix_tap_and_mac() {
        let db = db();
        for t in [
            "c6677132-b418-4ed3-9d5f-df0ef7b0f22f",
            "c6677132-b4",
            "tapc6677132-b4",
            "fa:16:3e:63:ad:00",
        ] {
            let v = resolve(&Target::parse(t).expect("target"), &db).expect(t);
            assert_eq!(v.tap, "tapc6677132-b4", "{t}");
            assert_eq!(v.ovs_iface, "tapc6677132-b4");
            assert_eq!(v.bridge, "br-int");
            assert_eq!(v.hybrid, None);
            assert_eq!(
                v.port_id.as_deref(),
                Some("c6677132-b418-4ed3-9d5f-df0ef7b0f22f")
            );
        }
    }

    #[test]
    fn an_instance_uuid_names_its_port_and_two_ports_are_refused() {
        let mut db = db();
        let vm = "0b1c2d3e-4f50-4a61-8b72-93a4b5c6d7e8";
        for p in db.ports.iter_mut().filter(|p| p.name == "tapc6677132-b4") {
            p.vm_uuid = Some(vm.into());
        }
        let v = resolve(&Target::parse(vm).expect("uuid"), &db).expect("instance");
        assert_eq!(v.tap, "tapc6677132-b4");
        assert!(v.matched_by.contains("vm-uuid"), "{}", v.matched_by);
        let mut second = db
            .ports
            .iter()
            .find(|p| p.name == "tapc6677132-b4")
            .cloned()
            .expect("tap");
        second.name = "tapd0000000-00".into();
        second.iface_id = Some("d0000000-0000-4000-8000-000000000000".into());
        db.ports.push(second);
        let e = resolve(&Target::parse(vm).expect("uuid"), &db).expect_err("two ports");
        assert!(matches!(e, Error::Usage(_)), "{e:?}");
        assert!(e.to_string().contains("tapd0000000-00"), "{e}");
    }

    #[test]
    fn tunnels_patches_and_unknown_targets_are_not_ports() {
        let db = db();
        for t in ["vxlan-c633640b", "patch-tun", "br-int", "fa:16:3e:99:99:99"] {
            let Ok(target) = Target::parse(t) else {
                continue;
            };
            let e = resolve(&target, &db).expect_err(t);
            assert!(matches!(e, Error::NotHere(_)), "{t}: {e:?}");
        }
        let e = resolve(&Target::parse("198.18.0.197").expect("ip"), &db).expect_err("ip");
        assert!(matches!(e, Error::NotHere(_)));
    }

    #[test]
    fn a_hybrid_plug_is_found_from_its_tap_qbr_or_qvo() {
        let mut db = db();
        let p = db
            .ports
            .iter_mut()
            .find(|p| p.name == "tapc6677132-b4")
            .expect("tap");
        p.name = "qvoc6677132-b4".into();
        for t in [
            "tapc6677132-b4",
            "qbrc6677132-b4",
            "qvoc6677132-b4",
            "c6677132-b4",
        ] {
            let v = resolve(&Target::Tap(t.into()), &db)
                .or_else(|_| resolve(&Target::parse(t).expect("target"), &db))
                .expect(t);
            assert_eq!(v.tap, "tapc6677132-b4", "{t}");
            assert_eq!(v.ovs_iface, "qvoc6677132-b4");
            assert_eq!(
                v.hybrid,
                Some(Hybrid {
                    qbr: "qbrc6677132-b4".into(),
                    qvb: "qvbc6677132-b4".into(),
                    qvo: "qvoc6677132-b4".into()
                })
            );
        }
    }
}
