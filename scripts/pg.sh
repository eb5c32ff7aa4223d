#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, under target/pg/.
#
#   scripts/pg.sh start   start it (reuses a running one; installs PostgreSQL
#                         with apt-get when initdb is missing)
#   scripts/pg.sh url     print its URL (postgres://postgres@127.0.0.1:PORT/postgres)
#   scripts/pg.sh stop    stop it
#   scripts/pg.sh restart [fast|immediate]
#                         restart the running cluster (immediate: like a
#                         crash, recovery from the WAL at start); for the
#                         failover tests
#
# It lives in target/pg/ (or /tmp when the server's user cannot reach the
# checkout) and listens on 127.0.0.1 only, on the first free port from 55432 (or
# $CAIRN_PG_PORT), with trust authentication for loopback connections and
# fsync on (Cairn asserts it). Run as root, the server runs as the
# unprivileged `postgres` user. A stopped cluster is not reused: `start`
# makes a fresh one, so databases left by failed tests do not pile up.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
state="$root/target/pg"
# The cluster's folder: target/pg/cluster, or (when the server's user cannot
# reach the checkout, e.g. a clone under /root) a folder under /tmp; its
# path is kept in target/pg/cluster-dir.
dir="$(cat "$state/cluster-dir" 2>/dev/null || echo "$state/cluster")"
data="$dir/data"
log="$dir/server.log"

pg_bindir() {
    local d
    if command -v pg_config >/dev/null 2>&1; then
        d="$(pg_config --bindir 2>/dev/null || true)"
        if [[ -n "$d" && -x "$d/initdb" ]]; then
            echo "$d"
            return 0
        fi
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$d/initdb" ]]; then
            echo "$d"
            return 0
        fi
    done
    d="$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")"
    if [[ -x "$d/initdb" ]]; then
        echo "$d"
        return 0
    fi
    return 1
}

ensure_postgres() {
    if ! bindir="$(pg_bindir)"; then
        echo "pg.sh: PostgreSQL not found; installing it with apt-get" >&2
        if [[ "$(id -u)" -ne 0 ]]; then
            echo "pg.sh: run as root, or install PostgreSQL (apt-get install postgresql)" >&2
            exit 1
        fi
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
        bindir="$(pg_bindir)" || { echo "pg.sh: initdb still missing after installing postgresql" >&2; exit 1; }
    fi
}

# Runs a PostgreSQL program as the cluster's owner.
as_owner() {
    if [[ "$(id -u)" -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

running() {
    [[ -f "$data/PG_VERSION" ]] && as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

url() {
    echo "postgres://postgres@127.0.0.1:$(cat "$state/port")/postgres"
}

# Picks and prepares the cluster's folder (owned by the server's user).
make_cluster_dir() {
    if [[ "$dir" == /tmp/cairn-pg.* ]]; then
        rm -rf "$dir"
    fi
    rm -rf "$state/cluster" "$state/cluster-dir"
    mkdir -p "$state"
    dir="$state/cluster"
    mkdir -p "$dir"
    if [[ "$(id -u)" -eq 0 ]]; then
        chown postgres: "$dir"
        if ! runuser -u postgres -- test -w "$dir"; then
            rm -rf "$dir"
            dir="$(mktemp -d /tmp/cairn-pg.XXXXXX)"
            chown postgres: "$dir"
        fi
    fi
    echo "$dir" >"$state/cluster-dir"
    data="$dir/data"
    log="$dir/server.log"
}

start() {
    ensure_postgres
    if running; then
        url
        return 0
    fi
    if [[ "$(id -u)" -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
    make_cluster_dir
    local port="${CAIRN_PG_PORT:-55432}"
    while ! port_free "$port"; do
        port=$((port + 1))
        if (( port > ${CAIRN_PG_PORT:-55432} + 100 )); then
            echo "pg.sh: no free port from ${CAIRN_PG_PORT:-55432}" >&2
            exit 1
        fi
    done
    echo "$port" >"$state/port"
    as_owner "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C >"$state/initdb.log" 2>&1 \
        || { cat "$state/initdb.log" >&2; exit 1; }
    cat >>"$data/postgresql.conf" <<EOF
# scripts/pg.sh: a throwaway cluster for tests.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = on
synchronous_commit = on
max_connections = 300
shared_buffers = 128MB
EOF
    cat >"$data/pg_hba.conf" <<EOF
# scripts/pg.sh: trust on loopback only.
local all all trust
host  all all 127.0.0.1/32 trust
EOF
    as_owner "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null \
        || { cat "$log" >&2; exit 1; }
    url
}

stop() {
    if ! bindir="$(pg_bindir)"; then
        return 0
    fi
    if running; then
        as_owner "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    fi
}

restart() {
    local mode="${1:-fast}"
    case "$mode" in
        fast | immediate | smart) ;;
        *) echo "pg.sh: restart mode must be fast, immediate or smart" >&2; exit 2 ;;
    esac
    bindir="$(pg_bindir)" || { echo "pg.sh: PostgreSQL not found" >&2; exit 1; }
    running || { echo "pg.sh: no running cluster to restart; run scripts/pg.sh start" >&2; exit 1; }
    as_owner "$bindir/pg_ctl" -D "$data" -l "$log" -m "$mode" -w -t 60 restart >/dev/null \
        || { tail -n 20 "$log" >&2; exit 1; }
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    restart) restart "${2:-fast}" ;;
    url)
        [[ -f "$state/port" ]] || { echo "pg.sh: no cluster; run scripts/pg.sh start" >&2; exit 1; }
        url
        ;;
    *)
        echo "usage: $0 start|stop|url|restart [fast|immediate]" >&2
        exit 2
        ;;
esac
