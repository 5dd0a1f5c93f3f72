# Sourced by tests/run.sh: starts a private PostgreSQL server for the tests
# and exports WEFT_TEST_POSTGRES, the URL tests build their databases under
# (each test creates its own database on it). Installs Debian's postgresql
# package when no server binaries are found. The server listens on
# 127.0.0.1 only, keeps its data in a fresh temporary folder, and is
# stopped (and its folder removed) by stop_postgres.

pg_port="${WEFT_TEST_PG_PORT:-54329}"

pg_bin=""
for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/pg_ctl" ] && pg_bin="$dir"
done
if [ -z "$pg_bin" ]; then
    echo "installing PostgreSQL (Debian's postgresql package)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/pg_ctl" ] && pg_bin="$dir"
    done
fi
if [ -z "$pg_bin" ]; then
    echo "no PostgreSQL server binaries found after installing postgresql" >&2
    return 1
fi

# PostgreSQL refuses to run as root: run it as the postgres user (created by
# the package) when we are root, as ourselves otherwise.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home postgres
fi
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_data="$(mktemp -d /tmp/weft-pg.XXXXXX)"
[ "$(id -u)" -eq 0 ] && chown postgres: "$pg_data"
as_pg "$pg_bin/initdb" -D "$pg_data" -U postgres --auth=trust --no-sync -E UTF8 >/dev/null
as_pg "$pg_bin/pg_ctl" start -D "$pg_data" -w -l "$pg_data/server.log" \
    -o "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories=$pg_data -c fsync=off -c max_connections=400" >/dev/null

stop_postgres() {
    as_pg "$pg_bin/pg_ctl" stop -D "$pg_data" -m fast >/dev/null 2>&1 || true
    rm -rf "$pg_data"
}

export WEFT_TEST_POSTGRES="postgres://postgres@127.0.0.1:$pg_port"
echo "PostgreSQL for the tests: $WEFT_TEST_POSTGRES" >&2
