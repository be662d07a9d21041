//! The wire of every router at once: a VRRP listener on each HA interface and, on a primary, a
//! duplicate-address ARP probe for its gateway address from a fresh MAC (both HA routers share
//! the qr- MAC), read together for three advert intervals. Sockets are opened inside each
//! namespace (setns on worker threads) and read from here.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::check::router::{self, RouterFacts};
use crate::collect::nsscan;
use crate::collect::vrrp::{self, Wire};
use crate::error::Error;

/// How long the duplicate-address probe alone waits for other answers (an ARP reply crosses the
/// HA pair's L2 in milliseconds).
pub const PROBE_WINDOW: Duration = Duration::from_millis(500);

/// On a primary, send the ARP probe for its gateway address; with `adverts`, also open a VRRP
/// listener on each router's HA interface. All at once, then read them together: for three
/// advert intervals with `adverts`, else for [`PROBE_WINDOW`].
pub fn listen(routers: &[(PathBuf, RouterFacts<'_>)], workers: usize, adverts: bool) -> Vec<Wire> {
    struct Plan {
        ha: Option<String>,
        own: Vec<Ipv4Addr>,
        dad: Option<(String, [u8; 6], Ipv4Addr)>,
        advert_int: f64,
    }
    let plans: Vec<Plan> = routers
        .iter()
        .map(|(_, f)| {
            let net = f.net.ok();
            let inst = f.instance.as_ref().ok();
            let ha = inst.and_then(|i| i.interface.clone()).or_else(|| {
                net.and_then(|n| {
                    n.links
                        .iter()
                        .find(|l| l.name.starts_with("ha-"))
                        .map(|l| l.name.clone())
                })
            });
            let own = net
                .map(|n| {
                    n.addrs
                        .iter()
                        .filter(|a| ha.as_deref().is_some_and(|h| n.ifname(a.index) == h))
                        .filter_map(|a| match a.addr {
                            IpAddr::V4(v) => Some(v),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let dad = if router::holds_vip(f) == Some(true) {
                inst.and_then(|i| {
                    let gw = i.excluded.iter().find(|a| {
                        a.addr.is_ipv4() && a.dev.as_deref().is_some_and(|d| d.starts_with("qr-"))
                    })?;
                    let dev = gw.dev.clone()?;
                    let mac = net?.link(&dev)?.mac.as_deref().and_then(vrrp::mac_bytes)?;
                    match gw.addr {
                        IpAddr::V4(v) => Some((dev, mac, v)),
                        _ => None,
                    }
                })
            } else {
                None
            };
            Plan {
                ha,
                own,
                dad,
                advert_int: inst.map(|i| i.advert_int).unwrap_or(1.0),
            }
        })
        .collect();
    let paths: Vec<PathBuf> = routers.iter().map(|(p, _)| p.clone()).collect();
    let opened = nsscan::run_in_each(&paths, workers, |i| {
        let p = &plans[i];
        let l = p.ha.as_deref().filter(|_| adverts).map(|h| {
            vrrp::open_listener(h).map_err(|e| Error::unknown(format!("listen on {h}: {e}")))
        });
        let d = p.dad.as_ref().map(|(dev, _mac, ip)| {
            vrrp::open_arp(dev, *ip).map_err(|e| Error::unknown(format!("ARP probe on {dev}: {e}")))
        });
        (l, d)
    });
    let dur = if adverts {
        let d = plans.iter().map(|p| p.advert_int).fold(1.0f64, f64::max) * 3.0 + 0.5;
        Duration::from_secs_f64(d.min(15.0))
    } else if plans.iter().any(|p| p.dad.is_some()) {
        PROBE_WINDOW
    } else {
        Duration::ZERO
    };
    let start = Instant::now();
    let mut heard: Vec<vrrp::Heard> = vec![Default::default(); routers.len()];
    let mut macs: Vec<Vec<String>> = vec![Vec::new(); routers.len()];
    let mut fds: Vec<libc::pollfd> = Vec::new();
    for (l, d) in opened.iter().flatten() {
        use std::os::fd::AsRawFd;
        if let Some(Ok(s)) = l {
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some(Ok(d)) = d {
            fds.push(libc::pollfd {
                fd: d.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
    }
    while start.elapsed() < dur {
        let left = dur
            .saturating_sub(start.elapsed())
            .as_millis()
            .clamp(1, 500) as i32;
        // SAFETY: poll over descriptors owned by `opened`, alive for this loop.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, left) };
        for (i, o) in opened.iter().enumerate() {
            if let Ok((l, d)) = o {
                if let Some(Ok(s)) = l {
                    vrrp::read_adverts(s, &mut heard[i]);
                }
                if let Some(Ok(probe)) = d {
                    vrrp::read_arp(probe, &mut macs[i]);
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    // Closing a packet socket waits for an RCU grace period (synchronize_net, ~10 ms here): the
    // probes are closed together on threads of their own, not one after the other.
    let mut probes: Vec<vrrp::ArpProbe> = Vec::new();
    let wires = opened
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            let p = &plans[i];
            match o {
                Err(e) => Wire {
                    heard: Some(Err(e.clone())),
                    own: p.own.clone(),
                    dad: p.dad.as_ref().map(|(_, _, ip)| (*ip, Err(e))),
                },
                Ok((l, d)) => Wire {
                    heard: l.map(|r| {
                        r.map(|_| {
                            let mut h = std::mem::take(&mut heard[i]);
                            h.listened_s = secs;
                            h
                        })
                    }),
                    own: p.own.clone(),
                    dad: match (d, &p.dad) {
                        (Some(r), Some((_, _, ip))) => Some((
                            *ip,
                            r.map(|probe| {
                                probes.push(probe);
                                std::mem::take(&mut macs[i])
                            }),
                        )),
                        _ => None,
                    },
                },
            }
        })
        .collect();
    close_together(probes);
    wires
}

/// Drop `items` on up to 64 threads at once.
fn close_together<T: Send>(mut items: Vec<T>) {
    if items.len() < 4 {
        return;
    }
    let per = items.len().div_ceil(64).max(1);
    std::thread::scope(|s| {
        while !items.is_empty() {
            let chunk: Vec<T> = items.drain(..per.min(items.len())).collect();
            s.spawn(move || drop(chunk));
        }
    });
}
