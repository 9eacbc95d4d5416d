# Xueji: `make run` serves the panel with demo data, `make test` runs the suite.
PY ?= python3.11
ifeq (, $(shell command -v $(PY) 2>/dev/null))
PY := python3
endif
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080
HOST ?= 127.0.0.1
STAMP := $(VENV)/.installed

.PHONY: install run init test clean-db help translations bench load

help:
	@echo "make run    create .venv, migrate instance/xueji.db (or DATABASE_URL), load demo data once, serve :$(PORT)"
	@echo "make test   run the test suite (SQLite; also PostgreSQL/MariaDB when TEST_POSTGRES_URL/TEST_MARIADB_URL are set)"

$(STAMP): requirements.txt
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

init: install
	$(BIN)/flask --app run xueji init --demo-if-empty

# With XUEJI_QUEUE_URL set (e.g. redis://127.0.0.1:6379/1), one `xueji worker` runs the background jobs (Excel
# exports) beside the web server and is stopped with it (docs/DEPLOY.md, "Background jobs: the queue").
run: init
ifneq ($(strip $(XUEJI_QUEUE_URL)),)
	$(BIN)/flask --app run xueji worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT INT TERM; \
	$(BIN)/flask --app run run --host $(HOST) --port $(PORT) --with-threads
else
	$(BIN)/flask --app run run --host $(HOST) --port $(PORT) --with-threads
endif

# one pytest-xdist worker per core, a test file per worker at a time (its module fixtures built once); each worker
# has its own SQLite file and its own PostgreSQL/MariaDB database (tests/conftest.py)
PYTEST_ARGS ?= -n auto --dist loadfile
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean-db:
	rm -f instance/xueji.db

# UI strings are Chinese msgids; app/translations/en holds the English catalog (commit .po and .mo).
translations: install
	$(BIN)/pybabel extract -F babel.cfg -k _l -k _ -o app/translations/messages.pot .
	$(BIN)/pybabel update -i app/translations/messages.pot -d app/translations -l en --no-fuzzy-matching
	$(BIN)/pybabel compile -d app/translations

# Benchmarks (not part of `make test`): BENCH_DATABASE_URL picks the database (default: a scratch SQLite file).
# The list and statistics benchmarks run on a generated province (bench/generate.py), made once and reused:
# BENCH_STUDENTS students, 1,000,000 on BENCH_DATABASE_URL (PostgreSQL) and 200,000 on the default SQLite file. The
# scratch benchmarks (import, roster, promotion, export) empty their database first, so `make bench` generates the
# province again after them.
# Setting BENCH_STUDENTS on the command line runs the province set only — generate (or reuse) the province, the
# lists (county, big county, province bureau), the statistics pages with the snapshot refresh, and the 100,000-row
# export read from the province — and leaves that database's province in place for the next run:
#   make bench BENCH_STUDENTS=5000000 BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench5m
# (a database of its own: generating 5,000,000 takes about 3 minutes on 2 cores, the benchmarks about 10 more); it
# writes the "-5m" sections of docs/PERFORMANCE.md beside the 1,000,000 ones. BENCH_SET=all|province overrides.
BENCH_STUDENTS ?= $(if $(BENCH_DATABASE_URL),1000000,200000)
BENCH_SET ?= $(if $(filter command line,$(origin BENCH_STUDENTS)),province,all)
BENCH_DB_ARG = $(if $(BENCH_DATABASE_URL),--database-url $(BENCH_DATABASE_URL),)
bench: install
ifeq ($(BENCH_SET),all)
	$(BIN)/python bench/bench_import.py --rows 20000 --repeat 5 $(BENCH_DB_ARG)
	$(BIN)/python bench/bench_roster.py --rows 20000 --repeat 5 $(BENCH_DB_ARG)
	$(BIN)/python bench/bench_promotion.py --students 200000 --repeat 5 $(BENCH_DB_ARG)
	$(BIN)/python bench/bench_export.py --rows 100000 --repeat 3 $(BENCH_DB_ARG)
endif
	$(BIN)/python bench/generate.py --students $(BENCH_STUDENTS) --reuse $(BENCH_DB_ARG)
	$(BIN)/python bench/bench_list.py --students $(BENCH_STUDENTS) $(BENCH_DB_ARG)
	$(BIN)/python bench/bench_statistics.py --students $(BENCH_STUDENTS) $(BENCH_DB_ARG)
ifeq ($(BENCH_SET),province)
	$(BIN)/python bench/bench_export.py --province $(BENCH_STUDENTS) --repeat 3 $(BENCH_DB_ARG)
endif

# Load run (not part of `make test`), bounded to 60 s, on 127.0.0.1; creates the PostgreSQL database `load` if
# missing. LOAD_PROFILE=single (default): 50 users against one gunicorn + PostgreSQL + Redis (docs/PERFORMANCE.md,
# section "load"). LOAD_PROFILE=cluster (or LOAD_ARGS="--profile cluster"): 100 users spread over two gunicorn
# servers (one worker each) with the streaming replica on :5433 (started by bench/replica.sh if it is not running,
# and stopped after; needs root), the RQ queue on Redis database 3 with one `xueji worker`, and files in the
# database (section "load-cluster"; docs/DEPLOY.md). LOAD_ARGS passes options to bench/load.py.
LOAD_PROFILE ?= single
LOAD_STAMP := $(VENV)/.installed-load
$(LOAD_STAMP): $(STAMP) bench/requirements-load.txt
	$(BIN)/python -m pip install -q -r bench/requirements-load.txt
	touch $(LOAD_STAMP)

load: install $(LOAD_STAMP)
	$(BIN)/python bench/load.py --profile $(LOAD_PROFILE) $(LOAD_ARGS)
