#!/bin/sh
# Start or stop a throwaway PostgreSQL cluster for benchmarks, on 127.0.0.1
# only, with durable commits (fsync and synchronous_commit on, unlike the
# test harness's cluster), in a temporary directory.
#
#   eval "$(cmd/credvault-bench/pg-throwaway.sh start)"   # sets PGBENCH_DIR and PGBENCH_URL
#   go run ./cmd/credvault-bench -database-url "$PGBENCH_URL" -rows 10000
#   cmd/credvault-bench/pg-throwaway.sh stop "$PGBENCH_DIR"
#
# As root, the cluster runs as the postgres user (initdb refuses root).
set -eu
BIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "${1:-}" in
start)
	dir=$(mktemp -d /tmp/credvault-pgbench-XXXXXX)
	[ "$(id -u)" = 0 ] && chown postgres: "$dir"
	as_pg "$BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C --no-instructions >"$dir/initdb.log" 2>&1
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
shared_buffers = 256MB
logging_collector = off
log_min_messages = warning
CONF
	as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null
	as_pg "$BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres credvault_bench
	echo "PGBENCH_DIR=$dir; PGBENCH_URL=postgres://postgres@127.0.0.1:$port/credvault_bench?sslmode=disable; export PGBENCH_DIR PGBENCH_URL"
	;;
stop)
	dir=${2:?usage: $0 stop DIR}
	as_pg "$BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
	rm -rf "$dir"
	;;
*)
	echo "usage: $0 start | stop DIR" >&2
	exit 2
	;;
esac
