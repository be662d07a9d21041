# shellcheck shell=bash
# nlab: the controller host ctl — its bridges (the lab's wires), MariaDB, RabbitMQ, the Neutron API
# server and the RPC server. (sourced by lab/neutron/nlab.)
#
# Everything listens on ctl's loopback or on lab addresses: MariaDB on a unix socket only
# (--skip-networking), RabbitMQ on 127.0.0.1 and 192.0.2.1 (the agents' management network), its
# epmd and Erlang distribution on 127.0.0.1, Keystone on 127.0.0.1:5000 and 192.0.2.1:5000, the
# Neutron API on 127.0.0.1:9696 and 192.0.2.1:9696 (the hosts reach both over br-mgmt; Neutron
# checks every request's token with Keystone).

# The lab's Keystone users (lab-only secrets; info.json names them for the tests).
readonly NLAB_ADMIN_PW=nlab-admin-pw NLAB_NEUTRON_PW=nlab-neutron-pw NLAB_VMPATH_PW=nlab-vmpath-pw
export NLAB_ADMIN_PW NLAB_NEUTRON_PW NLAB_VMPATH_PW
readonly KEYSTONE_URL=http://192.0.2.1:5000/v3 NEUTRON_URL=http://192.0.2.1:9696

ctl_wires() {
    # shellcheck disable=SC2016 # expanded by the inner shell
    on ctl bash -euc '
        for b in br-mgmt br-data br-ext; do ip link add "$b" type bridge; ip link set "$b" up; done
        ip link set br-data mtu 9050
        ip link set br-ext mtu 9050
        ip addr add 192.0.2.1/24 dev br-mgmt
        ip addr add 203.0.113.1/24 dev br-ext
        sysctl -q -w net.ipv4.ip_forward=1 >/dev/null'
}

db_url() { echo "mysql+pymysql://neutron:nlab-db@localhost/neutron?unix_socket=$DIR/ctl/mysql.sock&charset=utf8"; }

mariadb_start() {
    local d=$DIR/ctl
    mkdir -p "$d/mysql" "$d/mysql-tmp"
    timeout 120 mariadb-install-db --no-defaults --datadir="$d/mysql" --user=root --skip-test-db \
        --auth-root-authentication-method=socket >"$DIR/logs/mariadb-install.log" 2>&1 ||
        die "mariadb-install-db failed (see $DIR/logs/mariadb-install.log)"
    spawn mariadb ctl mariadbd --no-defaults --datadir="$d/mysql" --socket="$d/mysql.sock" \
        --skip-networking --user=root --pid-file="$d/mariadb.pid" --tmpdir="$d/mysql-tmp" \
        --log-error="$DIR/logs/mariadb.err" --innodb-buffer-pool-size=64M \
        --innodb-flush-log-at-trx-commit=0 --performance-schema=OFF --skip-name-resolve \
        --max-connections=300 --character-set-server=utf8mb3 --collation-server=utf8mb3_general_ci
    poll 60 on ctl mariadb-admin --no-defaults --socket="$d/mysql.sock" -u root ping ||
        die "MariaDB did not answer (see $DIR/logs/mariadb.err)"
    on ctl timeout 30 mariadb --no-defaults --socket="$d/mysql.sock" -u root -e "
        CREATE DATABASE neutron CHARACTER SET utf8;
        CREATE USER 'neutron'@'localhost' IDENTIFIED BY 'nlab-db';
        GRANT ALL ON neutron.* TO 'neutron'@'localhost';
        CREATE DATABASE keystone CHARACTER SET utf8;
        CREATE USER 'keystone'@'localhost' IDENTIFIED BY 'nlab-db';
        GRANT ALL ON keystone.* TO 'keystone'@'localhost';"
}

rabbit_start() {
    local d=$DIR/ctl/rabbit env
    mkdir -p "$d/mnesia" "$d/log"
    echo '[].' >"$d/enabled_plugins"
    : >"$d/env.conf"
    printf '%s\n' 'loopback_users = none' 'listeners.tcp.1 = 127.0.0.1:5672' \
        'listeners.tcp.2 = 192.0.2.1:5672' >"$d/rabbitmq.conf"
    env=(HOME="$d" RABBITMQ_HOME=/usr/lib/rabbitmq RABBITMQ_NODENAME=rabbit@localhost
        RABBITMQ_MNESIA_BASE="$d/mnesia" RABBITMQ_LOG_BASE="$d/log" RABBITMQ_PID_FILE="$d/rabbit.pid"
        RABBITMQ_CONFIG_FILE="$d/rabbitmq" RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
        RABBITMQ_CONF_ENV_FILE="$d/env.conf" RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config"
        RABBITMQ_DIST_PORT=25672 ERL_EPMD_ADDRESS=127.0.0.1
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}")
    # Our own epmd, in the foreground, so that it is recorded (RabbitMQ would daemonize one).
    spawn epmd ctl env "${env[@]}" epmd -address 127.0.0.1
    poll 10 on ctl bash -c '(exec 3<>/dev/tcp/127.0.0.1/4369)' || die "epmd did not start"
    spawn rabbitmq ctl env "${env[@]}" /usr/lib/rabbitmq/bin/rabbitmq-server
}
rabbit_wait() {
    poll 90 on ctl bash -c '(exec 3<>/dev/tcp/192.0.2.1/5672)' ||
        die "RabbitMQ did not listen on 192.0.2.1:5672 (see $DIR/logs/rabbitmq.out, $DIR/ctl/rabbit/log)"
}

keystone_conf() {
    local e=$DIR/ctl/etc k=$DIR/ctl/keystone
    mkdir -p "$e" "$k/fernet-keys" "$k/credential-keys"
    chmod 700 "$k/fernet-keys" "$k/credential-keys"
    cat >"$e/keystone.conf" <<EOF
# nlab: Keystone 30 for the Neutron API and vmpath's clients
[DEFAULT]
debug = $NLAB_DEBUG
[database]
connection = mysql+pymysql://keystone:nlab-db@localhost/keystone?unix_socket=$DIR/ctl/mysql.sock&charset=utf8
[identity]
# bcrypt cost 4, not 12: a password check takes ~50 ms instead of ~450 ms on this machine
password_hash_rounds = 4
[token]
provider = fernet
expiration = 3600
[fernet_tokens]
key_repository = $k/fernet-keys
[credential]
key_repository = $k/credential-keys
EOF
}

# keystone_sync: the schema, keys and bootstrap (admin, RegionOne, the identity endpoints);
# runs in the background while Neutron's schema is made (keystone_wait joins it).
keystone_sync() {
    local km=(keystone-manage --config-file "$DIR/ctl/etc/keystone.conf")
    {
        on ctl timeout 300 "${km[@]}" db_sync &&
            on ctl "${km[@]}" fernet_setup --keystone-user root --keystone-group root &&
            on ctl "${km[@]}" credential_setup --keystone-user root --keystone-group root &&
            on ctl timeout 120 "${km[@]}" bootstrap --bootstrap-password "$NLAB_ADMIN_PW" \
                --bootstrap-admin-url "$KEYSTONE_URL/" --bootstrap-internal-url "$KEYSTONE_URL/" \
                --bootstrap-public-url "$KEYSTONE_URL/" --bootstrap-region-id RegionOne
    } >"$DIR/logs/keystone-manage.log" 2>&1 &
    KEYSTONE_SYNC=$!
}
keystone_wait() {
    wait "$KEYSTONE_SYNC" || die "keystone-manage failed (see $DIR/logs/keystone-manage.log)"
    spawn keystone ctl env OS_KEYSTONE_CONFIG_DIR="$DIR/ctl/etc" OS_KEYSTONE_CONFIG_FILES=keystone.conf \
        gunicorn --chdir "$NLAB_HOME/py" --bind 127.0.0.1:5000 --bind 192.0.2.1:5000 --workers 1 \
        --threads 4 --worker-class gthread --timeout 120 --no-control-socket \
        --error-logfile "$DIR/logs/keystone-api.log" --access-logfile "$DIR/logs/keystone-access.log" \
        wsgi_keystone:application
    poll 60 on ctl curl -sf -o /dev/null http://127.0.0.1:5000/v3 ||
        die "Keystone did not answer (see $DIR/logs/keystone-api.log)"
    NLAB_KEYSTONE=http://127.0.0.1:5000/v3 on ctl timeout 120 /usr/bin/python3 "$NLAB_HOME/py/api.py" \
        "$NEUTRON_URL" keystone-setup >"$DIR/keystone.json" ||
        die "creating the Keystone objects failed"
}

server_conf() {
    local e=$DIR/ctl/etc
    mkdir -p "$e" "$DIR/ctl/state" "$DIR/ctl/lock"
    cat >"$e/neutron.conf" <<EOF
# nlab: the Neutron server (API and RPC server), ML2 with the openvswitch mechanism driver
[DEFAULT]
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
transport_url = rabbit://guest:guest@127.0.0.1:5672/
host = ctl
state_path = $DIR/ctl/state
api_paste_config = $VENV/etc/neutron/api-paste.ini
debug = $NLAB_DEBUG
# the underlay's MTU: a VXLAN network gets 9050 - 50 = 9000
global_physnet_mtu = 9050
# real agents report every 30 s; this is Neutron's default
agent_down_time = 75
api_workers = 1
rpc_workers = 1
rpc_state_report_workers = 1
max_l3_agents_per_router = 2
dhcp_agents_per_network = 1
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
[database]
connection = $(db_url)
[ml2]
type_drivers = flat,vxlan
tenant_network_types = vxlan
mechanism_drivers = openvswitch
extension_drivers = port_security
[ml2_type_flat]
flat_networks = physnet1
[ml2_type_vxlan]
vni_ranges = 1001:1999
[oslo_concurrency]
lock_path = $DIR/ctl/lock
[keystone_authtoken]
www_authenticate_uri = $KEYSTONE_URL
auth_url = http://127.0.0.1:5000/v3
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = neutron
password = $NLAB_NEUTRON_PW
EOF
}

server_start() {
    local e=$DIR/ctl/etc
    keystone_conf
    keystone_sync
    on ctl timeout 300 neutron-db-manage --config-file "$e/neutron.conf" upgrade heads >"$DIR/logs/db-manage.log" 2>&1 ||
        die "neutron-db-manage failed (see $DIR/logs/db-manage.log)"
    keystone_wait
    spawn neutron-api ctl env OS_NEUTRON_CONFIG_DIR="$e" OS_NEUTRON_CONFIG_FILES=neutron.conf \
        gunicorn --chdir "$NLAB_HOME/py" --bind 127.0.0.1:9696 --bind 192.0.2.1:9696 --workers 1 --threads 4 \
        --worker-class gthread --timeout 120 --no-control-socket \
        --error-logfile "$DIR/logs/neutron-api.log" --access-logfile "$DIR/logs/neutron-access.log" \
        wsgi_api:application
    spawn neutron-rpc-server ctl neutron-rpc-server --config-file "$e/neutron.conf" \
        --log-file "$DIR/logs/neutron-rpc-server.log"
    # Without a token the API answers 401: it is up, and it asks Keystone.
    poll 90 api_answers || die "the Neutron API did not answer (see $DIR/logs/neutron-api.log)"
}

api_answers() { [[ $(on ctl curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9696/v2.0/networks) == 401 ]]; }

# api ARGS...: lab/neutron/py/api.py in ctl, with the admin's token.
api() {
    NLAB_KEYSTONE=http://127.0.0.1:5000/v3 on ctl timeout 300 /usr/bin/python3 "$NLAB_HOME/py/api.py" \
        http://127.0.0.1:9696/v2.0 "$@"
}
