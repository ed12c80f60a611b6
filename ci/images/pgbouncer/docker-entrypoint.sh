#!/bin/bash
# Entrypoint of the locally built PgBouncer image: writes pgbouncer.ini and
# the user list from the environment, then runs PgBouncer as postgres.
#
#   DB_HOST, DB_PORT (5432)   the Postgres server every database goes to
#   DB_USER, DB_PASSWORD      the one user clients log in as (and PgBouncer
#                             logs in to the server as)
#   POOL_MODE                 session | transaction (default) | statement
#   AUTH_TYPE                 scram-sha-256 (default) | md5 | plain | trust
#   LISTEN_PORT               6432
#   MAX_CLIENT_CONN (500), DEFAULT_POOL_SIZE (20), MAX_DB_CONNECTIONS (0: no limit)
#   SERVER_IDLE_TIMEOUT (600): seconds an idle server connection is kept
#   IGNORE_STARTUP_PARAMETERS (empty): start-up parameters to accept and drop
set -Eeuo pipefail
: "${DB_HOST:?set DB_HOST to the Postgres server}"
: "${DB_USER:?set DB_USER}"
: "${DB_PASSWORD:?set DB_PASSWORD}"
conf=/etc/pgbouncer
mkdir -p "$conf" /var/run/postgresql
cat > "$conf/pgbouncer.ini" <<INI
[databases]
* = host=${DB_HOST} port=${DB_PORT:-5432}

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = ${LISTEN_PORT:-6432}
unix_socket_dir =
auth_type = ${AUTH_TYPE:-scram-sha-256}
auth_file = ${conf}/userlist.txt
pool_mode = ${POOL_MODE:-transaction}
max_client_conn = ${MAX_CLIENT_CONN:-500}
default_pool_size = ${DEFAULT_POOL_SIZE:-20}
max_db_connections = ${MAX_DB_CONNECTIONS:-0}
server_idle_timeout = ${SERVER_IDLE_TIMEOUT:-600}
ignore_startup_parameters = ${IGNORE_STARTUP_PARAMETERS:-}
admin_users = ${DB_USER}
logfile =
pidfile =
INI
printf '"%s" "%s"\n' "${DB_USER//\"/\"\"}" "${DB_PASSWORD//\"/\"\"}" > "$conf/userlist.txt"
chown -R postgres:postgres "$conf" /var/run/postgresql
chmod 600 "$conf/userlist.txt"
echo "pgbouncer: pool_mode=${POOL_MODE:-transaction}, server ${DB_HOST}:${DB_PORT:-5432}" >&2
exec setpriv --reuid=postgres --regid=postgres --init-groups pgbouncer "$conf/pgbouncer.ini"
