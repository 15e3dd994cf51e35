# bench/lib.sh - shared by the wrk-based benchmarks (sourced, not run): a throwaway
# PostgreSQL cluster with pg-ceiling's settings, the real host on a free port, and
# wrk with a latency report a script can parse.
# Needs: root or a user that may run initdb; wrk; psql; pgbench (the DB references).
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BENCH_BUILD:-$root/build}
bin=$build/orchestrator
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
work=$(mktemp -d)
chmod 755 "$work"
host_pids=()
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
bench_cleanup() {
  local p
  for p in "${host_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  [ -f "$work/data/postmaster.pid" ] && as_pg "$pgbin/pg_ctl" -D "$work/data" -m fast stop >/dev/null 2>&1
  rm -rf "$work"
}
trap bench_cleanup EXIT
trap "exit 1" INT TERM
[ -x "$bin" ] || { echo "$(basename "$0"): build first (cmake --build $build)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "$(basename "$0"): needs wrk (apt-get install wrk)" >&2; exit 2; }

# A cluster with the settings of ../shared/bench/pg-ceiling; DSN of database $1 in $dsn.
bench_cluster() {
  [ "$(id -u)" = 0 ] && chown postgres "$work"
  as_pg "$pgbin/initdb" -D "$work/data" -U postgres -A trust >/dev/null
  as_pg "$pgbin/pg_ctl" -D "$work/data" -l "$work/pg.log" -w \
    -o "-k $work -c listen_addresses='' -c shared_buffers=1GB -c max_wal_size=4GB -c max_connections=200" \
    start >/dev/null
  psql -X -q -h "$work" -U postgres -d postgres -c "CREATE DATABASE bench" >/dev/null
  dsn="postgresql://postgres@/bench?host=$work"
  echo "machine: $(nproc) CPUs, $(uname -sr); $("$pgbin/postgres" --version); git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"
}
q() { psql -X -At -h "$work" -U postgres -d bench -v ON_ERROR_STOP=1 -c "$1"; }

# bench_host PRODUCTS_DIR [serve flags...]: start a host; its URL in $url, pid in $host_pid.
bench_host() {
  local products=$1; shift
  local log="$work/host.$RANDOM.log"
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  DATABASE_URI=$dsn ORCH_SCHEDULE_DEFAULTS=0 "$bin" serve --port "$port" --lua-dir "$root/lua" \
    --products "$products" --migrations "$root/migrations" --log-level warning "$@" >"$log" 2>&1 &
  host_pid=$!
  host_pids+=("$host_pid")
  url="http://127.0.0.1:$port"
  for _ in $(seq 1 300); do
    curl -sf "$url/api/health" >/dev/null 2>&1 && return
    kill -0 "$host_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "host did not start:" >&2; cat "$log" >&2; exit 1
}
bench_stop_host() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null || true; }

# wrk_run LABEL URL SECONDS CONNECTIONS [RATE] [SCRIPT]: wrk -t2; RATE paces each connection
# (closed loop with a delay: an approximation of a fixed rate). Prints one line:
# LABEL rps=… p50=…ms p99=…ms errors=… and sets wrk_rps, wrk_p50, wrk_p99.
wrk_run() {
  local label=$1 target=$2 secs=$3 conns=$4 rate=${5:-0} script=${6:-}
  local lua="$work/wrk.$RANDOM.lua"
  {
    [ -n "$script" ] && cat "$script"
    if [ "$rate" != 0 ]; then
      echo "local pace_ms = $conns * 1000 / $rate"
      echo "function delay() return pace_ms end"
    fi
    cat <<'LUA'
function done(summary, latency, requests)
  io.write(string.format("WRK rps=%.0f p50=%.3f p99=%.3f errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, summary.errors.status))
end
LUA
  } >"$lua"
  local out
  out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$lua" "$target" 2>&1 | grep '^WRK ')
  wrk_rps=$(sed -E 's/.*rps=([0-9.]+).*/\1/' <<<"$out")
  wrk_p50=$(sed -E 's/.*p50=([0-9.]+).*/\1/' <<<"$out")
  wrk_p99=$(sed -E 's/.*p99=([0-9.]+).*/\1/' <<<"$out")
  printf "%-34s %s\n" "$label" "${out#WRK }"
}

# pgbench_run LABEL SQLFILE SECONDS CLIENTS: the DB query alone; sets pg_tps and pg_lat (ms avg).
pgbench_run() {
  local out
  out=$(pgbench -n -h "$work" -U postgres -f "$2" -T "$3" -c "$4" -j 2 bench 2>&1)
  pg_tps=$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' <<<"$out" | head -n 1)
  pg_lat=$(sed -nE 's/^latency average = ([0-9.]+) ms/\1/p' <<<"$out")
  printf "%-34s tps=%.0f latency_avg=%sms\n" "$1" "$pg_tps" "$pg_lat"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
