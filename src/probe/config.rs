//! What one probe run is asked to do: the destination, the flows (source ports), the limits and
//! which flows to trace. Shared by the engine and the network it opens.

use std::net::IpAddr;
use std::time::Duration;

use super::schedule::HopsMode;
use crate::error::{Error, Result};

/// The options of one run.
#[derive(Debug, Clone)]
pub struct Config {
    pub dst: IpAddr,
    pub port: u16,
    /// Source ports, one flow each.
    pub sports: Vec<u16>,
    /// When false, ports that are in use locally are skipped (and replaced) instead of failing.
    pub explicit_sports: bool,
    pub max_ttl: u8,
    pub source: Option<IpAddr>,
    pub interface: Option<String>,
    pub repeat: u32,
    /// How long to wait for a reply.
    pub timeout: Duration,
    /// Bound on the whole run (pacing for rate limits stops here).
    pub max_time: Duration,
    pub hops: HopsMode,
}

/// The shortest reply wait a run accepts.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);

impl Config {
    /// What a run refuses before it sends anything (every error is `Error::Usage`, naming the
    /// option and a valid form): a destination no single host answers (unspecified, multicast,
    /// the limited broadcast), port 0, a reply wait below 1 ms, and a run bound shorter than one
    /// reply wait.
    pub fn validate(&self) -> Result<()> {
        destination(self.dst)?;
        if self.port == 0 {
            return Err(Error::usage(
                "--port 0 is not a port a host listens on: give 1-65535 (e.g. --port 22)",
            ));
        }
        if self.sports.contains(&0) {
            return Err(Error::usage(
                "source port 0 is not a port: give --sports within 1-65535",
            ));
        }
        if self.timeout < MIN_TIMEOUT {
            return Err(Error::usage(format!(
                "--timeout {:?} is below 1ms: give e.g. --timeout 1s or 500ms",
                self.timeout
            )));
        }
        if self.max_time < self.timeout {
            return Err(Error::usage(format!(
                "--max-time must be at least --timeout ({:?} < {:?}): the run would end before \
one reply could come back; e.g. --timeout 1s --max-time 30s",
                self.max_time, self.timeout
            )));
        }
        Ok(())
    }
}

/// A destination the probe may send to: one host's unicast address.
pub fn destination(dst: IpAddr) -> Result<()> {
    // An IPv4-mapped IPv6 address is judged as the IPv4 address it carries.
    let dst = match dst {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    let why = match dst {
        d if d.is_unspecified() => Some("the unspecified address"),
        d if d.is_multicast() => Some("a multicast address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        _ => None,
    };
    match why {
        Some(why) => Err(Error::usage(format!(
            "destination {dst} is {why}, not one host: give the unicast IPv4 or IPv6 address of \
the host to probe (e.g. vmpath probe 198.51.100.10)"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dst: &str) -> Config {
        Config {
            dst: dst.parse().expect("address"),
            port: 22,
            sports: vec![33000],
            explicit_sports: false,
            max_ttl: 16,
            source: None,
            interface: None,
            repeat: 1,
            timeout: Duration::from_secs(1),
            max_time: Duration::from_secs(30),
            hops: HopsMode::Needed,
        }
    }

    #[test]
    fn only_one_hosts_unicast_address_on_a_real_port_is_probed() {
        assert_eq!(cfg("198.51.100.10").validate(), Ok(()));
        assert_eq!(cfg("2001:db8::10").validate(), Ok(()));
        for bad in [
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "239.1.2.3",
            "ff02::1",
            "255.255.255.255",
            "::ffff:0.0.0.0",
            "::ffff:255.255.255.255",
        ] {
            let e = cfg(bad).validate().expect_err(bad);
            assert_eq!(e.exit_code(), 64, "{bad}");
            assert!(e.message().contains("not one host"), "{bad}: {e}");
        }
        let mut c = cfg("198.51.100.10");
        c.port = 0;
        assert!(c.validate().is_err_and(|e| e.message().contains("--port")));
    }

    #[test]
    fn the_reply_wait_is_at_least_1ms_and_fits_in_the_run() {
        let mut c = cfg("198.51.100.10");
        c.timeout = Duration::from_micros(500);
        assert!(c
            .validate()
            .is_err_and(|e| e.message().contains("--timeout")));
        c.timeout = Duration::from_millis(1);
        assert_eq!(c.validate(), Ok(()));
        c.timeout = Duration::from_secs(5);
        c.max_time = Duration::from_secs(2);
        assert!(c.validate().is_err_and(|e| e
            .message()
            .contains("--max-time must be at least --timeout")));
        c.max_time = Duration::from_secs(5);
        assert_eq!(c.validate(), Ok(()));
    }
}
