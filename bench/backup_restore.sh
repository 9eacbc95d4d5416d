#!/usr/bin/env bash
# Backup and restore check of a Xueji installation on PostgreSQL (docs/DEPLOY.md, "Backups and restore").
#
#   bench/backup_restore.sh [SOURCE_DB] [UPLOAD_FOLDER]
#
# 1. backup:  pg_dump -Fc of SOURCE_DB (default `load`) taken from an exported snapshot, then a tar.gz of the
#             upload folder (evidence files; default instance/load/uploads, the folder `make load` serves)
#             taken after the dump, so every evidence row in the dump has its file in the tar;
# 2. restore: into the scratch database RESTORE_DB (default `restore_check`, dropped and created), files into a
#             scratch folder;
# 3. verify:  exact row counts of every table, counted in the dump's own snapshot, against the restored database,
#             and every evidence row of the restored database against the restored files.
# Exit status 0 when everything matches. Environment: PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres),
# RESTORE_DB, BACKUP_DIR (default instance/load/backups/<time>), KEEP=1 keeps the restored database.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC_DB="${1:-load}"
UPLOADS="${2:-$ROOT/instance/load/uploads}"
RESTORE_DB="${RESTORE_DB:-restore_check}"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
export PGOPTIONS="${PGOPTIONS:--c client_min_messages=warning}"
STAMP="$(date +%Y%m%d-%H%M%S)"
BACKUP_DIR="${BACKUP_DIR:-$ROOT/instance/load/backups/$STAMP}"

case "$RESTORE_DB" in
  "$SRC_DB"|test|bench|load|postgres|template0|template1)
    echo "refusing to restore into '$RESTORE_DB': use a scratch database" >&2; exit 2;;
esac
[ -d "$UPLOADS" ] || { echo "upload folder $UPLOADS not found" >&2; exit 2; }
mkdir -p "$BACKUP_DIR"
DUMP="$BACKUP_DIR/$SRC_DB.dump"
FILES="$BACKUP_DIR/uploads.tar.gz"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"; [ -n "${SNAP_PID:-}" ] && kill "$SNAP_PID" 2>/dev/null || true' EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
# exact count(*) of every table of the public schema, one "table|rows" line each
COUNTS_SQL="SELECT table_name || '|' || (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I',
  table_schema, table_name), false, true, '')))[1]::text FROM information_schema.tables
  WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name;"

# --- 1. backup --------------------------------------------------------------------------------------------
# A session holds a REPEATABLE READ transaction open and exports its snapshot: pg_dump dumps exactly that
# snapshot and the counts are taken in it too, so the check is exact even while the application writes.
coproc SNAP { psql -XAtq -v ON_ERROR_STOP=1 -d "$SRC_DB" 2>&1; }
SNAP_PID=$SNAP_PID
echo "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT pg_export_snapshot();" >&"${SNAP[1]}"
read -r -u "${SNAP[0]}" SNAPSHOT
echo "$COUNTS_SQL SELECT '__end__';" >&"${SNAP[1]}"
: > "$WORK/source.counts"
while read -r -u "${SNAP[0]}" line && [ "$line" != "__end__" ]; do echo "$line" >> "$WORK/source.counts"; done

t0=$(now)
pg_dump -Fc --snapshot="$SNAPSHOT" -d "$SRC_DB" -f "$DUMP"
t1=$(now)
printf 'COMMIT;\n\\q\n' >&"${SNAP[1]}"; wait "$SNAP_PID" 2>/dev/null || true; SNAP_PID=
tar -czf "$FILES" -C "$UPLOADS" .
t2=$(now)

# --- 2. restore -------------------------------------------------------------------------------------------
dropdb --if-exists "$RESTORE_DB"
createdb "$RESTORE_DB"
t3=$(now)
pg_restore --no-owner --exit-on-error -j 2 -d "$RESTORE_DB" "$DUMP"
t4=$(now)
mkdir -p "$WORK/uploads"
tar -xzf "$FILES" -C "$WORK/uploads"
t5=$(now)

# --- 3. verify --------------------------------------------------------------------------------------------
psql -XAtq -d "$RESTORE_DB" -c "$COUNTS_SQL" > "$WORK/restored.counts"
status=0
tables=$(wc -l < "$WORK/source.counts")
rows=$(awk -F'|' '{ s += $2 } END { print s + 0 }' "$WORK/source.counts")
if ! diff -u "$WORK/source.counts" "$WORK/restored.counts" > "$WORK/counts.diff"; then
  echo "ROW COUNTS DIFFER:"; cat "$WORK/counts.diff"; status=1
fi
psql -XAtq -d "$RESTORE_DB" -c "SELECT stored_name FROM evidence ORDER BY 1" > "$WORK/evidence.rows"
evidence_rows=$(wc -l < "$WORK/evidence.rows")
missing=0
while read -r name; do
  [ -f "$WORK/uploads/evidence/$name" ] || { missing=$((missing + 1)); [ $missing -le 5 ] && echo "missing file: $name"; }
done < "$WORK/evidence.rows"
[ "$missing" -eq 0 ] || status=1
files=$(find "$WORK/uploads" -type f | wc -l)

main() { grep -E "^$1\|" "$WORK/source.counts" | cut -d'|' -f2; }
echo
echo "backup/restore check of '$SRC_DB' ($(date '+%Y-%m-%d %H:%M'))"
echo "  dump      $(du -h "$DUMP" | cut -f1)  pg_dump -Fc in $(secs "$t0" "$t1") s   ($DUMP)"
echo "  files     $(du -h "$FILES" | cut -f1)  tar.gz of $files files in $(secs "$t1" "$t2") s"
echo "  restore   pg_restore -j 2 into '$RESTORE_DB' in $(secs "$t3" "$t4") s, files in $(secs "$t4" "$t5") s"
echo "  compared  $tables tables, $rows rows (student $(main student), wf_request $(main wf_request)," \
     "audit_event $(main audit_event), evidence $(main evidence)): $([ -s "$WORK/counts.diff" ] && echo DIFFERENT || echo all equal)"
echo "  evidence  $evidence_rows rows, $missing without their file"
echo "  result    $([ $status -eq 0 ] && echo OK || echo FAILED)"
[ "${KEEP:-0}" = 1 ] || dropdb --if-exists "$RESTORE_DB"
exit $status
