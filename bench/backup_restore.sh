#!/usr/bin/env bash
# Backup and restore check of a Xueji installation on PostgreSQL (docs/DEPLOY.md, "Backups and restore").
#
#   bench/backup_restore.sh [SOURCE_DB] [UPLOAD_FOLDER]
#
# 1. backup:  pg_dump -Fc of SOURCE_DB (default `load`) taken from an exported snapshot, then a tar.gz of every
#             stored file (evidence, kept imports, exports; default instance/load/uploads, the folder `make load`
#             serves) listed with its SHA-256 after the dump, so every evidence row in the dump has its file;
# 2. restore: into the scratch database RESTORE_DB (default `restore_check`, dropped and created), files into a
#             scratch folder;
# 3. verify:  by content: every table's row count and a checksum of all its rows (md5 of each row's text, summed
#             in a fixed order), taken in the dump's own snapshot, against the restored database; every restored
#             file's SHA-256 against the list taken at backup; every evidence row against its file's SHA-256.
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
# every table of the public schema, one "table|rows|checksum" line each: the checksum is the md5 of the rows' own
# md5s in sorted order, so it depends on every value of every row but not on the physical order of the rows
COUNTS_SQL="SELECT table_name || '|' || (xpath('/row/c/text()', query_to_xml(format(
  'SELECT count(*)::text || ''|'' || coalesce(md5(string_agg(md5(t::text), '''' ORDER BY md5(t::text))), ''-'') AS c
   FROM %I.%I t', table_schema, table_name), false, true, '')))[1]::text FROM information_schema.tables
  WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name;"
manifest() { (cd "$1" && find . -type f ! -name '*.part' -print0 | sort -z | xargs -0 -r sha256sum); }

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
manifest "$UPLOADS" > "$BACKUP_DIR/files.sha256"
# exactly the files listed (a file written meanwhile belongs to the next backup)
awk '{ sub(/^[0-9a-f]+  /, ""); print }' "$BACKUP_DIR/files.sha256" > "$WORK/files.list"
tar -czf "$FILES" -C "$UPLOADS" -T "$WORK/files.list"
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
  echo "TABLE CONTENTS DIFFER (table|rows|checksum):"; cat "$WORK/counts.diff"; status=1
fi
manifest "$WORK/uploads" > "$WORK/restored.sha256"
if ! diff -u "$BACKUP_DIR/files.sha256" "$WORK/restored.sha256" > "$WORK/files.diff"; then
  echo "FILES DIFFER:"; head -20 "$WORK/files.diff"; status=1
fi
psql -XAtq -F ' ' -d "$RESTORE_DB" -c "SELECT sha256, stored_name FROM evidence ORDER BY 2" > "$WORK/evidence.rows"
evidence_rows=$(wc -l < "$WORK/evidence.rows")
missing=0
while read -r sum name; do
  file="$WORK/uploads/evidence/$name"
  if [ ! -f "$file" ] || [ "$(sha256sum "$file" | cut -d' ' -f1)" != "$sum" ]; then
    missing=$((missing + 1)); [ $missing -le 5 ] && echo "evidence file missing or changed: $name"
  fi
done < "$WORK/evidence.rows"
[ "$missing" -eq 0 ] || status=1
files=$(wc -l < "$BACKUP_DIR/files.sha256")

main() { grep -E "^$1\|" "$WORK/source.counts" | cut -d'|' -f2; }
echo
echo "backup/restore check of '$SRC_DB' ($(date '+%Y-%m-%d %H:%M'))"
echo "  dump      $(du -h "$DUMP" | cut -f1)  pg_dump -Fc in $(secs "$t0" "$t1") s   ($DUMP)"
echo "  files     $(du -h "$FILES" | cut -f1)  tar.gz of $files files in $(secs "$t1" "$t2") s"
echo "  restore   pg_restore -j 2 into '$RESTORE_DB' in $(secs "$t3" "$t4") s, files in $(secs "$t4" "$t5") s"
echo "  compared  $tables tables, $rows rows (student $(main student), wf_request $(main wf_request)," \
     "audit_event $(main audit_event), evidence $(main evidence)) by count and row checksum:" \
     "$([ -s "$WORK/counts.diff" ] && echo DIFFERENT || echo all equal)"
echo "  files     $files by SHA-256: $([ -s "$WORK/files.diff" ] && echo DIFFERENT || echo all equal)"
echo "  evidence  $evidence_rows rows, $missing without their file or with another content"
echo "  result    $([ $status -eq 0 ] && echo OK || echo FAILED)"
[ "${KEEP:-0}" = 1 ] || dropdb --if-exists "$RESTORE_DB"
exit $status
