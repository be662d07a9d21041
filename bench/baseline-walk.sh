#!/usr/bin/env bash
# The baseline for bench/walk.sh: the same look at one port that `vmpath walk` takes, done the
# way an operator would by hand: ip, /proc, iptables-save, nft, ps, ss, birdc or vtysh.
# Usage (inside the hypervisor's namespace): baseline-walk.sh bird SOCKET TAP IP4 IP6 HOSTSDIR PEERS...
#                                            baseline-walk.sh frr PATHSPACE TAP IP4 IP6 HOSTSDIR PEERS...
set -u
kind=$1 where=$2 tap=$3 ip4=$4 ip6=$5 hostsdir=$6; shift 6
{
  ip -d link show dev "$tap"
  ip addr show dev "$tap"
  cat "/proc/sys/net/ipv4/conf/$tap/proxy_arp" "/proc/sys/net/ipv4/conf/all/proxy_arp" \
      "/proc/sys/net/ipv4/neigh/$tap/proxy_delay" "/proc/sys/net/ipv6/conf/$tap/proxy_ndp"
  ip route show table main
  ip -6 route show table main
  ip route get "$ip4"
  ip -6 route get "$ip6"
  ip neigh show dev "$tap"
  ip -6 neigh show proxy dev "$tap"
  iptables-save -c
  ip6tables-save -c
  nft -j list ruleset
  ps -e -o pid,args | grep '[d]nsmasq'
  cat "$hostsdir"/*
  ss -ltnp
  if [[ $kind == bird ]]; then
    birdc -s "$where" show route "$ip4/32" all
    birdc -s "$where" show route "$ip6/128" all
    birdc -s "$where" show protocols all
    for p in "$@"; do
      case $p in *_v6) pfx=$ip6/128 ;; *) pfx=$ip4/32 ;; esac
      birdc -s "$where" show route "$pfx" export "$p"
      birdc -s "$where" show route "$pfx" noexport "$p"
    done
  else
    vtysh -N "$where" -c 'show bgp summary json' -c "show bgp ipv4 unicast $ip4/32 json" \
      -c "show bgp ipv6 unicast $ip6/128 json" -c "show ip route $ip4/32 json" \
      -c "show ipv6 route $ip6/128 json" -c 'show bgp neighbors json'
    for p in "$@"; do
      case $p in *:*) afi=ipv6 ;; *) afi=ipv4 ;; esac
      vtysh -N "$where" -c "show bgp $afi unicast neighbors $p advertised-routes json"
    done
  fi
} >/dev/null 2>&1
