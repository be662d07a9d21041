#!/usr/bin/env bash
# The shell baseline of bench/compute.sh: what an operator types to walk one VM port on an Open
# vSwitch compute node by hand — OVSDB (Interface, Port, Bridge), the kernel's links, addresses
# and the routes to the VTEPs, the MTUs, br-int's and br-tun's flows, two ofproto/trace (out of
# the VM, and a reply into it), OVS's own route table — with the tools' usual output parsed by
# grep. Usage: baseline-compute.sh PORT TAP MAC IP
set -uo pipefail
port=$1 tap=$2 mac=$3 ip=$4
ovs-vsctl --format=json --columns=name,ofport,external_ids,mtu,mtu_request,options,error,type list Interface >/dev/null
ovs-vsctl --columns=name,tag,other_config list Port "$tap" >/dev/null
ovs-vsctl list Bridge >/dev/null
ovs-vsctl --bare --columns=name find Interface "external_ids:iface-id=$port" >/dev/null
ip -d -j link show >/dev/null
ip -j addr show >/dev/null
for r in $(ovs-vsctl --bare --columns=options find Interface type=vxlan | grep -o 'remote_ip="[^"]*"' | cut -d'"' -f2); do
  ip -j route get "$r" >/dev/null
done
cat "/sys/class/net/$tap/mtu" >/dev/null
ovs-ofctl dump-flows br-int | grep -c . >/dev/null
ovs-ofctl dump-flows br-tun | grep -E 'table=(4|20|22),' >/dev/null
ovs-appctl ofproto/trace br-int "tcp,in_port=$tap,dl_src=$mac,dl_dst=02:00:00:00:00:01,nw_src=$ip,nw_dst=203.0.113.1,tp_src=33000,tp_dst=443" --names | grep 'Datapath actions' >/dev/null
ovs-appctl ofproto/trace br-tun "in_port=vxlan-c633640b,tun_id=0x36f,tun_src=198.51.100.11,tun_dst=198.51.100.21,dl_src=02:00:00:00:00:01,dl_dst=$mac,tcp,nw_src=203.0.113.1,nw_dst=$ip,tp_src=443,tp_dst=33000" --ct-next trk,est,rpl --names | grep 'Datapath actions' >/dev/null
ovs-appctl ovs/route/show >/dev/null
exit 0
