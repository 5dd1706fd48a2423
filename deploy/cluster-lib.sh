# Shared by cluster-up.sh and cluster-down.sh: where the local "cluster" lives and its names.
# Every setting can be overridden from the environment (the tests run a cluster of their own
# beside a user's, on another subnet, prefix and ports).
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER_DIR="$(realpath -m "${RC_CLUSTER_DIR:-$REPO/.cluster}")"
VENV="${RC_VENV:-$REPO/.venv}"
NET="${RC_CLUSTER_NET:-10.231.0}"           # the first three octets of the workers' subnet
PREFIX="${RC_CLUSTER_PREFIX:-rc}"           # names of the bridge, veths and namespaces
HOST_ADDR="$NET.1"                          # Postgres and Redis listen here (and on loopback)
BRIDGE="${PREFIX}-br0"
PG_PORT="${RC_PG_PORT:-55432}"
REDIS_PORT="${RC_REDIS_PORT:-56379}"
UI_PORT="${RC_UI_PORT:-3000}"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"

worker_ns() { echo "${PREFIX}-worker-$1"; }
worker_addr() { echo "$NET.$((10 + $1))"; }

# A process started by cluster-up.sh is alive when its pid file names a living process (not
# a zombie: a killed process stays one until its parent, often init, reaps it).
alive() {
  [ -f "$1" ] || return 1
  local state
  state="$(awk '{print $3}' "/proc/$(cat "$1")/stat" 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# Postgres refuses to run as root: as root, its commands run as Debian's postgres user.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
