//! The gateway views for people: `vmpath routers` (every router at a glance, then the failing
//! ones and the node's checks in walk's layout) and `vmpath router ID` (one router, every check).

use std::io::Write;

use super::{render_checks, verdict_line, Style};
use crate::gateway::RoutersReport;

pub fn all(out: &mut dyn Write, r: &RoutersReport, style: Style) -> std::io::Result<()> {
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
        let mut t = style.table();
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
            render_checks(out, &bad, style)?;
        }
    }
    if !r.host_checks.is_empty() {
        writeln!(out, "\nnode {}:", r.host)?;
        render_checks(out, &r.host_checks, style)?;
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

pub fn one(out: &mut dyn Write, r: &RoutersReport, style: Style) -> std::io::Result<()> {
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
        render_checks(out, &all, style)?;
        writeln!(
            out,
            "{}",
            verdict_line(crate::model::verdict(&all), &all, "", style)
        )?;
        // The path the other way: the VM's side, on the host its port is bound to.
        let behind = if x.tenant_prefixes.is_empty() {
            String::new()
        } else {
            format!(" (in {})", x.tenant_prefixes.join(", "))
        };
        writeln!(
            out,
            "the VM's side: on the compute node hosting it, `vmpath walk VM_ADDRESS`{behind} walks its port, flows and tunnels back to this node"
        )?;
    }
    Ok(())
}
