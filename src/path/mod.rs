//! `vmpath path TARGET`: the VM's whole path across hosts, from Neutron's records. Neutron
//! names the port's binding host and, on the overlay, the hosts of its router's L3 agents;
//! vmpath runs itself there over SSH (the OpenSSH client, BatchMode, the user's own config,
//! keys and agent; an optional jump host), in parallel and bounded, and joins the answers into
//! one path: the hypervisor's hops, the tunnel, the primary gateway's hops and the standby's
//! state — or, on a routed fabric, the hypervisor's hops and its BGP sessions. A host that
//! cannot be reached is a hop with the reason; the rest is shown.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::collect::openstack::clouds::Cloud;
use crate::collect::openstack::neutron::{PortQuery, PortRecords};
use crate::error::{Error, Result};
use crate::model::Status;
use crate::port::target::Target;

/// How to reach the other hosts.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    pub cloud: Cloud,
    /// Per Neutron call.
    pub timeout: Duration,
    /// Per host (the SSH connection and the remote vmpath).
    pub host_timeout: Duration,
    /// `ssh -F FILE`.
    pub ssh_config: Option<std::path::PathBuf>,
    /// `ssh -J HOST`.
    pub jump: Option<String>,
    /// The vmpath to run on the other hosts.
    pub remote_vmpath: String,
    /// Options for the remote walks (`--timeout`).
    pub remote_timeout: Duration,
}

/// One host of the path.
#[derive(Debug, Clone, Serialize)]
pub struct Hop {
    pub host: String,
    /// `hypervisor`, `primary gateway`, `standby gateway`, `gateway`.
    pub role: String,
    /// The remote command (argv of ssh).
    pub command: Vec<String>,
    pub verdict: Status,
    /// The remote vmpath's exit code (`None`: it did not run to the end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The remote vmpath's JSON document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<Value>,
    /// Why there is no report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub port_id: String,
    /// `overlay` (a router behind tunnels) or `routed` (the hypervisor routes, BGP).
    pub design: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    pub verdict: Status,
    pub exit_code: u8,
    pub hops: Vec<Hop>,
    /// What Neutron said (the port's binding, the router's agents).
    pub neutron: Vec<String>,
    pub elapsed_ms: u64,
}

/// A host to visit: its name, its role on the path and the vmpath arguments to run there.
pub type Visit = (String, String, Vec<String>);

/// The hosts to visit, in path order, and the router (on the overlay): pure, from Neutron's
/// records.
pub fn plan(rec: &PortRecords) -> Result<(Vec<Visit>, Option<String>)> {
    let p = &rec.port;
    let host = p.binding_host.clone().unwrap_or_default();
    if host.is_empty() {
        return Err(Error::unknown(format!(
            "Neutron binds port {} to no host (binding:vif_type {}): there is no path to walk yet",
            p.id,
            p.vif_type
                .as_deref()
                .unwrap_or("not visible to these credentials")
        )));
    }
    let mut hops = vec![(
        host,
        "hypervisor".to_string(),
        vec!["walk".to_string(), p.id.clone()],
    )];
    let gw = rec.gateway().cloned();
    let overlay = p.vif_type.as_deref() == Some("ovs") || gw.is_some();
    let mut router = None;
    if let (true, Some(gw)) = (overlay, gw) {
        router = Some(gw.router_id.clone());
        let mut agents = rec
            .l3_agents
            .as_ref()
            .and_then(|a| a.as_ref().ok())
            .cloned()
            .unwrap_or_default();
        // The primary first.
        agents.sort_by_key(|a| a.ha_state.as_deref() != Some("active"));
        for a in agents {
            let role = match a.ha_state.as_deref() {
                Some("active") => "primary gateway",
                Some("standby") => "standby gateway",
                None => "gateway",
                Some(_) => "gateway (state unknown to Neutron)",
            };
            hops.push((
                a.host.clone(),
                role.to_string(),
                vec!["router".to_string(), gw.router_id.clone()],
            ));
        }
    }
    Ok((hops, router))
}

/// The ssh command line for `args` on `host` (each remote word shell-quoted: ssh hands the
/// remote side one command line).
pub fn ssh_argv(o: &Options, host: &str, args: &[String]) -> Vec<String> {
    // The OpenSSH client from PATH's absolute directories (then the system's).
    let ssh = crate::collect::child::find_bin("ssh")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "/usr/bin/ssh".into());
    let mut v = vec![
        ssh,
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        format!("ConnectTimeout={}", o.host_timeout.as_secs().clamp(1, 60)),
        "-T".into(),
    ];
    if let Some(f) = &o.ssh_config {
        v.push("-F".into());
        v.push(f.display().to_string());
    }
    if let Some(j) = &o.jump {
        v.push("-J".into());
        v.push(j.clone());
    }
    v.push("--".into());
    v.push(host.to_string());
    let mut remote = vec![o.remote_vmpath.clone()];
    remote.extend(args.iter().cloned());
    remote.push("--json".into());
    remote.push("--timeout".into());
    remote.push(format!("{}ms", o.remote_timeout.as_millis()));
    v.push(
        remote
            .iter()
            .map(|w| crate::collect::child::sh(w))
            .collect::<Vec<_>>()
            .join(" "),
    );
    v
}

/// A remote vmpath's answer: its verdict from its exit code and document.
fn hop_of(
    host: String,
    role: String,
    argv: Vec<String>,
    ran: Result<crate::collect::child::Ran>,
    ms: u64,
) -> Hop {
    let mut hop = Hop {
        host,
        role,
        command: argv,
        verdict: Status::Unknown,
        exit_code: None,
        report: None,
        error: None,
        elapsed_ms: ms,
    };
    match ran {
        Err(e) => hop.error = Some(e.to_string()),
        Ok(r) => {
            let code = r.status.code();
            hop.exit_code = code;
            let doc: Option<Value> = serde_json::from_slice(&r.stdout).ok();
            match (code, doc) {
                (Some(255), _) | (None, _) => {
                    let err = String::from_utf8_lossy(&r.stderr);
                    hop.error = Some(format!(
                        "ssh failed: {}",
                        err.lines().last().unwrap_or("no message").trim()
                    ));
                }
                (_, Some(d)) if d.get("error").is_some() => {
                    hop.error = Some(
                        d["error"]["message"]
                            .as_str()
                            .unwrap_or("the remote vmpath failed")
                            .to_string(),
                    );
                    hop.report = Some(d);
                }
                (Some(c), Some(d)) => {
                    hop.verdict = match c {
                        0 => Status::Ok,
                        1 => Status::Warn,
                        2 => Status::Fail,
                        _ => Status::Unknown,
                    };
                    hop.report = Some(d);
                }
                (Some(c), None) => {
                    let err = String::from_utf8_lossy(&r.stderr);
                    hop.error = Some(format!(
                        "the remote vmpath (exit {c}) printed no JSON: {}",
                        err.lines().last().unwrap_or("").trim()
                    ));
                }
            }
        }
    }
    hop
}

/// Find the port in Neutron, plan the hosts, run vmpath on each (in parallel), join.
pub fn run(o: &Options) -> Result<Report> {
    let started = Instant::now();
    let q = match &o.target {
        Target::Ip(ip) => PortQuery::Ip(*ip),
        Target::Mac(m) => PortQuery::Mac(m.clone()),
        Target::PortId(id) => PortQuery::Id(id.clone()),
        Target::PortPrefix(_) | Target::Tap(_) => {
            return Err(Error::usage(
                "vmpath path finds the port through Neutron: give its UUID, its instance's UUID, an address or a MAC",
            ))
        }
    };
    let ports = crate::collect::openstack::find(&o.cloud, &q, o.timeout)?;
    let port = match ports.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(Error::not_here(format!(
                "Neutron (cloud '{}') has no port for {}",
                o.cloud.name, o.target
            )))
        }
        many => {
            return Err(Error::usage(format!(
                "{} names {} ports in Neutron ({}): give one port UUID",
                o.target,
                many.len(),
                many.iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    };
    let facts = crate::collect::openstack::spawn_lookup(
        o.cloud.clone(),
        PortQuery::Id(port.id.clone()),
        Some(port.network_id.clone()),
        true,
        o.timeout,
    )
    .join()
    .map_err(|_| Error::unknown("the Neutron lookup failed"))?;
    let rec = facts
        .ports
        .as_ref()
        .map_err(Clone::clone)?
        .first()
        .cloned()
        .ok_or_else(|| Error::not_here(format!("Neutron has no port {}", port.id)))?;
    let (plan, router) = plan(&rec)?;
    let mut neutron = vec![format!(
        "port {} bound to {} (binding:vif_type {}, status {})",
        rec.port.id,
        rec.port.binding_host.as_deref().unwrap_or("-"),
        rec.port.vif_type.as_deref().unwrap_or("-"),
        rec.port.status
    )];
    if let (Some(r), Some(Ok(a))) = (&router, &rec.l3_agents) {
        neutron.push(format!(
            "router {r} on {}",
            crate::check::handoff::agents_text(a)
        ));
    }
    // Every host at once, each bounded.
    let handles: Vec<_> = plan
        .into_iter()
        .map(|(host, role, args)| {
            let argv = ssh_argv(o, &host, &args);
            let limit = o.host_timeout;
            std::thread::spawn(move || {
                let t = Instant::now();
                let ran = crate::collect::child::run(&argv, &[], limit);
                let ms = u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX);
                hop_of(host, role, argv, ran, ms)
            })
        })
        .collect();
    let hops: Vec<Hop> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    let verdict = hops
        .iter()
        .map(|h| h.verdict)
        .max()
        .unwrap_or(Status::Unknown);
    Ok(Report {
        target: o.target.to_string(),
        port_id: rec.port.id.clone(),
        design: if router.is_some() {
            "overlay"
        } else {
            "routed"
        },
        router_id: router,
        verdict,
        exit_code: crate::model::exit_code(verdict),
        hops,
        neutron,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// The checks of a hop's report (a walk's `checks`, a router's `routers[0].checks`).
pub fn hop_checks(report: &Value) -> Vec<&Value> {
    let list = report
        .get("checks")
        .or_else(|| report.pointer("/routers/0/checks"));
    list.and_then(Value::as_array)
        .map(|v| v.iter().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::openstack::neutron::{parse_one, Gateway, L3Agent, Port};

    fn rec(host: &str, vif: &str, agents: &[(&str, &str)]) -> PortRecords {
        let port: Port = parse_one(
            &serde_json::json!({"port": {"id": "p1", "binding:host_id": host, "binding:vif_type": vif, "status": "ACTIVE"}}),
            "port",
        )
        .unwrap();
        PortRecords {
            port,
            network: Err(Error::unknown("-")),
            subnets: Ok(vec![]),
            gateways: (!agents.is_empty()).then(|| {
                Ok(vec![Gateway {
                    router_id: "r1".into(),
                    port_id: "qr".into(),
                    mac: "fa:16:3e:00:00:01".into(),
                    ip: "198.18.0.1".parse().unwrap(),
                    subnet_id: "s".into(),
                    device_owner: "network:ha_router_replicated_interface".into(),
                }])
            }),
            l3_agents: Some(Ok(agents
                .iter()
                .map(|(h, s)| L3Agent {
                    host: h.to_string(),
                    alive: true,
                    admin_state_up: true,
                    ha_state: Some(s.to_string()),
                })
                .collect())),
            vteps: None,
            sg_rules: None,
        }
    }

    #[test]
    fn the_hypervisor_then_the_primary_then_the_standby() {
        let (hops, router) = plan(&rec(
            "hv1",
            "ovs",
            &[("net1", "standby"), ("net2", "active")],
        ))
        .unwrap();
        let got: Vec<(&str, &str, &str)> = hops
            .iter()
            .map(|(h, r, a)| (h.as_str(), r.as_str(), a[0].as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("hv1", "hypervisor", "walk"),
                ("net2", "primary gateway", "router"),
                ("net1", "standby gateway", "router")
            ]
        );
        assert_eq!(router.as_deref(), Some("r1"));
        // A routed port (no router behind tunnels): the hypervisor alone.
        let (hops, router) = plan(&rec("hv1", "tap", &[])).unwrap();
        assert_eq!((hops.len(), router), (1, None));
        assert!(plan(&rec("", "unbound", &[])).is_err());
    }

    #[test]
    fn the_remote_command_is_quoted_for_the_remote_shell() {
        let o = Options {
            target: Target::PortId("p1".into()),
            cloud: crate::collect::openstack::clouds::resolve(
                &crate::collect::openstack::clouds::Files {
                    clouds: Some(("/c".into(), "clouds:\n  c:\n    auth_type: token\n    auth:\n      auth_url: http://k\n      token: t\n".into())),
                    secure: None,
                },
                &Default::default(),
                Some("c"),
            )
            .unwrap()
            .unwrap(),
            timeout: Duration::from_secs(2),
            host_timeout: Duration::from_secs(30),
            ssh_config: Some("/etc/vmpath/ssh config".into()),
            jump: Some("bastion".into()),
            remote_vmpath: "/opt/vm path/vmpath".into(),
            remote_timeout: Duration::from_secs(2),
        };
        let v = ssh_argv(&o, "hv1", &["walk".into(), "p1; rm -rf /".into()]);
        assert!(v[0].ends_with("ssh"), "{}", v[0]);
        assert!(v.contains(&"BatchMode=yes".to_string()));
        assert!(v.windows(2).any(|w| w == ["-J", "bastion"]));
        assert!(v.windows(2).any(|w| w == ["-F", "/etc/vmpath/ssh config"]));
        let remote = v.last().unwrap();
        assert_eq!(
            remote,
            "'/opt/vm path/vmpath' walk 'p1; rm -rf /' --json --timeout 2000ms"
        );
        let i = v.iter().position(|a| a == "--").unwrap();
        assert_eq!(v[i + 1], "hv1");
    }

    #[test]
    fn a_hops_verdict_is_its_exit_code_and_ssh_failures_say_why() {
        use std::os::unix::process::ExitStatusExt;
        let ran = |code: i32, out: &str, err: &str| {
            Ok(crate::collect::child::Ran {
                status: std::process::ExitStatus::from_raw(code << 8),
                stdout: out.as_bytes().to_vec(),
                stderr: err.as_bytes().to_vec(),
            })
        };
        let h = |r| hop_of("h".into(), "hypervisor".into(), vec![], r, 1);
        assert_eq!(h(ran(2, r#"{"checks": []}"#, "")).verdict, Status::Fail);
        assert_eq!(h(ran(0, r#"{"checks": []}"#, "")).verdict, Status::Ok);
        let e = h(ran(
            255,
            "",
            "ssh: connect to host hv1 port 22: Connection refused\n",
        ));
        assert_eq!(e.verdict, Status::Unknown);
        assert!(e.error.unwrap().contains("Connection refused"));
        let e = h(ran(
            64,
            r#"{"error": {"kind": "not_here", "message": "no port"}}"#,
            "",
        ));
        assert_eq!(
            (e.verdict, e.error.as_deref()),
            (Status::Unknown, Some("no port"))
        );
        let e = h(ran(127, "", "bash: vmpath: command not found\n"));
        assert!(e.error.unwrap().contains("command not found"));
        let e = h(Err(Error::unknown("ssh: no answer within 5000 ms")));
        assert_eq!(e.verdict, Status::Unknown);
    }
}
