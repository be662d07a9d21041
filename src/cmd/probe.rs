//! `vmpath probe DST`.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use comfy_table::Cell;
use serde::Serialize;

use super::args::GlobalArgs;
use crate::config;
use crate::error::Error;
use crate::model::exit;
use crate::output::Style;
use crate::probe::engine::{self, Config, HopsMode};
use crate::probe::report::{self, Flow, Summary};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Hops {
    /// Failing flows and a few reaching ones (enough to find the ECMP branches)
    Needed,
    /// Every flow (full per-flow hop maps; slower where routers rate-limit ICMP)
    All,
    /// None: classify flows only
    None,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Destination IPv4 or IPv6 address
    #[arg(value_name = "DST")]
    pub dst: String,
    /// Destination TCP port (1-65535)
    #[arg(long, short = 'p', default_value_t = 22, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Number of flows (source ports from 33000 up, skipping ports in use)
    #[arg(
        long,
        value_name = "N",
        conflicts_with = "sports",
        default_value_t = 32
    )]
    pub flows: u16,
    /// Exact source ports: a range LO-HI and/or a comma list (33000-33031,40000)
    #[arg(long, value_name = "PORTS")]
    pub sports: Option<String>,
    /// Highest TTL (hop limit) probed; also the TTL of the classifying SYN
    #[arg(long, value_name = "TTL", default_value_t = 16, value_parser = clap::value_parser!(u8).range(1..=64))]
    pub max_ttl: u8,
    /// Probe from inside this network namespace (a name under /run/netns, or a path)
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// Source address (default: the kernel's choice towards DST)
    #[arg(long, value_name = "IP")]
    pub source: Option<IpAddr>,
    /// Send and listen on this interface only
    #[arg(long, value_name = "IF")]
    pub interface: Option<String>,
    /// Full-TTL attempts per flow, to tell a deterministic blackhole from random loss
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repeat: u32,
    /// How long to wait for a reply: 1s, 500ms
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub timeout: String,
    /// Upper bound for the whole run (pacing around ICMP rate limits stops there)
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub max_time: String,
    /// Which flows to trace hop by hop
    #[arg(long, value_enum, default_value_t = Hops::Needed)]
    pub hops: Hops,
}

/// The JSON document of `vmpath probe --json` (documented in README.md).
#[derive(Debug, Serialize)]
pub struct ProbeReport {
    pub destination: IpAddr,
    pub port: u16,
    pub source: IpAddr,
    pub netns: Option<String>,
    /// `ok` (every flow reaches the destination), `warn` (intermittent flows), `fail`.
    pub verdict: &'static str,
    pub elapsed_ms: f64,
    pub classify_ms: f64,
    pub probes_sent: usize,
    pub skipped_ports: Vec<u16>,
    pub summary: Summary,
    pub flows: Vec<Flow>,
}

/// Parse `33000-33031,40000`.
pub fn parse_ports(s: &str) -> Result<Vec<u16>, Error> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || {
            Error::usage(format!(
                "bad source port list `{s}`: use LO-HI and/or comma-separated ports (1-65535)"
            ))
        };
        if let Some((a, b)) = part.split_once('-') {
            let a: u16 = a.trim().parse().map_err(|_| bad())?;
            let b: u16 = b.trim().parse().map_err(|_| bad())?;
            if a == 0 || b < a {
                return Err(bad());
            }
            out.extend(a..=b);
        } else {
            let p: u16 = part.parse().map_err(|_| bad())?;
            if p == 0 {
                return Err(bad());
            }
            out.push(p);
        }
    }
    out.sort_unstable();
    out.dedup();
    if out.is_empty() || out.len() > 1024 {
        return Err(Error::usage(format!(
            "source ports `{s}`: give between 1 and 1024 ports"
        )));
    }
    Ok(out)
}

pub fn exec(g: &GlobalArgs, a: &ProbeArgs) -> Result<u8, Error> {
    // No key of the config file is about probing yet; a file that is wrong is still an error,
    // as for every other command.
    config::Config::load(g.config.as_deref())?;
    let dst: IpAddr = match a.dst.parse() {
        Ok(d) => d,
        Err(_) => {
            return Err(Error::usage(format!(
                "`{}` is not an IPv4 or IPv6 address",
                a.dst
            )))
        }
    };
    let (sports, explicit) = match &a.sports {
        Some(s) => (parse_ports(s)?, true),
        None => {
            if a.flows == 0 || a.flows > 1024 {
                return Err(Error::usage("--flows must be between 1 and 1024"));
            }
            ((0..a.flows).map(|i| 33000 + i).collect(), false)
        }
    };
    let timeout = config::parse_duration(&a.timeout).map_err(|e| e.context("--timeout"))?;
    let max_time = config::parse_duration(&a.max_time).map_err(|e| e.context("--max-time"))?;
    let cfg = Config {
        dst,
        port: a.port,
        sports,
        explicit_sports: explicit,
        max_ttl: a.max_ttl,
        source: a.source,
        interface: a.interface.clone(),
        repeat: a.repeat,
        timeout,
        max_time,
        hops: match a.hops {
            Hops::Needed => HopsMode::Needed,
            Hops::All => HopsMode::All,
            Hops::None => HopsMode::None,
        },
    };
    // Refused before any namespace is entered or packet sent.
    cfg.validate()?;
    let result = match &a.netns {
        Some(ns) => {
            let path = if ns.contains('/') {
                PathBuf::from(ns)
            } else {
                PathBuf::from("/run/netns").join(ns)
            };
            crate::collect::netns::run_in(&path, move || engine::run(cfg)).map_err(|e| match e {
                Error::Usage(_) => e.context(format!("--netns {ns}")),
                e => e,
            })?
        }
        None => engine::run(cfg),
    };
    let out = result?;
    let summary = report::summarise(&out.flows, dst, a.port);
    let verdict = if summary.failing > 0 {
        "fail"
    } else if summary.intermittent > 0 {
        "warn"
    } else {
        "ok"
    };
    let code = match verdict {
        "ok" => exit::OK,
        "warn" => exit::WARN,
        _ => exit::FAIL,
    };
    let rep = ProbeReport {
        destination: dst,
        port: a.port,
        source: out.source,
        netns: a.netns.clone(),
        verdict,
        elapsed_ms: out.elapsed.as_secs_f64() * 1e3,
        classify_ms: out.classify_elapsed.as_secs_f64() * 1e3,
        probes_sent: out.probes_sent,
        skipped_ports: out.skipped_ports,
        summary,
        flows: out.flows,
    };
    let written = crate::output::emit(g.json, &rep, |out| {
        render(out, &rep, Style::detect(g.verbose))
    });
    Ok(crate::output::exit_after("probe", written, code))
}

fn hop_text(f: &Flow) -> String {
    if !f.traced {
        return "-".into();
    }
    f.hops
        .iter()
        .map(|h| match (h.address, h.note) {
            (Some(a), Some("inferred")) => format!("{a}~"),
            (Some(a), _) => a.to_string(),
            (None, Some("rate-limited")) => "*rl".into(),
            (None, _) => "*".into(),
        })
        .collect::<Vec<_>>()
        .join(" > ")
        + &f.hops_from
            .map(|p| format!("  (as {p}: same recorded route)"))
            .unwrap_or_default()
}

fn outcome_text(f: &Flow) -> String {
    let mut s = f.outcome.as_str().to_string();
    if let Some(c) = f.icmp_code {
        s.push_str(&format!(" code {c}"));
    }
    if !f.consistent {
        let a: Vec<&str> = f.attempts.iter().map(|o| o.as_str()).collect();
        s.push_str(&format!(" (attempts: {})", a.join(",")));
    }
    s
}

fn render(out: &mut dyn Write, r: &ProbeReport, style: Style) -> std::io::Result<()> {
    writeln!(
        out,
        "vmpath probe {} port {} from {}{}: {} flows, {} probes, {:.0} ms (classified in {:.0} ms)",
        r.destination,
        r.port,
        r.source,
        r.netns
            .as_deref()
            .map(|n| format!(" (netns {n})"))
            .unwrap_or_default(),
        r.flows.len(),
        r.probes_sent,
        r.elapsed_ms,
        r.classify_ms
    )?;
    for l in &r.summary.lines {
        writeln!(out, "  {l}")?;
    }
    writeln!(out)?;
    let route = |f: &Flow| {
        f.local_route
            .as_ref()
            .map(|l| match l.gateway {
                Some(g) => format!("{g} {}", l.dev),
                None => l.dev.clone(),
            })
            .unwrap_or_else(|| "?".into())
    };
    if style.table {
        let mut t = style.table();
        t.set_header(vec![
            "sport",
            "outcome",
            "rtt ms",
            "local next hop",
            "hops (~ inferred, *rl rate-limited)",
        ]);
        for f in &r.flows {
            t.add_row(vec![
                Cell::new(f.sport),
                Cell::new(outcome_text(f)),
                Cell::new(
                    f.rtt_ms
                        .map(|x| format!("{x:.2}"))
                        .unwrap_or_else(|| "-".into()),
                ),
                Cell::new(route(f)),
                Cell::new(hop_text(f)),
            ]);
        }
        writeln!(out, "{t}")?;
    } else {
        for f in &r.flows {
            writeln!(
                out,
                "{:<6} {:<24} {:>8} {:<28} {}",
                f.sport,
                outcome_text(f),
                f.rtt_ms
                    .map(|x| format!("{x:.2}"))
                    .unwrap_or_else(|| "-".into()),
                route(f),
                hop_text(f)
            )?;
        }
    }
    writeln!(out, "verdict: {}", r.verdict)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lists() {
        assert_eq!(
            parse_ports("33000-33002,40000").expect("test fixture"),
            vec![33000, 33001, 33002, 40000]
        );
        assert!(parse_ports("0").is_err());
        assert!(parse_ports("5-3").is_err());
        assert!(parse_ports("x").is_err());
        assert!(parse_ports("1-2000").is_err());
    }
}
