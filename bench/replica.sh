#!/usr/bin/env bash
# A streaming replica of the local PostgreSQL (127.0.0.1:5432) on 127.0.0.1:5433, for `make load`'s cluster profile
# (bench/load.py --profile cluster). The same recipe and the same data directory as .ci/run's start_replica (which
# is not written to be sourced), so a replica started by either is reused by the other.
#
#   bench/replica.sh start    reuse the replica if it streams; else start it, (re)copying the primary with
#                             pg_basebackup when needed. Prints "already streaming" or "started". Exit 0 = streaming.
#   bench/replica.sh stop     stop the replica server (its data directory stays, for the next start)
#   bench/replica.sh status   exit 0 if it runs and streams
#
# Needs root (runs pg_basebackup and pg_ctl as the postgres user, like CI) and Debian's postgresql-common layout.
# A physical replica copies the whole cluster: every database of the primary (`load` included, and any big
# database that happens to be there) is in the copy, and databases created later stream to it as well.
# Like .ci/run, `start` adds "host replication all 127.0.0.1/32 trust" to the primary's pg_hba.conf once.
set -euo pipefail

REPLICA_PORT=5433
REPLICA_DIR="${REPLICA_DIR:-/var/lib/postgresql/replica-$REPLICA_PORT}"
VERSION="$(ls /etc/postgresql | head -n1)"
BIN="/usr/lib/postgresql/$VERSION/bin"
HBA="/etc/postgresql/$VERSION/main/pg_hba.conf"

replica_streaming() {
  [ "$(psql -h 127.0.0.1 -p "$REPLICA_PORT" -U postgres -d postgres -tAc \
       "SELECT pg_is_in_recovery() AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')" \
       2>/dev/null)" = t ]
}

start_replica() {
  if replica_streaming; then echo "already streaming"; return 0; fi
  if pg_isready -h 127.0.0.1 -p "$REPLICA_PORT" -q 2>/dev/null \
      && ! runuser -u postgres -- "$BIN/pg_ctl" -D "$REPLICA_DIR" status >/dev/null 2>&1; then
    echo "127.0.0.1:$REPLICA_PORT is taken by a server that is not the streaming replica in $REPLICA_DIR" >&2
    return 1
  fi
  # replication connections from loopback (the line `host all …` does not cover them); added once
  if ! grep -Eq '^[[:space:]]*host[[:space:]]+replication[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]' "$HBA"; then
    echo "host replication all 127.0.0.1/32 trust" >> "$HBA"
    psql -h 127.0.0.1 -U postgres -d postgres -qtAc "SELECT pg_reload_conf()" >/dev/null
  fi
  local attempt
  for attempt in 1 2; do
    if [ ! -f "$REPLICA_DIR/standby.signal" ]; then
      echo "copying the primary into $REPLICA_DIR (pg_basebackup of the whole cluster: $(psql -h 127.0.0.1 -U postgres \
        -d postgres -tAc "SELECT pg_size_pretty(sum(pg_database_size(datname))) FROM pg_database"))" >&2
      rm -rf "$REPLICA_DIR"
      install -d -o postgres -g postgres -m 700 "$REPLICA_DIR"
      runuser -u postgres -- pg_basebackup -h 127.0.0.1 -p 5432 -U postgres -D "$REPLICA_DIR" -R -X stream \
        --checkpoint=fast
      # Debian keeps postgresql.conf outside the data directory, so the copy has none
      printf "port = %s\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nhot_standby = on\n" \
        "$REPLICA_PORT" "$REPLICA_DIR" > "$REPLICA_DIR/postgresql.conf"
      cp "$HBA" "$REPLICA_DIR/pg_hba.conf"
      : > "$REPLICA_DIR/pg_ident.conf"
      chown postgres:postgres "$REPLICA_DIR/postgresql.conf" "$REPLICA_DIR/pg_hba.conf" "$REPLICA_DIR/pg_ident.conf"
    fi
    runuser -u postgres -- "$BIN/pg_ctl" -D "$REPLICA_DIR" -l "$REPLICA_DIR/replica.log" -w start >/dev/null \
      || runuser -u postgres -- "$BIN/pg_ctl" -D "$REPLICA_DIR" status >/dev/null 2>&1 || true
    for _ in $(seq 1 30); do replica_streaming && { echo "started"; return 0; }; sleep 1; done
    # a copy that cannot catch up (the primary no longer has its WAL) or of another cluster: copy again
    echo "the replica in $REPLICA_DIR does not stream (attempt $attempt); copying the primary again" >&2
    runuser -u postgres -- "$BIN/pg_ctl" -D "$REPLICA_DIR" -m fast -w stop >/dev/null 2>&1 || true
    rm -f "$REPLICA_DIR/standby.signal"
  done
  echo "the PostgreSQL replica on $REPLICA_PORT did not start streaming" >&2; return 1
}

stop_replica() {
  if runuser -u postgres -- "$BIN/pg_ctl" -D "$REPLICA_DIR" status >/dev/null 2>&1; then
    runuser -u postgres -- "$BIN/pg_ctl" -D "$REPLICA_DIR" -m fast -w stop >/dev/null
    echo "stopped"
  else
    echo "not running"
  fi
}

case "${1:-}" in
  start) start_replica ;;
  stop) stop_replica ;;
  status) replica_streaming ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
