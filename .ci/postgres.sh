# Sourced by .ci/run: a throw-away PostgreSQL server for the worker-death tests.
#
# pg_start installs PostgreSQL from the Debian packages when its server binaries are missing (CI runs
# as root), starts a cluster in a temporary directory that listens on a Unix socket only, and exports
# GATES_SAMPLER_TEST_POSTGRES_URL. When any step fails it exports GATES_SAMPLER_TEST_POSTGRES_SKIP_REASON
# instead and returns 0: the PostgreSQL test then skips with that reason, the other tests still run.
# pg_stop stops the server and removes the directory; .ci/run calls it from an EXIT trap.

PG_TMP=""
PG_BIN=""
PG_AS=()

_pg_skip() {
    export GATES_SAMPLER_TEST_POSTGRES_SKIP_REASON="$1"
    echo "PostgreSQL tests will skip: $1" >&2
    return 0
}

_pg_find_bin() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then PG_BIN="$d"; return 0; fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        PG_BIN="$(dirname "$(command -v pg_ctl)")"
        return 0
    fi
    return 1
}

pg_start() {
    if ! _pg_find_bin; then
        if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
            _pg_skip "PostgreSQL is not installed and cannot be installed here (needs root and apt-get)"
            return 0
        fi
        echo "installing PostgreSQL from the Debian packages" >&2
        if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; } >/tmp/gates-ci-apt.log 2>&1; then
            _pg_skip "apt-get install postgresql failed (see /tmp/gates-ci-apt.log)"
            return 0
        fi
        _pg_find_bin || { _pg_skip "postgresql was installed but initdb/pg_ctl were not found"; return 0; }
    fi
    PG_TMP="$(mktemp -d /tmp/gates-pg.XXXXXX)"
    local user
    user="$(id -un)"
    if [ "$(id -u)" = 0 ]; then
        # the server refuses to run as root: run it as the postgres account the package creates
        if ! id postgres >/dev/null 2>&1; then
            _pg_skip "running as root and there is no postgres account to run the server as"
            return 0
        fi
        user=postgres
        chown postgres "$PG_TMP" || { _pg_skip "could not hand $PG_TMP to the postgres account"; return 0; }
        PG_AS=(runuser -u postgres --)
    fi
    if ! "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_TMP/data" -U "$user" -A trust --no-sync >"$PG_TMP/initdb.log" 2>&1; then
        _pg_skip "initdb failed: $(tail -n 1 "$PG_TMP/initdb.log")"
        return 0
    fi
    if ! "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
        -o "-c listen_addresses='' -k $PG_TMP -c fsync=off" start >/dev/null 2>&1; then
        _pg_skip "the server did not start: $(tail -n 1 "$PG_TMP/server.log" 2>/dev/null)"
        return 0
    fi
    export GATES_SAMPLER_TEST_POSTGRES_URL="postgresql+psycopg2://$user@/postgres?host=$PG_TMP"
    unset GATES_SAMPLER_TEST_POSTGRES_SKIP_REASON
    echo "PostgreSQL running for the tests: $GATES_SAMPLER_TEST_POSTGRES_URL" >&2
}

pg_stop() {
    if [ -n "$PG_TMP" ] && [ -d "$PG_TMP/data" ]; then
        "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    if [ -n "$PG_TMP" ]; then rm -rf "$PG_TMP"; fi
    PG_TMP=""
}
