# shellcheck shell=bash
# vmlab: the lab's fixed topology, daemons and required tools.
# (sourced by lab/vmlab, which sets the shell options and the paths).

# ---------------------------------------------------------------------------
# Topology (fixed: the Rust test-suite and README rely on these values)
# ---------------------------------------------------------------------------
readonly -a VMS=(vm1 vm2 vm3 vm4)
readonly -a HVS=(hv1 hv2)
readonly -a TORS=(tor1 tor2)
readonly -a ALL_NS=(hv1 hv2 tor1 tor2 ext1 vm1 vm2 vm3 vm4)
readonly -a ROUTER_NS=(hv1 hv2 tor1 tor2)

declare -Ar VM_HV=([vm1]=hv1 [vm2]=hv1 [vm3]=hv2 [vm4]=hv2)
declare -Ar VM_NUM=([vm1]=1 [vm2]=2 [vm3]=3 [vm4]=4)
declare -Ar VM_PORT=(
    [vm1]=3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a51
    [vm2]=7a2b3c4d-1e2f-4a5b-9c8d-7e6f5a4b3c52
    [vm3]=b4c5d6e7-2f3a-4b5c-8d9e-1f2a3b4c5d63
    [vm4]=c9d8e7f6-3a4b-4c5d-9e8f-2a3b4c5d6e74
)
declare -Ar VM_IP4=([vm1]=198.51.100.11 [vm2]=198.51.100.12 [vm3]=198.51.100.21 [vm4]=198.51.100.22)
declare -Ar VM_IP6=([vm1]=2001:db8:100::11 [vm2]="" [vm3]=2001:db8:100::21 [vm4]="")

readonly MTU=1450
readonly GW4=198.51.100.1 GW6=2001:db8:100::1
readonly VM_NET4=198.51.100.0/24 VM_NET6=2001:db8:100::/64
readonly EXT4=203.0.113.10 EXT6=2001:db8:203::10
readonly EXT_NET4=203.0.113.0/24 EXT_NET6=2001:db8:203::/48
readonly METADATA_IP=169.254.169.254 METADATA_PORT=9697
readonly SG_BIN=neutron-l2iso   # Neutron iptables "binary name" prefix on hv1

declare -Ar ASN=([hv1]=65001 [hv2]=65002 [tor1]=65101 [tor2]=65102 [gwA]=65201 [gwB]=65202 [tor3]=65103)
declare -Ar ROUTER_ID=([hv1]=198.18.0.1 [hv2]=198.18.0.5 [tor1]=198.18.0.0 [tor2]=198.18.0.2
    [gwA]=198.18.41.1 [gwB]=198.18.41.3 [tor3]=198.18.41.0)

# Point-to-point links: "nsA ifA v4A v6A nsB ifB v4B v6B" (IPv4 /31, IPv6 /64).
# The interface facing node X is always called eth-X.
readonly -a LINKS=(
    "hv1 eth-tor1 198.18.0.1 2001:db8:ff:1::2 tor1 eth-hv1 198.18.0.0 2001:db8:ff:1::1"
    "hv1 eth-tor2 198.18.0.3 2001:db8:ff:2::2 tor2 eth-hv1 198.18.0.2 2001:db8:ff:2::1"
    "hv2 eth-tor1 198.18.0.5 2001:db8:ff:3::2 tor1 eth-hv2 198.18.0.4 2001:db8:ff:3::1"
    "hv2 eth-tor2 198.18.0.7 2001:db8:ff:4::2 tor2 eth-hv2 198.18.0.6 2001:db8:ff:4::1"
    "ext1 eth-tor1 198.18.1.1 2001:db8:ff:5::2 tor1 eth-ext1 198.18.1.0 2001:db8:ff:5::1"
    "ext1 eth-tor2 198.18.1.3 2001:db8:ff:6::2 tor2 eth-ext1 198.18.1.2 2001:db8:ff:6::1"
)

# ECMP part (for `vmpath probe`): static routes, no BGP.
#   pc1 (client) -- r1 (ECMP, 5-tuple hash, fixed seed) -- gw1 | gw2 -- srv1
# Hops seen from pc1: r1 (1), gw1 or gw2 (2), srv1 (3). These namespaces keep
# the kernel-default ICMP rate limits (unlike hv*/tor*, which set them to 0).
readonly -a PROBE_NS=(pc1 r1 gw1 gw2 srv1)
readonly -a PROBE_ROUTERS=(r1 gw1 gw2)
readonly -a PROBE_GWS=(gw1 gw2)
readonly PROBE_CLIENT_NET4=198.18.20.0/24 PROBE_CLIENT_NET6=2001:db8:20::/64
readonly PROBE_DST4=198.18.30.10 PROBE_DST6=2001:db8:30::10
readonly PROBE_DST_NET4=198.18.30.0/24 PROBE_DST_NET6=2001:db8:30::/64
readonly PROBE_OPEN=8080 PROBE_CLOSED=8081 PROBE_UNREACH=8082
# ICMP "type code" srv1 answers on PROBE_UNREACH (admin-prohibited, nft reject).
readonly PROBE_UNREACH_ICMP4="3 13" PROBE_UNREACH_ICMP6="1 1"
# net.ipv4.fib_multipath_hash_seed on r1 (IPv6 ECMP hashing uses it too).
readonly PROBE_HASH_SEED=4242
# First source port tried when picking sample flows (one per gateway and family).
readonly PROBE_SPORT_BASE=33434
# The gateway that fault ecmp-blackhole breaks.
readonly PROBE_BLACKHOLE_GW=gw2
# Links of the ECMP part, same format as LINKS but IPv4 /24 and IPv6 /64.
readonly -a PROBE_LINKS=(
    "pc1 eth-r1 198.18.20.10 2001:db8:20::10 r1 eth-pc1 198.18.20.1 2001:db8:20::1"
    "r1 eth-gw1 198.18.21.1 2001:db8:21::1 gw1 eth-r1 198.18.21.2 2001:db8:21::2"
    "r1 eth-gw2 198.18.22.1 2001:db8:22::1 gw2 eth-r1 198.18.22.2 2001:db8:22::2"
    "gw1 eth-srv1 198.18.23.1 2001:db8:23::1 srv1 eth-gw1 198.18.23.2 2001:db8:23::2"
    "gw2 eth-srv1 198.18.24.1 2001:db8:24::1 srv1 eth-gw2 198.18.24.2 2001:db8:24::2"
)

# HA gateway part (`vmpath routers`): an overlay (VXLAN) tenant network with an
# HA Neutron router on two gateway hosts, as in seed 004:
#
#   tvm1 (192.0.2.11) -- cmp1 (OVS br-int, vxlan-1001) ==VXLAN== gwA | gwB
#   gwA/gwB: qrouter-<router> (qr- 192.0.2.1 VRRP-excluded, qg- 198.18.40.10,
#            ha- 169.254.192.x, keepalived VR_1), qdhcp-<network>, OVS br-int/br-tun/br-ex,
#            eBGP to tor3 (BIRD on gwA, FRR on gwB) advertising 192.0.2.0/24 (ECMP on tor3).
#
# gwA, gwB and cmp1 are "hosts": a netns plus a mount namespace (DIR/run/HOST.mnt)
# in which DIR/HOST/netns is bind-mounted (--rbind) over /run/netns, DIR/HOST/ovs
# over /run/openvswitch and a sysfs of the host's netns over /sys, so that
# `ip netns list` there shows only that host's qrouter-/qdhcp- namespaces.
readonly -a HA_HOSTS=(gwA gwB cmp1)
readonly -a HA_GWS=(gwA gwB)
readonly -a HA_NS=(gwA gwB cmp1 tor3 tvm1)   # in the lab's global /run/netns
readonly HA_TOR=tor3 HA_CMP=cmp1 HA_VM=tvm1
readonly HA_ROUTER_ID=6a1d4f2e-8b3c-4d5e-9f60-7a8b9c0d1e21
readonly HA_NET_ID=2b7e5c1a-9d4f-4e3b-8a6c-5d2e1f0a9b32      # tenant network
readonly HA_HANET_ID=8c9d0e1f-2a3b-4c5d-8e7f-9a0b1c2d3e43    # "HA network tenant ..."
readonly HA_EXTNET_ID=f1e2d3c4-b5a6-4978-8a6b-5c4d3e2f1a0b   # external network
readonly HA_VRID=1 HA_VIP=169.254.0.1
# keepalived advert_int: Neutron's default is 2 s (ha_vrrp_advert_int); the lab
# uses 1 s so that the first MASTER and a failover take ~3.6 s, not ~7 s.
readonly HA_ADVERT_INT=1 HA_NEUTRON_ADVERT_INT=2
readonly HA_TENANT_NET=192.0.2.0/24 HA_GW_IP=192.0.2.1 HA_VM_IP=192.0.2.11
readonly HA_EXT_NET=198.18.40.0/24 HA_EXT_GW=198.18.40.1 HA_QG_IP=198.18.40.10
readonly HA_HA_NET=169.254.192.0/18
readonly HA_VNI=1001 HA_HA_VNI=1002 HA_MTU=1450 HA_UL_MTU=1500 HA_EXT_MTU=1500
# mtu-mismatch: gwA's underlay MTU while the fault is planted (1450 + 50 no longer fits).
readonly HA_FAULT_UL_MTU=1480 HA_FAULT_TAP_MTU=1400
readonly HA_QR_PORT=0e5f3a7b-1c2d-4e8f-9a0b-3c4d5e6f7a54 HA_QR_MAC=fa:16:3e:00:02:01
readonly HA_QG_PORT=5a6b7c8d-2e3f-4a0b-8c1d-4e5f6a7b8c65 HA_QG_MAC=fa:16:3e:00:02:02
readonly HA_VM_PORT=e5f6a7b8-7c8d-4e9f-9a0b-9c0d1e2f3ab0 HA_VM_MAC=fa:16:3e:00:01:0b
readonly HA_VM_UUID=7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0c   # Nova instance of tvm1
declare -Ar HA_HA_PORT=([gwA]=9b0c1d2e-3f4a-4b5c-9d6e-5f6a7b8c9d76 [gwB]=a1b2c3d4-4e5f-4a6b-8c7d-6e7f8a9b0c87)
declare -Ar HA_HA_MAC=([gwA]=fa:16:3e:00:02:1a [gwB]=fa:16:3e:00:02:1b)
declare -Ar HA_HA_IP=([gwA]=169.254.192.1 [gwB]=169.254.192.2)
declare -Ar HA_DHCP_PORT=([gwA]=c3d4e5f6-5a6b-4c7d-9e8f-7a8b9c0d1e98 [gwB]=d4e5f6a7-6b7c-4d8e-8f9a-8b9c0d1e2fa9)
declare -Ar HA_DHCP_MAC=([gwA]=fa:16:3e:00:02:2a [gwB]=fa:16:3e:00:02:2b)
declare -Ar HA_DHCP_IP=([gwA]=192.0.2.2 [gwB]=192.0.2.3)
# The gateway hosts' own address on the external network (br-ex), next hop of
# their kernel route to the tenant prefix (via the router's qg- address).
declare -Ar HA_BREX_IP=([gwA]=198.18.40.2 [gwB]=198.18.40.3)
# Underlay (routed via tor3, MTU 1500): "host host_if host_ip tor_if tor_ip" (/31).
readonly -a HA_LINKS=(
    "gwA eth-tor3 198.18.41.1 eth-gwA 198.18.41.0"
    "gwB eth-tor3 198.18.41.3 eth-gwB 198.18.41.2"
    "cmp1 eth-tor3 198.18.41.5 eth-cmp1 198.18.41.4"
)
readonly HA_UL_NET=198.18.41.0/24
# OVS local VLAN tags (per host, as the OVS agent would pick them).
readonly HA_TAG=1 HA_HA_TAG=2 HA_DEAD_TAG=4095
# Which side each single-sided fault acts on.
readonly HA_FAULT_GW=gwA        # mtu-mismatch, gw-no-advertise, conntrack-full, ovs-dead-port
readonly HA_SPLIT_GW=gwB        # vrrp-split-brain: nft drops VRRP in gwB's qrouter namespace

# Faults: the table lab/faults.tsv (its header explains the columns; tests/lab.rs
# reads it too). FAULTS: the names, in the order `help` lists them; FAULT_HOST:
# where vmpath sees each one (hv1, hv2, pc1, gwA, gwB).
FAULTS=()
declare -A FAULT_HOST=()
[[ -r $FAULT_TABLE ]] || die "cannot read the fault table $FAULT_TABLE"
while IFS=$'\t' read -r -a _row || ((${#_row[@]})); do
    ((${#_row[@]})) || continue
    [[ ${_row[0]} != '#'* ]] || continue
    ((${#_row[@]} == 7)) || die "$FAULT_TABLE: not 7 tab-separated columns: ${_row[*]}"
    FAULTS+=("${_row[0]}")
    FAULT_HOST[${_row[0]}]=${_row[1]}
done <"$FAULT_TABLE"
unset _row
readonly -a FAULTS
readonly -A FAULT_HOST

# Daemons: "name netns". daemon_pattern gives the string (specific to the lab
# directory) that its command line must contain before we signal a PID.
readonly -a DAEMONS=(
    "bird-hv1 hv1" "bird-tor1 tor1"
    "zebra-hv2 hv2" "bgpd-hv2 hv2" "zebra-tor2 tor2" "bgpd-tor2 tor2"
    "dnsmasq-hv1 hv1" "dnsmasq-hv2 hv2"
    "metadata-hv1 hv1" "metadata-hv2 hv2"
    "listener-srv1 srv1"
    "host-gwA gwA" "host-gwB gwB" "host-cmp1 cmp1"
    "keepalived-gwA gwA" "keepalived-gwB gwB"
    "ovsdb-gwA gwA" "vswitchd-gwA gwA" "ovsdb-gwB gwB" "vswitchd-gwB gwB"
    "ovsdb-cmp1 cmp1" "vswitchd-cmp1 cmp1"
    "bird-gwA gwA" "zebra-gwB gwB" "bgpd-gwB gwB" "zebra-tor3 tor3" "bgpd-tor3 tor3"
)

# Required tools and the Debian package that provides each.
declare -Ar NEEDS=(
    [bird]=bird2 [birdc]=bird2 [vtysh]=frr [dnsmasq]=dnsmasq-base
    [iptables]=iptables [ip6tables]=iptables [iptables-save]=iptables [iptables-restore]=iptables
    [ip6tables-restore]=iptables [nft]=nftables [python3]=python3 [unshare]=util-linux
    [nsenter]=util-linux [setsid]=util-linux [flock]=util-linux [ip]=iproute2 [sysctl]=procps
    [timeout]=coreutils [keepalived]=keepalived [conntrack]=conntrack [ethtool]=ethtool
    [ovsdb-server]=openvswitch-common [ovs-vswitchd]=openvswitch-switch
    [ovs-vsctl]=openvswitch-switch [ovsdb-tool]=openvswitch-common [bridge]=iproute2
    [mountpoint]=util-linux
)
