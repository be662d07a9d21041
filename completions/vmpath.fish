# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_vmpath_global_optspecs
    string join \n json v/verbose config= h/help V/version
end

function __fish_vmpath_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_vmpath_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_vmpath_using_subcommand
    set -l cmd (__fish_vmpath_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c vmpath -n "__fish_vmpath_needs_command" -l config -d 'Config file [default: /etc/vmpath/config.toml, if present]' -r -F
complete -c vmpath -n "__fish_vmpath_needs_command" -l json -d 'Print one JSON document instead of a table (shape documented in README.md)'
complete -c vmpath -n "__fish_vmpath_needs_command" -s v -l verbose -d 'Show the evidence of every check, not only of those that are not ok'
complete -c vmpath -n "__fish_vmpath_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vmpath -n "__fish_vmpath_needs_command" -s V -l version -d 'Print version'
complete -c vmpath -n "__fish_vmpath_needs_command" -f -a "walk" -d 'Walk one VM\'s path on this hypervisor and check every hop'
complete -c vmpath -n "__fish_vmpath_needs_command" -f -a "probe" -d 'Trace many TCP flows to DST at once, one fixed 5-tuple each: which flows fail, and where'
complete -c vmpath -n "__fish_vmpath_needs_command" -f -a "plumb" -d 'Repair one VM\'s drifted port on this hypervisor: plan, then --apply, verify, roll back'
complete -c vmpath -n "__fish_vmpath_needs_command" -f -a "routers" -d 'On a gateway node: every HA router (qrouter namespace) at a glance'
complete -c vmpath -n "__fish_vmpath_needs_command" -f -a "router" -d 'On a gateway node: one HA router, every check with evidence and fix'
complete -c vmpath -n "__fish_vmpath_needs_command" -f -a "path" -d 'The VM\'s whole path across hosts: from Neutron, its hypervisor and its router\'s gateways, each walked over SSH, in parallel'
complete -c vmpath -n "__fish_vmpath_using_subcommand walk" -l timeout -d 'How long to wait for each daemon (BIRD, FRR, firewall tools): 2s, 500ms' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand walk" -l mtu -d 'Expected network MTU (default: dnsmasq\'s MTU option)' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand walk" -l gateway -d 'Expected gateway address on the tap, ADDR/LEN; repeat for IPv4 and IPv6 (default: dnsmasq\'s router option, the other taps\' gateway address)' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand walk" -l mac -d 'The port\'s MAC, when the host\'s records are not to be trusted' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand walk" -l bird-socket -d 'BIRD control socket (default: from the running bird\'s -s option)' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand walk" -l frr-dir -d 'FRR vty socket directory holding bgpd.vty (default: from the running bgpd\'s -N option)' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand walk" -l dhcp-hostsdir -d 'dnsmasq hosts dir (default: from the running dnsmasq\'s --dhcp-hostsdir)' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand walk" -l flow -d 'Evaluate one flow against the security group: [in:|out:]PROTO[/PORT][@PEER] (tcp/22, out:udp/53, icmp, tcp/443@203.0.113.10); `in` (default) is traffic to the VM' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand walk" -l design -d 'The host\'s design (default: found by itself — ovs when the port is plugged into Open vSwitch, else routed)' -r -f -a "routed\t'A routed (L2-less) hypervisor: /32 per VM, proxy ARP, BGP'
ovs\t'An Open vSwitch compute node of the overlay design: taps in br-int, VXLAN tunnels'"
complete -c vmpath -n "__fish_vmpath_using_subcommand walk" -l source -d 'Where the desired state comes from: neutron (the API, through clouds.yaml or OS_* credentials), host (this host\'s records), auto (Neutron when credentials are configured)' -r -f -a "auto\t''
neutron\t''
host\t''"
complete -c vmpath -n "__fish_vmpath_using_subcommand walk" -l os-cloud -d 'The clouds.yaml cloud to use [default: OS_CLOUD, the config\'s `cloud`, OS_* variables, or the only cloud in clouds.yaml]' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand walk" -l config -d 'Config file [default: /etc/vmpath/config.toml, if present]' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand walk" -l json -d 'Print one JSON document instead of a table (shape documented in README.md)'
complete -c vmpath -n "__fish_vmpath_using_subcommand walk" -s v -l verbose -d 'Show the evidence of every check, not only of those that are not ok'
complete -c vmpath -n "__fish_vmpath_using_subcommand walk" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vmpath -n "__fish_vmpath_using_subcommand walk" -s V -l version -d 'Print version'
complete -c vmpath -n "__fish_vmpath_using_subcommand probe" -s p -l port -d 'Destination TCP port (1-65535)' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand probe" -l flows -d 'Number of flows (source ports from 33000 up, skipping ports in use)' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand probe" -l sports -d 'Exact source ports: a range LO-HI and/or a comma list (33000-33031,40000)' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand probe" -l max-ttl -d 'Highest TTL (hop limit) probed; also the TTL of the classifying SYN' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand probe" -l netns -d 'Probe from inside this network namespace (a name under /run/netns, or a path)' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand probe" -l source -d 'Source address (default: the kernel\'s choice towards DST)' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand probe" -l interface -d 'Send and listen on this interface only' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand probe" -l repeat -d 'Full-TTL attempts per flow, to tell a deterministic blackhole from random loss' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand probe" -l timeout -d 'How long to wait for a reply: 1s, 500ms' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand probe" -l max-time -d 'Upper bound for the whole run (pacing around ICMP rate limits stops there)' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand probe" -l hops -d 'Which flows to trace hop by hop' -r -f -a "needed\t'Failing flows and a few reaching ones (enough to find the ECMP branches)'
all\t'Every flow (full per-flow hop maps; slower where routers rate-limit ICMP)'
none\t'None: classify flows only'"
complete -c vmpath -n "__fish_vmpath_using_subcommand probe" -l config -d 'Config file [default: /etc/vmpath/config.toml, if present]' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand probe" -l json -d 'Print one JSON document instead of a table (shape documented in README.md)'
complete -c vmpath -n "__fish_vmpath_using_subcommand probe" -s v -l verbose -d 'Show the evidence of every check, not only of those that are not ok'
complete -c vmpath -n "__fish_vmpath_using_subcommand probe" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vmpath -n "__fish_vmpath_using_subcommand probe" -s V -l version -d 'Print version'
complete -c vmpath -n "__fish_vmpath_using_subcommand plumb" -l timeout -d 'How long to wait for each daemon (BIRD, FRR, firewall tools): 2s, 500ms' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand plumb" -l mtu -d 'Expected network MTU (default: dnsmasq\'s MTU option)' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand plumb" -l gateway -d 'Expected gateway address on the tap, ADDR/LEN; repeat for IPv4 and IPv6 (default: dnsmasq\'s router option, the other taps\' gateway address)' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand plumb" -l mac -d 'The port\'s MAC, when the host\'s records are not to be trusted' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand plumb" -l bird-socket -d 'BIRD control socket (default: from the running bird\'s -s option)' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand plumb" -l frr-dir -d 'FRR vty socket directory holding bgpd.vty (default: from the running bgpd\'s -N option)' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand plumb" -l dhcp-hostsdir -d 'dnsmasq hosts dir (default: from the running dnsmasq\'s --dhcp-hostsdir)' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand plumb" -l trust -d 'When the host\'s records disagree about the port\'s MAC or addresses: which to trust' -r -f -a "dhcp\t'The DHCP host entry (dnsmasq\'s host file for the port)'
host\t'The host\'s own state: the tap\'s MAC, the VM\'s neighbour entry, the host routes'"
complete -c vmpath -n "__fish_vmpath_using_subcommand plumb" -l ip -d 'The port\'s fixed IPs, when the host\'s records lost or contradict them (repeat per address)' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand plumb" -l tap-owner -d 'Owner (uid) of a tap that plumb creates, as Nova gives it to the hypervisor\'s user' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand plumb" -l tap-group -d 'Group (gid) of a tap that plumb creates' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand plumb" -l lock-file -d 'Per-host lock file held during --apply' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand plumb" -l audit-log -d 'Audit log: one JSON line per --apply run' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand plumb" -l config -d 'Config file [default: /etc/vmpath/config.toml, if present]' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand plumb" -l apply -d 'Make the changes (default: print the plan and change nothing)'
complete -c vmpath -n "__fish_vmpath_using_subcommand plumb" -l prune -d 'Delete a /32 (/128) of this VM that points at another interface (stale after a move)'
complete -c vmpath -n "__fish_vmpath_using_subcommand plumb" -l json -d 'Print one JSON document instead of a table (shape documented in README.md)'
complete -c vmpath -n "__fish_vmpath_using_subcommand plumb" -s v -l verbose -d 'Show the evidence of every check, not only of those that are not ok'
complete -c vmpath -n "__fish_vmpath_using_subcommand plumb" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vmpath -n "__fish_vmpath_using_subcommand plumb" -s V -l version -d 'Print version'
complete -c vmpath -n "__fish_vmpath_using_subcommand routers" -l netns-dir -d 'Directory of the host\'s named network namespaces' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand routers" -l ha-confs -d 'Neutron\'s ha_confs directory (default: from keepalived\'s command lines)' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand routers" -l peer -d 'The other gateway\'s `vmpath routers --json`: check that exactly one is primary' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand routers" -l timeout -d 'How long to wait for each namespace\'s netlink answers: 2s, 500ms' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand routers" -l ovsdb -d 'OVSDB unix socket to read (repeat; default: from running ovsdb-server processes)' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand routers" -l bird-socket -d 'BIRD control socket (default: from the running bird\'s -s option)' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand routers" -l frr-dir -d 'FRR vty socket directory holding bgpd.vty (default: from the running bgpd\'s -N option)' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand routers" -l source -d 'Where the desired state comes from: neutron (the API, through clouds.yaml or OS_* credentials), host (this host\'s records), auto (Neutron when credentials are configured)' -r -f -a "auto\t''
neutron\t''
host\t''"
complete -c vmpath -n "__fish_vmpath_using_subcommand routers" -l os-cloud -d 'The clouds.yaml cloud to use [default: OS_CLOUD, the config\'s `cloud`, OS_* variables, or the only cloud in clouds.yaml]' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand routers" -l config -d 'Config file [default: /etc/vmpath/config.toml, if present]' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand routers" -l listen -d 'Also listen for VRRP adverts on every ha- interface, for 3 advert intervals (a backup that hears no primary); `router ID` does it unless --no-listen'
complete -c vmpath -n "__fish_vmpath_using_subcommand routers" -l no-listen -d 'With `router ID`: only the local state, no listening or probing'
complete -c vmpath -n "__fish_vmpath_using_subcommand routers" -l no-wire -d 'Do not ARP-probe each primary\'s gateway address (by default `routers` does, for 0.5 s, so that a split-brain shows in the overview)'
complete -c vmpath -n "__fish_vmpath_using_subcommand routers" -l no-dump -d 'Do not ask keepalived for its own state (by default each router\'s keepalived gets its JSON-dump signal, `keepalived --signum=JSON`, and vmpath reads the keepalived.json it writes)'
complete -c vmpath -n "__fish_vmpath_using_subcommand routers" -l no-bgp -d 'Do not ask the node\'s BGP speaker about tenant prefixes (for gateways that do not announce them)'
complete -c vmpath -n "__fish_vmpath_using_subcommand routers" -l json -d 'Print one JSON document instead of a table (shape documented in README.md)'
complete -c vmpath -n "__fish_vmpath_using_subcommand routers" -s v -l verbose -d 'Show the evidence of every check, not only of those that are not ok'
complete -c vmpath -n "__fish_vmpath_using_subcommand routers" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vmpath -n "__fish_vmpath_using_subcommand routers" -s V -l version -d 'Print version'
complete -c vmpath -n "__fish_vmpath_using_subcommand router" -l netns-dir -d 'Directory of the host\'s named network namespaces' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand router" -l ha-confs -d 'Neutron\'s ha_confs directory (default: from keepalived\'s command lines)' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand router" -l peer -d 'The other gateway\'s `vmpath routers --json`: check that exactly one is primary' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand router" -l timeout -d 'How long to wait for each namespace\'s netlink answers: 2s, 500ms' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand router" -l ovsdb -d 'OVSDB unix socket to read (repeat; default: from running ovsdb-server processes)' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand router" -l bird-socket -d 'BIRD control socket (default: from the running bird\'s -s option)' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand router" -l frr-dir -d 'FRR vty socket directory holding bgpd.vty (default: from the running bgpd\'s -N option)' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand router" -l source -d 'Where the desired state comes from: neutron (the API, through clouds.yaml or OS_* credentials), host (this host\'s records), auto (Neutron when credentials are configured)' -r -f -a "auto\t''
neutron\t''
host\t''"
complete -c vmpath -n "__fish_vmpath_using_subcommand router" -l os-cloud -d 'The clouds.yaml cloud to use [default: OS_CLOUD, the config\'s `cloud`, OS_* variables, or the only cloud in clouds.yaml]' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand router" -l config -d 'Config file [default: /etc/vmpath/config.toml, if present]' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand router" -l listen -d 'Also listen for VRRP adverts on every ha- interface, for 3 advert intervals (a backup that hears no primary); `router ID` does it unless --no-listen'
complete -c vmpath -n "__fish_vmpath_using_subcommand router" -l no-listen -d 'With `router ID`: only the local state, no listening or probing'
complete -c vmpath -n "__fish_vmpath_using_subcommand router" -l no-wire -d 'Do not ARP-probe each primary\'s gateway address (by default `routers` does, for 0.5 s, so that a split-brain shows in the overview)'
complete -c vmpath -n "__fish_vmpath_using_subcommand router" -l no-dump -d 'Do not ask keepalived for its own state (by default each router\'s keepalived gets its JSON-dump signal, `keepalived --signum=JSON`, and vmpath reads the keepalived.json it writes)'
complete -c vmpath -n "__fish_vmpath_using_subcommand router" -l no-bgp -d 'Do not ask the node\'s BGP speaker about tenant prefixes (for gateways that do not announce them)'
complete -c vmpath -n "__fish_vmpath_using_subcommand router" -l json -d 'Print one JSON document instead of a table (shape documented in README.md)'
complete -c vmpath -n "__fish_vmpath_using_subcommand router" -s v -l verbose -d 'Show the evidence of every check, not only of those that are not ok'
complete -c vmpath -n "__fish_vmpath_using_subcommand router" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vmpath -n "__fish_vmpath_using_subcommand router" -s V -l version -d 'Print version'
complete -c vmpath -n "__fish_vmpath_using_subcommand path" -l os-cloud -d 'The clouds.yaml cloud to use [default: OS_CLOUD, the config\'s `cloud`, OS_* variables, or the only cloud in clouds.yaml]' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand path" -l ssh-config -d 'ssh\'s config file (`ssh -F`; default: the user\'s own ~/.ssh/config)' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand path" -l jump -d 'Reach the hosts through this jump host (`ssh -J`)' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand path" -l remote-vmpath -d 'The vmpath to run on the other hosts' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand path" -l timeout -d 'How long to wait for each Neutron call, and the remote walks\' --timeout: 2s' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand path" -l host-timeout -d 'How long to wait for each host (the SSH connection and its walk): 60s' -r
complete -c vmpath -n "__fish_vmpath_using_subcommand path" -l config -d 'Config file [default: /etc/vmpath/config.toml, if present]' -r -F
complete -c vmpath -n "__fish_vmpath_using_subcommand path" -l json -d 'Print one JSON document instead of a table (shape documented in README.md)'
complete -c vmpath -n "__fish_vmpath_using_subcommand path" -s v -l verbose -d 'Show the evidence of every check, not only of those that are not ok'
complete -c vmpath -n "__fish_vmpath_using_subcommand path" -s h -l help -d 'Print help'
complete -c vmpath -n "__fish_vmpath_using_subcommand path" -s V -l version -d 'Print version'
