#!/usr/bin/env bash
# Bring up a local "cluster" on this machine, the way it runs on many: Postgres (the Dagster
# instance) and Redis (the Celery broker) on an address of a private bridge, the Dagster
# daemon and webserver, and N Celery workers, each in its own network namespace and UTS
# namespace (its own address and host name), reaching Postgres and Redis over the bridge.
# Tree files go to one shared directory, as a shared volume serves pods.
#
#   sudo deploy/cluster-up.sh [N_WORKERS]      # default 2; then open http://127.0.0.1:3000
#   . .cluster/env                             # the variables, to use the CLI on it
#   sudo deploy/cluster-down.sh                # stop it all (--purge also deletes .cluster)
#
# Needs root (network namespaces) and Debian's postgresql and redis-server packages. Run it
# again to restart what died (a worker, the daemon); what is running is left alone.
# RECURSIVE_CLUSTERS_CONFIG, when set, is the settings file every process reads.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

WORKERS="${1:-${RC_WORKERS:-2}}"
[ "$(id -u)" -eq 0 ] || { echo "cluster-up.sh needs root (ip netns): sudo $0" >&2; exit 1; }
[ -n "$PG_BIN" ] || { echo "Postgres is missing: apt-get install postgresql" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "Redis is missing: apt-get install redis-server" >&2; exit 1; }
[ -x "$VENV/bin/celery" ] || { echo "no celery in $VENV: pip install -e '.[distributed]'" >&2; exit 1; }
mkdir -p "$CLUSTER_DIR"/{logs,run,trees}
chmod 755 "$CLUSTER_DIR"

network() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$HOST_ADDR/24" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  for i in $(seq 1 "$WORKERS"); do
    local ns host_end="${PREFIX}-w$i-h" ns_end="${PREFIX}-w$i-n"
    ns="$(worker_ns "$i")"
    ip netns list | grep -qw "$ns" && continue
    ip netns add "$ns"
    ip link add "$host_end" type veth peer name "$ns_end"
    ip link set "$ns_end" netns "$ns"
    ip link set "$host_end" master "$BRIDGE" up
    ip -n "$ns" addr add "$(worker_addr "$i")/24" dev "$ns_end"
    ip -n "$ns" link set "$ns_end" up
    ip -n "$ns" link set lo up
  done
}

postgres() {
  local data="$CLUSTER_DIR/postgres"
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data" && chown postgres: "$data" && chmod 700 "$data"
    echo dagster > "$CLUSTER_DIR/run/pgpass" && chown postgres: "$CLUSTER_DIR/run/pgpass"
    as_pg "$PG_BIN/initdb" -D "$data" -U dagster --pwfile="$CLUSTER_DIR/run/pgpass" \
      --auth-host=scram-sha-256 --auth-local=trust >/dev/null
    rm -f "$CLUSTER_DIR/run/pgpass"
    echo "host all all $NET.0/24 scram-sha-256" >> "$data/pg_hba.conf"
    cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1,$HOST_ADDR'
port = $PG_PORT
unix_socket_directories = '$data'
max_connections = 200
CONF
  fi
  if ! as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null
  fi
  as_pg "$PG_BIN/psql" -h "$data" -p "$PG_PORT" -U dagster -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'dagster'" | grep -q 1 \
    || as_pg "$PG_BIN/createdb" -h "$data" -p "$PG_PORT" -U dagster dagster
}

redis() {
  alive "$CLUSTER_DIR/run/redis.pid" && return
  mkdir -p "$CLUSTER_DIR/redis"
  redis-server --bind "127.0.0.1 $HOST_ADDR" --port "$REDIS_PORT" --protected-mode no \
    --dir "$CLUSTER_DIR/redis" --save "" --appendonly no --daemonize yes \
    --pidfile "$CLUSTER_DIR/run/redis.pid" --logfile "$CLUSTER_DIR/logs/redis.log"
  for _ in $(seq 50); do alive "$CLUSTER_DIR/run/redis.pid" && return; sleep 0.1; done
  echo "Redis did not start: $CLUSTER_DIR/logs/redis.log" >&2; exit 1
}

write_env() {
  local home="$CLUSTER_DIR/dagster_home"
  mkdir -p "$home"
  sed "s/max_concurrent_runs: .*/max_concurrent_runs: $WORKERS/" "$REPO/deploy/dagster.yaml" \
    > "$home/dagster.yaml"
  cat > "$CLUSTER_DIR/env" <<ENV
export DAGSTER_HOME=$home
export DAGSTER_PG_HOST=$HOST_ADDR DAGSTER_PG_PORT=$PG_PORT DAGSTER_PG_DB=dagster
export DAGSTER_PG_USER=dagster DAGSTER_PG_PASSWORD=dagster
export RECURSIVE_CLUSTERS_BROKER=redis://$HOST_ADDR:$REDIS_PORT/0
export RECURSIVE_CLUSTERS_STORAGE=$CLUSTER_DIR/trees
export RECURSIVE_CLUSTERS_SIBLING_RUNS=$WORKERS
${RECURSIVE_CLUSTERS_CONFIG:+export RECURSIVE_CLUSTERS_CONFIG=$RECURSIVE_CLUSTERS_CONFIG}
export PATH=$VENV/bin:\$PATH
ENV
}

# start NAME COMMAND...: a process in a session of its own (its pid = its process group),
# logging to logs/NAME.log, unless it is running already.
start() {
  local name="$1"; shift
  alive "$CLUSTER_DIR/run/$name.pid" && return
  (cd "$REPO" && . "$CLUSTER_DIR/env" && exec setsid "$@" \
    </dev/null >>"$CLUSTER_DIR/logs/$name.log" 2>&1) &
  echo $! > "$CLUSTER_DIR/run/$name.pid"
}

workers() {
  for i in $(seq 1 "$WORKERS"); do
    local ns home="$CLUSTER_DIR/worker-$i/dagster_home"
    ns="$(worker_ns "$i")"
    mkdir -p "$home" && cp "$CLUSTER_DIR/dagster_home/dagster.yaml" "$home/"
    # Its own host name (a UTS namespace) and address (the network namespace); one run at a
    # time (--concurrency 1, each run gets RECURSIVE_CLUSTERS_THREADS or its share of cores),
    # and no run taken from the queue while it is busy (--disable-prefetch: else a busy worker
    # holds the next run while another worker idles).
    start "worker-$i" ip netns exec "$ns" unshare --uts sh -c \
      "hostname $ns && DAGSTER_HOME=$home exec celery -A recursive_clusters.defs.celery_worker \
       worker --queues dagster --concurrency 1 --disable-prefetch \
       --hostname worker-$i@%h --loglevel INFO"
  done
}

wait_for_webserver() {
  for _ in $(seq 240); do
    curl -sf --noproxy '*' "http://127.0.0.1:$UI_PORT/server_info" >/dev/null && return
    alive "$CLUSTER_DIR/run/webserver.pid" || break
    sleep 0.5
  done
  echo "the webserver did not start: $CLUSTER_DIR/logs/webserver.log" >&2; exit 1
}

wait_for_workers() {
  for _ in $(seq 120); do
    local answered
    answered="$(. "$CLUSTER_DIR/env" && cd "$REPO" && python -c "
from recursive_clusters.defs.celery_worker import app
print(len(app.control.ping(timeout=2.0)))" 2>/dev/null || echo 0)"
    [ "$answered" -ge "$WORKERS" ] && return
    sleep 1
  done
  echo "the workers did not all answer: $CLUSTER_DIR/logs/worker-*.log" >&2; exit 1
}

network
postgres
redis
write_env
start daemon dagster-daemon run -w workspace.yaml
start webserver dagster-webserver -w workspace.yaml -h 127.0.0.1 -p "$UI_PORT"
workers
wait_for_webserver
wait_for_workers
echo "cluster up: $WORKERS workers, UI on http://127.0.0.1:$UI_PORT, variables in $CLUSTER_DIR/env"
