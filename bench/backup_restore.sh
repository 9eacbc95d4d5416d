#!/usr/bin/env bash
# Backup and restore check of a Xueji installation on PostgreSQL (docs/DEPLOY.md, "Backups and restore").
#
#   bench/backup_restore.sh [SOURCE_DB] [UPLOAD_FOLDER]
#
# The stored files (evidence, photos, kept imports, exports: app/filestore.py) live where XUEJI_FILE_STORE says:
# `database` (in SOURCE_DB itself: the dump covers them) or `local` (default: folders under UPLOAD_FOLDER, default
# instance/load/uploads, the folder `make load` serves; they must be backed up beside the dump).
#
# 0. probe:   a file of random bytes is written through the app's own store (app.filestore.put, area "imports"),
#             so the check proves that a file the app wrote comes back, whichever store is configured;
# 1. backup:  pg_dump -Fc of SOURCE_DB (default `load`) taken from an exported snapshot; the list of stored files
#             with their SHA-256 (database: computed in that same snapshot; local: read from the folder after the
#             dump, so every evidence row in the dump has its file) and, local only, a tar.gz of exactly those files;
# 2. restore: into the scratch database RESTORE_DB (default `restore_check`, dropped and created); local: the files
#             into a scratch folder;
# 3. verify:  by content: every table's row count and a checksum of all its rows (md5 of each row's text, summed
#             in a fixed order), taken in the dump's own snapshot, against the restored database; every restored
#             file's SHA-256 against the list taken at backup; every evidence row against its file's SHA-256; the
#             probe read back through the app's store from the restored copy, byte for byte. The probe is then
#             deleted from the source.
# Exit status 0 when everything matches. Environment: XUEJI_FILE_STORE (local), PGHOST (127.0.0.1), PGPORT (5432),
# PGUSER (postgres), PGPASSWORD, RESTORE_DB, BACKUP_DIR (default instance/load/backups/<time>), KEEP=1 keeps the
# restored database.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC_DB="${1:-load}"
UPLOADS="${2:-$ROOT/instance/load/uploads}"
RESTORE_DB="${RESTORE_DB:-restore_check}"
STORE="${XUEJI_FILE_STORE:-local}"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
export PGOPTIONS="${PGOPTIONS:--c client_min_messages=warning}"
STAMP="$(date +%Y%m%d-%H%M%S)"
BACKUP_DIR="${BACKUP_DIR:-$ROOT/instance/load/backups/$STAMP}"

case "$RESTORE_DB" in
  "$SRC_DB"|test|bench|load|postgres|template0|template1)
    echo "refusing to restore into '$RESTORE_DB': use a scratch database" >&2; exit 2;;
esac
case "$STORE" in
  local) [ -d "$UPLOADS" ] || { echo "upload folder $UPLOADS not found" >&2; exit 2; };;
  database) ;;
  *) echo "XUEJI_FILE_STORE=$STORE: this check knows local and database" >&2; exit 2;;
esac
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
# the database store's files in the same "sha256  ./area/name" form as sha256sum (area "files" is the folder's root)
STORED_SQL="SELECT encode(sha256(coalesce(string_agg(c.data, ''::bytea ORDER BY c.seq), ''::bytea)), 'hex')
  || '  ./' || CASE f.area WHEN 'files' THEN '' ELSE f.area || '/' END || f.name
  FROM stored_file f LEFT JOIN stored_file_chunk c ON c.file_id = f.id GROUP BY f.id, f.area, f.name
  ORDER BY f.area COLLATE \"C\", f.name COLLATE \"C\";"
stored_list() { if [ "$STORE" = database ]; then echo "$STORED_SQL"; else echo "SELECT 1 WHERE false;"; fi; }
# the app's own store, on a database (and upload folder) of our choice: `probe put|get|delete DB FOLDER NAME`
probe() {
  (cd "$ROOT" && XUEJI_FILE_STORE="$STORE" "$ROOT/.venv/bin/python" - "$@" <<'PY'
import hashlib, os, sys
from app import create_app, filestore
from app.extensions import db
action, database, folder, name = sys.argv[1:5]
url = f"postgresql+psycopg://{os.environ['PGUSER']}@{os.environ['PGHOST']}:{os.environ['PGPORT']}/{database}"
app = create_app({"SQLALCHEMY_DATABASE_URI": url, "UPLOAD_FOLDER": folder,
                  "XUEJI_FILE_STORE": os.environ["XUEJI_FILE_STORE"]})
with app.app_context():
    if action == "put":
        filestore.put(db.session, "imports", name, os.urandom(3 * 1024 * 1024 + 17))    # more than one chunk
    elif action == "delete":
        filestore.delete(db.session, "imports", name)
    else:
        digest = hashlib.sha256()
        for chunk in filestore.stream("imports", name):
            digest.update(chunk)
        print(digest.hexdigest())
    db.session.commit()
    db.session.remove()
    if action == "put":
        print(hashlib.sha256(filestore.get("imports", name)).hexdigest())
PY
  )
}

# --- 0. probe ---------------------------------------------------------------------------------------------
PROBE="backup-check-$STAMP.bin"
PROBE_SUM=$(probe put "$SRC_DB" "$UPLOADS" "$PROBE" | tail -1)
trap 'probe delete "$SRC_DB" "$UPLOADS" "$PROBE" >/dev/null 2>&1 || true; rm -rf "$WORK";
      [ -n "${SNAP_PID:-}" ] && kill "$SNAP_PID" 2>/dev/null || true' EXIT

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
echo "$(stored_list) SELECT '__end__';" >&"${SNAP[1]}"           # database store: the file list, same snapshot
: > "$BACKUP_DIR/files.sha256"
while read -r -u "${SNAP[0]}" line && [ "$line" != "__end__" ]; do echo "$line" >> "$BACKUP_DIR/files.sha256"; done

t0=$(now)
pg_dump -Fc --snapshot="$SNAPSHOT" -d "$SRC_DB" -f "$DUMP"
t1=$(now)
printf 'COMMIT;\n\\q\n' >&"${SNAP[1]}"; wait "$SNAP_PID" 2>/dev/null || true; SNAP_PID=
if [ "$STORE" = local ]; then        # the folder is not in the dump: tar exactly the files listed beside it
  manifest "$UPLOADS" > "$BACKUP_DIR/files.sha256"
  # exactly the files listed (a file written meanwhile belongs to the next backup)
  awk '{ sub(/^[0-9a-f]+  /, ""); print }' "$BACKUP_DIR/files.sha256" > "$WORK/files.list"
  tar -czf "$FILES" -C "$UPLOADS" -T "$WORK/files.list"
fi
t2=$(now)

# --- 2. restore -------------------------------------------------------------------------------------------
dropdb --if-exists "$RESTORE_DB"
createdb "$RESTORE_DB"
t3=$(now)
pg_restore --no-owner --exit-on-error -j 2 -d "$RESTORE_DB" "$DUMP"
t4=$(now)
mkdir -p "$WORK/uploads"
[ "$STORE" = local ] && tar -xzf "$FILES" -C "$WORK/uploads"
t5=$(now)

# --- 3. verify --------------------------------------------------------------------------------------------
psql -XAtq -d "$RESTORE_DB" -c "$COUNTS_SQL" > "$WORK/restored.counts"
status=0
tables=$(wc -l < "$WORK/source.counts")
rows=$(awk -F'|' '{ s += $2 } END { print s + 0 }' "$WORK/source.counts")
if ! diff -u "$WORK/source.counts" "$WORK/restored.counts" > "$WORK/counts.diff"; then
  echo "TABLE CONTENTS DIFFER (table|rows|checksum):"; cat "$WORK/counts.diff"; status=1
fi
if [ "$STORE" = local ]; then manifest "$WORK/uploads" > "$WORK/restored.sha256"
else psql -XAtq -d "$RESTORE_DB" -c "$STORED_SQL" > "$WORK/restored.sha256"; fi
if ! diff -u "$BACKUP_DIR/files.sha256" "$WORK/restored.sha256" > "$WORK/files.diff"; then
  echo "FILES DIFFER:"; head -20 "$WORK/files.diff"; status=1
fi
psql -XAtq -F ' ' -d "$RESTORE_DB" -c "SELECT sha256, stored_name FROM evidence ORDER BY 2" > "$WORK/evidence.rows"
evidence_rows=$(wc -l < "$WORK/evidence.rows")
# every evidence row against the restored copy's hash of its file (from the restored folder or database)
missing=$(awk 'NR == FNR { if ($2 ~ /^\.\/evidence\//) have[substr($2, 12)] = $1; next }
               have[$2] != $1 { n++; if (n <= 5) print "evidence file missing or changed: " $2 > "/dev/stderr" }
               END { print n + 0 }' "$WORK/restored.sha256" "$WORK/evidence.rows")
[ "$missing" -eq 0 ] || status=1
# the probe, read back through the app's store from the restored copy
PROBE_BACK=$(probe get "$RESTORE_DB" "$WORK/uploads" "$PROBE" 2>/dev/null | tail -1 || true)
[ -n "$PROBE_SUM" ] && [ "$PROBE_BACK" = "$PROBE_SUM" ] || { echo "PROBE FILE DIFFERS: $PROBE_SUM / $PROBE_BACK"; status=1; }
files=$(wc -l < "$BACKUP_DIR/files.sha256")

main() { grep -E "^$1\|" "$WORK/source.counts" | cut -d'|' -f2; }
echo
echo "backup/restore check of '$SRC_DB' ($(date '+%Y-%m-%d %H:%M'))"
echo "  dump      $(du -h "$DUMP" | cut -f1)  pg_dump -Fc in $(secs "$t0" "$t1") s   ($DUMP)"
if [ "$STORE" = local ]; then
  echo "  files     $(du -h "$FILES" | cut -f1)  tar.gz of $files files in $(secs "$t1" "$t2") s (XUEJI_FILE_STORE=local)"
else
  echo "  files     $files in the database (XUEJI_FILE_STORE=database): in the dump, listed in its snapshot"
fi
echo "  restore   pg_restore -j 2 into '$RESTORE_DB' in $(secs "$t3" "$t4") s, files in $(secs "$t4" "$t5") s"
echo "  compared  $tables tables, $rows rows (student $(main student), wf_request $(main wf_request)," \
     "audit_event $(main audit_event), evidence $(main evidence)) by count and row checksum:" \
     "$([ -s "$WORK/counts.diff" ] && echo DIFFERENT || echo all equal)"
echo "  files     $files by SHA-256: $([ -s "$WORK/files.diff" ] && echo DIFFERENT || echo all equal)"
echo "  evidence  $evidence_rows rows, $missing without their file or with another content"
echo "  probe     $PROBE written through the app's store, read back from the restored copy:" \
     "$([ "$PROBE_BACK" = "$PROBE_SUM" ] && echo "same SHA-256" || echo DIFFERENT)"
echo "  result    $([ $status -eq 0 ] && echo OK || echo FAILED)"
[ "${KEEP:-0}" = 1 ] || dropdb --if-exists "$RESTORE_DB"
exit $status
