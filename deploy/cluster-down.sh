#!/usr/bin/env bash
# Stop the local "cluster" of cluster-up.sh: workers, webserver, daemon, Redis, Postgres, then
# remove its network namespaces and bridge. The data (Postgres, trees) stays in the cluster
# directory unless --purge is given.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

# stop NAME: SIGTERM to its process group, SIGKILL to what is left of it after 20 s.
stop() {
  local pidfile="$CLUSTER_DIR/run/$1.pid"
  [ -f "$pidfile" ] || return 0
  local pid; pid="$(cat "$pidfile")"
  kill -TERM -- "-$pid" 2>/dev/null
  for _ in $(seq 200); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null
  rm -f "$pidfile"
}

for pidfile in "$CLUSTER_DIR"/run/worker-*.pid; do
  [ -e "$pidfile" ] && stop "$(basename "$pidfile" .pid)"
done
stop webserver
stop daemon
if alive "$CLUSTER_DIR/run/redis.pid"; then
  kill -TERM "$(cat "$CLUSTER_DIR/run/redis.pid")"
  for _ in $(seq 50); do alive "$CLUSTER_DIR/run/redis.pid" || break; sleep 0.1; done
fi
rm -f "$CLUSTER_DIR/run/redis.pid"
if [ -n "$PG_BIN" ] && [ -f "$CLUSTER_DIR/postgres/PG_VERSION" ]; then
  as_pg "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/postgres" -m fast -w stop >/dev/null 2>&1
fi
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${PREFIX}-worker-"); do
  ip netns del "$ns"  # its veth end goes with it, and the peer on the bridge too
done
ip link del "$BRIDGE" 2>/dev/null
if [ "${1:-}" = "--purge" ]; then rm -rf "$CLUSTER_DIR"; fi
echo "cluster down"
