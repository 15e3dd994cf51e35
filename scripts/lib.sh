# scripts/lib.sh - shared by scripts/run and scripts/test: Debian packages,
# CMake builds and a private PostgreSQL cluster. Source it; don't run it.

ORCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ensure_packages LIST... : install the packages of scripts/packages/LIST.txt that
# are missing (as root), or print the exact command and stop (as anyone else).
ensure_packages() {
  local missing=() list pkg
  for list in "$@"; do
    while read -r pkg; do
      case "$pkg" in ''|'#'*) continue ;; esac
      if [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" != "installed" ]; then
        missing+=("$pkg")
      fi
    done <"$ORCH_ROOT/scripts/packages/$list.txt"
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    printf 'Missing Debian packages. Install them with:\n  sudo apt-get install -y %s\nthen run this command again.\n' "${missing[*]}" >&2
    exit 1
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# build_tree DIR BUILD_TYPE [CMAKE_ARGS...] : configure (once) and build.
build_tree() {
  local dir=$1 type=$2
  shift 2
  say "building $(basename "$dir") ($type)"
  cmake -S "$ORCH_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE="$type" "$@" >/dev/null
  cmake --build "$dir" -j "$(nproc)" >/dev/null || cmake --build "$dir" -j 1
}

pg_bindir() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$bin" ] || die "PostgreSQL server binaries not found (apt-get install postgresql)"
  echo "$bin"
}

# Run a command as the cluster's owner: 'postgres' when we are root.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# start_private_cluster DIR : create (first time) and start a cluster whose
# data and unix socket live in DIR; no TCP port. Sets PG_SOCKET_DIR.
start_private_cluster() {
  local dir=$1 bin
  bin=$(pg_bindir)
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  if ! as_pg test -w "$dir"; then
    die "the postgres user cannot write $dir (a parent folder is not accessible to it?)"
  fi
  if [ ${#dir} -gt 90 ]; then
    die "the path $dir is too long for a PostgreSQL unix socket; set DATABASE_URI instead"
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    say "creating a private PostgreSQL cluster in $dir"
    as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
  fi
  if ! as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    say "starting PostgreSQL (socket in $dir)"
    # setsid: Ctrl-C goes to the orchestrator, which stops first; then we stop the cluster.
    as_pg setsid "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-k $dir -c listen_addresses=''" start >/dev/null
  fi
  PG_SOCKET_DIR=$dir
}

stop_private_cluster() {
  local dir=$1
  [ -f "$dir/data/postmaster.pid" ] || return 0
  say "stopping PostgreSQL"
  as_pg "$(pg_bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# ensure_database SOCKET_DIR NAME
ensure_database() {
  local dir=$1 name=$2
  if [ "$(psql -X -At -h "$dir" -U postgres -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$name'")" != "1" ]; then
    psql -X -q -h "$dir" -U postgres -d postgres -c "CREATE DATABASE \"$name\"" >/dev/null
  fi
}

# on_exit COMMAND : run COMMAND when the script exits (in reverse order of registration).
ORCH_CLEANUPS=()
run_cleanups() {
  local i
  for ((i = ${#ORCH_CLEANUPS[@]} - 1; i >= 0; i--)); do eval "${ORCH_CLEANUPS[i]}" || true; done
}
on_exit() {
  ORCH_CLEANUPS+=("$1")
  trap run_cleanups EXIT
}
