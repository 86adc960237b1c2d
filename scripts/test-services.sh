#!/usr/bin/env bash
# Installs and starts what the test suite needs beyond Python: Debian's Chromium (browser
# tests) and a local PostgreSQL (the service tests run on SQLite and on PostgreSQL).
# Needs root for apt-get (CI runs as root); without it, those tests are skipped with a reason.
# Prints the PostgreSQL URL for the tests on stdout (empty when none could be started).
set -u
log() { echo "test-services: $*" >&2; }
as_root() { [ "$(id -u)" = 0 ]; }

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  if as_root; then
    log "installing ${need[*]} (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq "${need[@]}" >&2 || log "apt-get failed"
  else
    log "not root: cannot install ${need[*]}; those tests will be skipped"
  fi
fi

if command -v pg_ctlcluster >/dev/null 2>&1 && as_root; then
  cluster=$(pg_lsclusters -h 2>/dev/null | head -n1)
  if [ -n "$cluster" ]; then
    ver=$(echo "$cluster" | awk '{print $1}'); name=$(echo "$cluster" | awk '{print $2}')
    port=$(echo "$cluster" | awk '{print $3}')
    pg_ctlcluster "$ver" "$name" start >&2 2>/dev/null || true
    for _ in $(seq 1 30); do
      su postgres -c "psql -p $port -tAc 'select 1'" >/dev/null 2>&1 && break; sleep 1
    done
    su postgres -c "psql -p $port -v ON_ERROR_STOP=1 -q" >&2 <<SQL || true
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'chokepoint') THEN
    CREATE ROLE chokepoint LOGIN PASSWORD 'chokepoint' CREATEDB;
  END IF;
END \$\$;
SQL
    echo "postgresql+psycopg://chokepoint:chokepoint@127.0.0.1:$port/postgres"
  fi
fi
