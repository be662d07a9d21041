//! Command-line definition (also the source of the committed completions and man page) and the
//! dispatcher. Each subcommand lives in `src/cmd/`.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::cmd::args::GlobalArgs;
use crate::model::exit;

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0   every check ok
  1   the worst finding is a warning
  2   at least one check failed
  3   could not determine: a source did not answer (and nothing failed), or privileges are missing
  64  bad usage: unknown option, malformed or unknown target, bad config file";

#[derive(Debug, Parser)]
#[command(
    name = "vmpath",
    version,
    about = "Walk, check and explain the network path of an OpenStack VM on its hypervisor",
    long_about = "vmpath checks every hop of a VM's network path on the host it runs on: the tap, \
gateway address and proxy ARP, host routes, neighbour entry, security group, DHCP entry, metadata \
proxy, and what the routing daemon (BIRD or FRR) has in its RIB and advertises to each ToR. Each \
check says ok, warn, fail or unknown, shows the evidence it saw and the fix.",
    after_help = EXIT_CODES_HELP,
    disable_help_subcommand = true,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Walk one VM's path on this hypervisor and check every hop
    #[command(after_help = EXIT_CODES_HELP, after_long_help = walk_long_help())]
    Walk(crate::cmd::walk::WalkArgs),
    /// Trace many TCP flows to DST at once, one fixed 5-tuple each: which flows fail, and where
    #[command(after_help = PROBE_EXIT_CODES_HELP)]
    Probe(crate::cmd::probe::ProbeArgs),
    /// Repair one VM's drifted port on this hypervisor: plan, then --apply, verify, roll back
    #[command(after_help = PLUMB_EXIT_CODES_HELP)]
    Plumb(crate::cmd::plumb::PlumbArgs),
    /// On a gateway node: every HA router (qrouter namespace) at a glance
    #[command(after_help = EXIT_CODES_HELP, after_long_help = routers_long_help())]
    Routers(crate::cmd::routers::RoutersArgs),
    /// On a gateway node: one HA router, every check with evidence and fix
    #[command(after_help = EXIT_CODES_HELP, after_long_help = routers_long_help())]
    Router(crate::cmd::routers::RouterArgs),
    /// The VM's whole path across hosts: from Neutron, its hypervisor and its router's
    /// gateways, each walked over SSH, in parallel
    #[command(after_help = EXIT_CODES_HELP)]
    Path(crate::cmd::path::PathArgs),
}

fn routers_long_help() -> String {
    let w = crate::check::router::ROUTER_CATALOGUE
        .iter()
        .map(|(id, _)| id.len())
        .max()
        .unwrap_or(0);
    let mut s = String::from("Checks (stable ids):\n");
    for (id, what) in crate::check::router::ROUTER_CATALOGUE {
        s.push_str(&format!("  {id:<w$}  {what}\n"));
    }
    format!("{s}\n{EXIT_CODES_HELP}")
}

pub const PROBE_EXIT_CODES_HELP: &str = "\
Exit codes:
  0   every flow reaches the destination (SYN-ACK or RST)
  1   every flow reached it, but some only on some attempts (--repeat): random loss
  2   some flows fail (silent, or ICMP unreachable)
  3   nothing could be determined: no route, no raw socket (CAP_NET_RAW), namespace not found
  64  bad usage";

pub const PLUMB_EXIT_CODES_HELP: &str = "\
Exit codes:
  0   nothing to do, or repaired and verified
  2   changes are needed (dry run), some are blocked, or the repair failed and was rolled back
  3   busy (another plumb holds the lock), a capability missing (CAP_NET_ADMIN; with --apply
      also CAP_DAC_OVERRIDE, CAP_CHOWN, CAP_KILL), the host could not be read, or the rollback
      could not restore everything
  64  bad usage, or refused: the records disagree (--trust), an interface is not the port's tap";

fn walk_long_help() -> String {
    format!(
        "{}\nOn a gateway node, TARGET may also be a router id (whole, or its first 11 characters), or a tenant address that is not a \
port on the node: vmpath then runs `vmpath router ID` for that router (see `vmpath router --help`).\n\n\
{EXIT_CODES_HELP}",
        crate::check::catalogue_help()
    )
}

/// Entry point: parse, dispatch, map errors to exit codes.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return ExitCode::from(parse_error(&e)),
    };
    let g = &cli.global;
    let (name, result) = match &cli.command {
        Command::Walk(a) => ("walk", crate::cmd::walk::exec(g, a)),
        Command::Path(a) => ("path", crate::cmd::path::exec(g, a)),
        Command::Probe(a) => ("probe", crate::cmd::probe::exec(g, a)),
        Command::Plumb(a) => ("plumb", crate::cmd::plumb::exec(g, a)),
        Command::Routers(a) => ("routers", crate::cmd::routers::exec_routers(g, a)),
        Command::Router(a) => ("router", crate::cmd::routers::exec_router(g, a)),
    };
    // The one place an error is printed: what failed and what to do, then its exit code.
    ExitCode::from(result.unwrap_or_else(|e| {
        eprintln!("vmpath {name}: {e}");
        if g.json {
            json_error(&format!("vmpath {name}"), &e);
        }
        e.exit_code()
    }))
}

/// clap's own outcome (help, version, or bad usage found while parsing): printed as clap does
/// (help and version on stdout, errors on stderr), and with `--json` on the command line, an
/// error as the JSON error document on stdout too. Returns the exit code.
fn parse_error(e: &clap::Error) -> u8 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            match e.print().and_then(|()| std::io::stdout().flush()) {
                Ok(()) => exit::OK,
                Err(w) if w.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
                Err(w) => {
                    eprintln!("vmpath: cannot write output: {w}");
                    exit::UNKNOWN
                }
            }
        }
        _ => {
            let _ = e.print();
            if json_requested(std::env::args_os().skip(1)) {
                let text = e.render().to_string();
                json_error("vmpath", &crate::error::Error::usage(clap_message(&text)));
            }
            exit::USAGE
        }
    }
}

/// Is `--json` among the arguments (before a `--` that ends the options)?
fn json_requested(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    args.into_iter()
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// The gist of a clap error's text: its first paragraph, without the `error: ` label.
fn clap_message(text: &str) -> String {
    let first = text.trim().split("\n\n").next().unwrap_or_default();
    let joined = first.lines().map(str::trim).collect::<Vec<_>>().join(" ");
    joined
        .strip_prefix("error: ")
        .unwrap_or(&joined)
        .to_string()
}

/// Print `e`'s JSON error document on stdout; a write that fails is said on stderr (a reader
/// that closed the pipe is not an error of ours).
fn json_error(who: &str, e: &crate::error::Error) {
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer_pretty(&mut out, &e.document())
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
    match written {
        Err(w) if w.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("{who}: cannot write output: {w}");
        }
        _ => {}
    }
}

/// The clap command, for completions and the man page.
pub fn command() -> clap::Command {
    Cli::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_asked_for_before_the_end_of_options_only() {
        let args = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(json_requested(args(&["walk", "--json", "--bogus"])));
        assert!(json_requested(args(&["--json", "probe"])));
        assert!(!json_requested(args(&["walk", "--", "--json"])));
        assert!(!json_requested(args(&["walk", "--jsonx"])));
    }

    #[test]
    fn a_clap_error_keeps_its_first_paragraph() {
        let text = "error: unexpected argument '--bogus' found\n\n  tip: to pass '--bogus' as a value, use '-- --bogus'\n\nUsage: vmpath walk [OPTIONS] <TARGET>\n";
        assert_eq!(clap_message(text), "unexpected argument '--bogus' found");
    }
}
