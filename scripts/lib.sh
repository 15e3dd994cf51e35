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

# build_tree DIR BUILD_TYPE [CMAKE_ARGS...] [-- TARGET...] : configure and build (every
# target, or only the TARGETs). CMake's notes on test tools it did not find are shown.
build_tree() {
  local dir=$1 type=$2 args=() targets=()
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
  [ $# -gt 0 ] && shift && targets=(--target "$@")
  say "building $(basename "$dir") ($type${targets[*]:+, ${targets[*]:1}})"
  cmake -S "$ORCH_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE="$type" "${args[@]}" |
    { grep -E '^-- .* not found: ' >&2 || true; }
  cmake --build "$dir" -j "$(nproc)" "${targets[@]}" >/dev/null ||
    cmake --build "$dir" -j 1 "${targets[@]}"
}

pg_bindir() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$bin" ] || die "PostgreSQL server binaries not found (apt-get install postgresql)"
  echo "$bin"
}

# Run a command as the cluster's owner: 'postgres' when we are root (from /, which it can enter).
as_pg() { if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }

# A short, stable name for this clone (its path's hash): the fallback cluster and socket folders.
clone_tag() { printf '%s' "$ORCH_ROOT" | sha256sum | cut -c1-12; }

# The folder a private cluster lives in. DIR itself, except as root when the 'postgres' user
# cannot enter the clone (e.g. a clone in /root): then <postgres's home>/orch-<tag>, which DIR
# becomes a symbolic link to (so later runs, `ls -l` and stop_private_cluster find it).
cluster_dir() {
  local dir=$1 alt home
  if [ "$(id -u)" -ne 0 ]; then
    mkdir -p "$dir"
    echo "$dir"
    return
  fi
  if [ ! -L "$dir" ]; then
    mkdir -p "$dir"
    chown postgres "$dir"
    if as_pg test -w "$dir" 2>/dev/null; then
      echo "$dir"
      return
    fi
    home=$(getent passwd postgres | cut -d: -f6)
    [ -d "$home" ] || home=/var/lib/postgresql
    alt=$home/orch-$(clone_tag)
    rmdir "$dir" 2>/dev/null ||
      die "the postgres user cannot enter $ORCH_ROOT and $dir is not empty; move it away or set DATABASE_URI"
    say "the postgres user cannot enter $ORCH_ROOT: the private cluster lives in $alt ($dir links to it)"
    ln -s "$alt" "$dir"
    mkdir -p "$alt"
    chown postgres: "$alt"
    chmod 700 "$alt"
    printf 'the private PostgreSQL cluster of scripts/run in %s\n' "$ORCH_ROOT" >"$alt/README"
  fi
  alt=$(readlink -f "$dir")
  if [ ! -d "$alt" ]; then # the folder it links to was removed: a new cluster there
    mkdir -p "$alt"
    chown postgres: "$alt"
    chmod 700 "$alt"
  fi
  echo "$alt"
}

# start_private_cluster DIR : create (first time) and start a cluster whose data and unix socket
# live in DIR (see cluster_dir; the socket goes to /tmp/orch-pg-<tag> when DIR is too long for
# one); no TCP port. Sets PG_SOCKET_DIR.
start_private_cluster() {
  local dir bin sock
  bin=$(pg_bindir)
  dir=$(cluster_dir "$1")
  if ! as_pg test -w "$dir"; then
    die "the postgres user cannot write $dir (a parent folder is not accessible to it?)"
  fi
  sock=$dir
  if [ $((${#dir} + 14)) -ge 90 ]; then # "/.s.PGSQL.5432": unix socket paths are short
    sock=/tmp/orch-pg-$(clone_tag)
    mkdir -p -m 700 "$sock"
    [ "$(id -u)" -eq 0 ] && chown postgres "$sock"
    [ "$(stat -c %U "$sock")" = "$(as_pg id -un)" ] || die "$sock belongs to someone else"
    say "the cluster's path is too long for a unix socket: socket in $sock"
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    say "creating a private PostgreSQL cluster in $dir"
    as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
  fi
  if ! as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    say "starting PostgreSQL (data in $dir/data, socket in $sock)"
    # setsid: Ctrl-C goes to the orchestrator, which stops first; then we stop the cluster.
    as_pg setsid "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-k $sock -c listen_addresses=''" start >/dev/null
  fi
  PG_SOCKET_DIR=$sock
}

# stop_private_cluster DIR : DIR as given to start_private_cluster (a link is followed).
stop_private_cluster() {
  local dir
  dir=$(readlink -f "$1")
  [ -f "$dir/data/postmaster.pid" ] || return 0
  say "stopping PostgreSQL"
  as_pg "$(pg_bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# ensure_database SOCKET_DIR NAME OWNER : the database NAME owned by OWNER, an ordinary login
# role (no superuser, no CREATEDB/CREATEROLE) that the host connects as. A database of an
# earlier run whose objects belong to 'postgres' is handed over to OWNER (tables, views,
# sequences, functions, types, schemas; extensions stay with 'postgres').
ensure_database() {
  local dir=$1 name=$2 owner=$3
  [[ $name =~ ^[a-z_][a-z0-9_]*$ && $owner =~ ^[a-z_][a-z0-9_]*$ ]] || die "bad database/role name"
  local psql=(psql -X -q -At -v ON_ERROR_STOP=1 -h "$dir" -U postgres)
  if [ "$("${psql[@]}" -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '$owner'")" != 1 ]; then
    "${psql[@]}" -d postgres -c "CREATE ROLE $owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE" >/dev/null
  fi
  if [ "$("${psql[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$name'")" != 1 ]; then
    "${psql[@]}" -d postgres -c "CREATE DATABASE $name OWNER $owner" >/dev/null
    return
  fi
  "${psql[@]}" -d postgres -c "ALTER DATABASE $name OWNER TO $owner" >/dev/null
  "${psql[@]}" -d "$name" >/dev/null <<SQL
DO \$\$
DECLARE
  stmt text;
  n int := 0;
BEGIN
  FOR stmt IN
    WITH own AS (SELECT oid FROM pg_namespace
                  WHERE nspname NOT IN ('pg_catalog', 'information_schema')
                    AND nspname NOT LIKE 'pg\_toast%' AND nspname NOT LIKE 'pg\_temp%'),
         ext AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e')
    SELECT format('ALTER SCHEMA %I OWNER TO $owner', nspname) FROM pg_namespace
     WHERE oid IN (SELECT oid FROM own) AND nspowner = 'postgres'::regrole AND nspname <> 'public'
    UNION ALL
    SELECT format('ALTER %s %s OWNER TO $owner',
                  CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                    WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
                    WHEN 'c' THEN 'TYPE' ELSE 'TABLE' END, c.oid::regclass)
      FROM pg_class c
     WHERE c.relnamespace IN (SELECT oid FROM own) AND c.relowner = 'postgres'::regrole
       AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                        AND d.objid = c.oid AND d.deptype IN ('a', 'i', 'e'))
    UNION ALL
    SELECT format('ALTER ROUTINE %s OWNER TO $owner', p.oid::regprocedure) FROM pg_proc p
     WHERE p.pronamespace IN (SELECT oid FROM own) AND p.proowner = 'postgres'::regrole
       AND (p.oid) NOT IN (SELECT objid FROM ext WHERE classid = 'pg_proc'::regclass)
    UNION ALL
    SELECT format('ALTER TYPE %s OWNER TO $owner', t.oid::regtype) FROM pg_type t
     WHERE t.typnamespace IN (SELECT oid FROM own) AND t.typowner = 'postgres'::regrole
       AND t.typtype IN ('e', 'd', 'r')
       AND (t.oid) NOT IN (SELECT objid FROM ext WHERE classid = 'pg_type'::regclass)
  LOOP
    EXECUTE stmt;
    n := n + 1;
  END LOOP;
  IF n > 0 THEN
    RAISE NOTICE 'handed % objects over to $owner', n;
  END IF;
END
\$\$;
SQL
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
