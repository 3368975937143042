#!/usr/bin/env bash
# The PostgreSQL server the test suite expects (tests/conftest.py's PG_BASE):
# postgresql+psycopg://postgres@127.0.0.1:5432/test, trust auth for user
# postgres from 127.0.0.1 only. Run by `make test` every time (a CI machine
# boots with no server running); idempotent: a server already answering there
# means nothing to do.
#
# As root with apt-get: installs Debian's `postgresql` when missing (one
# apt-get update, then install), creates a cluster on port 5432 when none uses
# it (Debian's postgresql-common: pg_createcluster), listens on 127.0.0.1 only,
# trusts postgres@127.0.0.1, starts it (pg_ctlcluster) and creates the `test`
# database. Without root the PostgreSQL tests skip with a visible reason.
# Never fails `make test` by itself: problems are printed, the tests then skip.
set -u
PORT=5432
DB=test
say() { echo "start-postgres: $*" >&2; }

answers() { # the server answers as the tests connect to it (database $1)
  command -v psql >/dev/null 2>&1 &&
    PGCONNECT_TIMEOUT=3 psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d "$1" -tAc 'select 1' >/dev/null 2>&1
}

answers "$DB" && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  say "no PostgreSQL at 127.0.0.1:$PORT/$DB and cannot start one (need root and apt-get); PostgreSQL tests will skip"
  exit 0
fi

if ! command -v pg_createcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  say "installing Debian's postgresql"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }; then
    say "apt-get install postgresql failed; PostgreSQL tests will skip"
    exit 0
  fi
fi

# The cluster on our port, else a new one of the newest installed version.
read -r VER NAME STATUS < <(pg_lsclusters -h | awk -v p="$PORT" '$3 == p {print $1, $2, $4; exit}')
if [ -z "${VER:-}" ]; then
  VER=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  NAME=main
  [ -d "/etc/postgresql/$VER/$NAME" ] && NAME=phrx
  say "creating cluster $VER/$NAME on port $PORT"
  if ! pg_createcluster --port "$PORT" "$VER" "$NAME" >/dev/null; then
    say "pg_createcluster $VER $NAME failed; PostgreSQL tests will skip"
    exit 0
  fi
  STATUS=down
fi

CONF=/etc/postgresql/$VER/$NAME
changed=0
# Loopback only; conf.d is read after postgresql.conf, so this wins.
if [ ! -f "$CONF/conf.d/phrx-test.conf" ]; then
  mkdir -p "$CONF/conf.d"
  echo "listen_addresses = '127.0.0.1'  # phrx: tools/start-postgres.sh" >"$CONF/conf.d/phrx-test.conf"
  changed=1
fi
# pg_hba.conf takes the first matching line: ours goes first.
TRUST="host    all             postgres        127.0.0.1/32            trust  # phrx: tools/start-postgres.sh"
if ! grep -qF "$TRUST" "$CONF/pg_hba.conf"; then
  { echo "$TRUST"; cat "$CONF/pg_hba.conf"; } >"$CONF/pg_hba.conf.phrx" &&
    cat "$CONF/pg_hba.conf.phrx" >"$CONF/pg_hba.conf" && rm -f "$CONF/pg_hba.conf.phrx"
  changed=1
fi

if [ "${STATUS:-down}" = online ]; then
  # listen_addresses needs a restart; pg_hba.conf a reload.
  [ "$changed" = 1 ] && pg_ctlcluster "$VER" "$NAME" restart
else
  say "starting cluster $VER/$NAME on 127.0.0.1:$PORT"
  pg_ctlcluster "$VER" "$NAME" start || { say "pg_ctlcluster $VER $NAME start failed; PostgreSQL tests will skip"; exit 0; }
fi

for _ in $(seq 50); do answers postgres && break; sleep 0.1; done
if ! answers "$DB"; then
  PGCONNECT_TIMEOUT=3 psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c "CREATE DATABASE $DB" >/dev/null ||
    say "could not create database $DB; PostgreSQL tests will skip"
fi
answers "$DB" && say "PostgreSQL $VER/$NAME ready at 127.0.0.1:$PORT/$DB"
exit 0
