#!/bin/bash
# PostgreSQL servers for the tests. Each is a cluster of the test's own,
# made by initdb in the test's directory from the Debian packages: it runs
# as the postgres user (PostgreSQL refuses to run as root), answers on a
# unix socket in its own directory only (no TCP), with trust for local
# connections, and has a database named slipway. Never the system cluster,
# never port 5432.
#
# A shell suite sources this file after tests/lib.sh:
#
#   pg_start [NAME]   makes the cluster $T_DIR/NAME (default pg) the first
#                     time, starts it, and exports PGURL, its libpq URL:
#                     postgresql:///slipway?host=<socket dir>&port=N&user=postgres
#                     The suite's end stops it, however the suite ends.
#   pg_stop [NAME]    stops it (fast shutdown) and waits until none of its
#                     processes is left; pg_start starts it again.
#
# The C unit tests run it as a program (tests/unit/pgserver.c):
#
#   tests/pg.sh start DIR [UPTO]  the same for the cluster in DIR; prints the
#                                 URL and writes it to DIR/url. Directories from DIR's parent up to
#                                 UPTO are opened to the postgres user (o+x).
#   tests/pg.sh stop DIR
#
# A cluster's directory: data/ (the cluster), run/ (its socket), url,
# initdb.log and server.log. The server carries the marks of the suite (its
# environment) and its command line points into the directory, so the
# clean-up of tests/lib.sh and tests/leftovers.sh both know it.

# pg_bindir: the directory of PostgreSQL's server programs.
pg_bindir() {
        local d
        d=$(pg_config --bindir 2>/dev/null)
        if [ ! -x "$d/initdb" ]; then
                d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
        fi
        if [ ! -x "$d/initdb" ] || [ ! -x "$d/pg_ctl" ]; then
                echo "pg: no PostgreSQL server programs (initdb, pg_ctl); make deps installs them" >&2
                return 1
        fi
        echo "$d"
}

# pg_as CMD...: runs CMD as the postgres user when we are root, as
# ourselves otherwise. The environment passes through: the server keeps the
# suite's marks.
pg_as() {
        # From /: the postgres user may not enter our working directory.
        if [ "$(id -u)" = 0 ]; then
                (cd / && runuser -u postgres -- "$@")
        else
                "$@"
        fi
}

# pg_free_port: a TCP port nobody listens on, away from 5432. The server
# listens on no TCP port: the number only names its socket; a free one
# lets a test open loopback TCP later without a clash.
pg_free_port() {
        local used=" " f addr state p i
        for f in /proc/net/tcp /proc/net/tcp6; do
                [ -r "$f" ] || continue
                while read -r _ addr _ state _; do
                        [ "$state" = 0A ] && used+="$((16#${addr##*:})) "
                done < <(tail -n +2 "$f")
        done
        for ((i = 0; i < 100; i++)); do
                p=$((20000 + RANDOM % 30000))
                [[ $used == *" $p "* ]] || { echo "$p"; return 0; }
        done
        echo "pg: no free port found" >&2
        return 1
}

# pg_urlencode STRING: STRING with every byte but [A-Za-z0-9/._~-]
# percent-encoded, for a URL's query.
pg_urlencode() {
        local LC_ALL=C s=$1 out="" c i
        for ((i = 0; i < ${#s}; i++)); do
                c=${s:i:1}
                case $c in
                [A-Za-z0-9/._~-]) out+=$c ;;
                *) printf -v c '%%%02X' "'$c"; out+=$c ;;
                esac
        done
        echo "$out"
}

# pg_open DIR UPTO: gives the postgres user search permission on DIR's
# parents from DIR's parent up to UPTO (the test's own directories, made
# 0700 by mktemp); UPTO must be DIR's ancestor, or empty.
pg_open() {
        local d=$1 upto=$2
        [ -n "$upto" ] || return 0
        upto=$(realpath "$upto") || return
        case $d in
        "$upto"/*) ;;
        *) echo "pg: '$d' is not below '$upto'" >&2; return 1 ;;
        esac
        while [ "$d" != "$upto" ]; do
                d=$(dirname "$d")
                chmod o+x "$d" || return
        done
}

# pg_postmaster DIR: the pid of the cluster's server when it runs.
pg_postmaster() {
        local pid
        { read -r pid <"$1/data/postmaster.pid"; } 2>/dev/null || return 1
        [[ $pid =~ ^[0-9]+$ ]] && t_alive "$pid" || return 1
        # A pid of an earlier boot may be someone else's now.
        grep -qaF "$1/data" /proc/"$pid"/cmdline 2>/dev/null || return 1
        echo "$pid"
}

# pg_url DIR [DB]: the libpq URL of the cluster in DIR (database slipway).
pg_url() {
        local port
        port=$(sed -n "s/^port = \([0-9]*\)$/\1/p" "$1/data/postgresql.conf" | tail -n 1)
        echo "postgresql:///${2:-slipway}?host=$(pg_urlencode "$1/run")&port=$port&user=postgres"
}

# How the tests' clusters are made. --no-sync: a test's cluster need not
# survive a power cut.
PG_INITDB_ARGS=(--no-sync --no-instructions -U postgres -A trust -E UTF8 --locale=C)

# pg_initdb BIN DIR: makes the cluster DIR/data. initdb takes most of a
# server's start, so the first cluster made with this PostgreSQL and these
# arguments is kept in build/pg-template/ and the next ones are copies of
# it (a copy takes a fifth of initdb's time). The copies share the system
# identifier of the template, as a standby shares its primary's.
pg_initdb() {
        local bin=$1 dir=$2 key tmpl tmp
        key=$({ "$bin/initdb" --version; echo "${PG_INITDB_ARGS[*]}"; } | md5sum | cut -c1-12)
        tmpl=$TOP/build/pg-template/$key
        if [ -f "$tmpl/PG_VERSION" ] && cp -a "$tmpl" "$dir/data" 2>/dev/null; then
                echo "pg: a copy of $tmpl" >"$dir/initdb.log"
                return 0
        fi
        rm -rf "$dir/data"
        if ! pg_as "$bin/initdb" -D "$dir/data" "${PG_INITDB_ARGS[@]}" >"$dir/initdb.log" 2>&1; then
                echo "pg: initdb failed in '$dir/data':" >&2
                tail -n 5 "$dir/initdb.log" >&2
                return 1
        fi
        # Copied by us, not the postgres user, who may not reach build/;
        # renamed into place, so a template is whole or absent.
        tmp=$tmpl.tmp.$$
        if mkdir -p "$TOP/build/pg-template" 2>/dev/null && cp -a "$dir/data" "$tmp" 2>/dev/null; then
                mv -T "$tmp" "$tmpl" 2>/dev/null
        fi
        rm -rf "$tmp"
        return 0
}

# pg_cluster_start DIR [UPTO]: makes the cluster in DIR unless it is there,
# starts it, prints its URL. On failure, prints the server's last words
# and leaves nothing running. DIR's parents up to UPTO are opened to the
# postgres user (pg_open).
pg_cluster_start() {
        local dir=$1 upto=${2:-} bin port fresh=0
        bin=$(pg_bindir) || return
        mkdir -p "$dir" && dir=$(realpath "$dir") || return
        # A unix socket's path has at most 107 bytes.
        if [ $((${#dir} + 20)) -gt 107 ]; then
                echo "pg: '$dir' is too long for a socket path" >&2
                return 1
        fi
        if pg_postmaster "$dir" >/dev/null; then
                echo "pg: the cluster in '$dir' runs already" >&2
                return 1
        fi
        # DIR/url is written once the cluster is whole: a first start that
        # failed half way starts again from nothing.
        if [ ! -f "$dir/url" ]; then
                pg_open "$dir" "$upto" || return
                [ "$(id -u)" = 0 ] && chown postgres: "$dir"
                if ! pg_as test -w "$dir"; then
                        echo "pg: the postgres user cannot write to '$dir' (its parents need o+x)" >&2
                        return 1
                fi
                rm -rf "$dir/data"
                pg_as mkdir -p "$dir/run" || return
                pg_initdb "$bin" "$dir" || return
                port=$(pg_free_port) || return
                pg_as tee -a "$dir/data/postgresql.conf" >/dev/null <<EOF || return

# A test's own server (tests/pg.sh): its socket only, no TCP.
listen_addresses = ''
unix_socket_directories = '$dir/run'
fsync = off
lc_messages = 'C'
port = $port
EOF
                printf '%s\n' "local all all trust" "local replication all trust" |
                        pg_as tee "$dir/data/pg_hba.conf" >/dev/null || return
                fresh=1
        fi
        if ! pg_as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -s start >/dev/null 2>&1; then
                echo "pg: the server in '$dir/data' did not start:" >&2
                tail -n 5 "$dir/server.log" >&2
                pg_cluster_stop "$dir"
                return 1
        fi
        port=$(sed -n "s/^port = \([0-9]*\)$/\1/p" "$dir/data/postgresql.conf" | tail -n 1)
        if [ $fresh = 1 ] && ! "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/run" -p "$port" -U postgres \
                -d postgres -c 'CREATE DATABASE slipway' >&2; then
                echo "pg: could not create database 'slipway' in '$dir/data'" >&2
                pg_cluster_stop "$dir"
                return 1
        fi
        pg_url "$dir" >"$dir/url" && cat "$dir/url"
}

# pg_cluster_stop DIR: stops the cluster's server (fast shutdown: clients
# are disconnected, what was committed stays) and waits until none of its
# processes is left; if it does not stop within 30 s, immediate shutdown,
# then SIGKILL. Nothing to do when it does not run.
pg_cluster_stop() {
        local dir=$1 bin pid kids p i
        dir=$(realpath "$dir" 2>/dev/null) || return 0
        pid=$(pg_postmaster "$dir") || return 0
        kids=$(ps -o pid= --ppid "$pid" 2>/dev/null)
        bin=$(pg_bindir) || return
        if ! pg_as "$bin/pg_ctl" -D "$dir/data" -w -t 30 -s -m fast stop >/dev/null 2>&1; then
                kill -QUIT "$pid" 2>/dev/null
                for ((i = 0; i < 50; i++)); do t_alive "$pid" || break; sleep 0.1; done
                # shellcheck disable=SC2086
                kill -KILL "$pid" $kids 2>/dev/null
        fi
        for p in $pid $kids; do
                for ((i = 0; i < 100; i++)); do t_alive "$p" || break; sleep 0.1; done
                if t_alive "$p"; then
                        echo "pg: process $p of '$dir' does not stop" >&2
                        return 1
                fi
        done
}

# pg_state_name DIR: the database that stands for state directory DIR in
# the suites run on PostgreSQL: one per directory, named for its path.
pg_state_name() {
        echo "state_$(realpath -m "$1" | md5sum | cut -c1-16)"
}

# pg_state_url DIR: the URL of DIR's database in the cluster of
# $SLIPWAY_TEST_PGURL (which may not exist yet).
pg_state_url() {
        local name
        name=$(pg_state_name "$1")
        echo "${SLIPWAY_TEST_PGURL/:\/\/\/slipway?/:\/\/\/$name?}"
}

# pg_state_db DIR: pg_state_url, with the database made when it is not
# there (a second server on the same directory finds it).
pg_state_db() {
        local name url out
        name=$(pg_state_name "$1")
        url=$(pg_state_url "$1")
        out=$(psql -X -q -A -t -d "$SLIPWAY_TEST_PGURL" -c "SELECT 1 FROM pg_database WHERE datname = '$name'" 2>&1) || {
                echo "pg: cannot reach the suite's cluster: $out" >&2
                return 1
        }
        if [ "$out" != 1 ] && ! out=$(psql -X -q -d "$SLIPWAY_TEST_PGURL" -c "CREATE DATABASE $name" 2>&1) &&
                [[ $out != *"already exists"* ]]; then
                echo "pg: cannot make database '$name': $out" >&2
                return 1
        fi
        echo "$url"
}

# pg_state_copy FROM TO: TO's database becomes a copy of FROM's (nobody
# connected to FROM's), as cp -a copies a sqlite state directory.
pg_state_copy() {
        local from to out i
        from=$(pg_state_name "$1")
        to=$(pg_state_name "$2")
        # The backends of a server just stopped may take a moment to go.
        for ((i = 0; i < 50; i++)); do
                out=$(psql -X -q -d "$SLIPWAY_TEST_PGURL" -c "DROP DATABASE IF EXISTS $to" \
                        -c "CREATE DATABASE $to TEMPLATE $from" 2>&1) && return 0
                [[ $out == *"is being accessed by other users"* ]] || break
                sleep 0.1
        done
        echo "pg: cannot copy database '$from' to '$to': $out" >&2
        return 1
}

# The suites' words: the cluster $T_DIR/NAME.
PG_CLUSTERS=" "
pg_start() {
        local name=${1:-pg} url
        if [[ ! $name =~ ^[A-Za-z0-9_-]+$ ]]; then
                echo "pg: bad cluster name '$name'" >&2
                return 1
        fi
        if [[ $PG_CLUSTERS != *" $name "* ]]; then
                PG_CLUSTERS+="$name "
                t_on_exit "pg_stop $name"
        fi
        url=$(pg_cluster_start "$T_DIR/$name" "$T_DIR") || return
        export PGURL=$url
}

pg_stop() {
        pg_cluster_stop "$T_DIR/${1:-pg}"
}

# Standbys and failover, for the suites that take a primary away. A
# standby is a cluster of the suite's own like the others, made from a
# running primary's:
#
#   pg_standby NAME PRIMARY  makes $T_DIR/NAME a streaming-replication
#                            standby of the running cluster $T_DIR/PRIMARY
#                            (pg_basebackup -R over a replication slot named
#                            after NAME, its own socket directory and port,
#                            cluster_name NAME: what the primary's
#                            synchronous_standby_names names), starts it and
#                            waits until it streams.
#   pg_sync PRIMARY NAME...  makes the primary wait, at each commit, until
#                            the first of the standbys NAME has flushed it:
#                            a commit acknowledged is on a standby.
#   pg_promote NAME          promotes the standby and waits until it takes
#                            writes.
#   pg_crash NAME            stops a cluster at once (immediate shutdown, as
#                            a crash: no checkpoint, clients cut off).
#   pg_multi_url NAME...     prints one libpq URL naming every cluster, in
#                            order, with target_session_attrs=read-write:
#                            libpq connects to the first that takes writes.
#   pg_sql NAME SQL          runs SQL on the cluster's database slipway and
#                            prints the answer (unaligned, no headers).

# pg_name_ok NAME: a cluster name the suites may use.
pg_name_ok() {
        [[ $1 =~ ^[A-Za-z0-9_-]+$ ]] && return 0
        echo "pg: bad cluster name '$1'" >&2
        return 1
}

# pg_port DIR: the port of the cluster in DIR.
pg_port() {
        sed -n "s/^port = \([0-9]*\)$/\1/p" "$1/data/postgresql.conf" | tail -n 1
}

pg_sql() {
        local url
        url=$(pg_url "$T_DIR/$1") || return
        psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$url" -c "$2"
}

pg_standby() {
        local name=$1 primary=$2 dir bin port slot i
        pg_name_ok "$name" && pg_name_ok "$primary" || return
        dir=$T_DIR/$name
        if ! pg_postmaster "$T_DIR/$primary" >/dev/null; then
                echo "pg: the primary '$primary' does not run" >&2
                return 1
        fi
        bin=$(pg_bindir) || return
        if [[ $PG_CLUSTERS != *" $name "* ]]; then
                PG_CLUSTERS+="$name "
                t_on_exit "pg_stop $name"
        fi
        slot=$(echo "$name" | tr 'A-Z-' 'a-z_')
        mkdir -p "$dir" || return
        pg_open "$dir" "$T_DIR" || return
        [ "$(id -u)" = 0 ] && chown postgres: "$dir"
        rm -rf "${dir:?}/data" "$dir/url"
        pg_as mkdir -p "$dir/run" || return
        if ! pg_as "$bin/pg_basebackup" -D "$dir/data" -R -X stream -C -S "$slot" -c fast \
                -h "$T_DIR/$primary/run" -p "$(pg_port "$T_DIR/$primary")" -U postgres >"$dir/basebackup.log" 2>&1; then
                echo "pg: pg_basebackup of '$primary' failed:" >&2
                tail -n 5 "$dir/basebackup.log" >&2
                return 1
        fi
        port=$(pg_free_port) || return
        printf '%s\n' "" "# A standby of $primary (tests/pg.sh): its own socket and port." \
                "unix_socket_directories = '$dir/run'" "port = $port" "cluster_name = '$name'" "hot_standby = on" |
                pg_as tee -a "$dir/data/postgresql.conf" >/dev/null || return
        if ! pg_as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -s start >/dev/null 2>&1; then
                echo "pg: the standby in '$dir/data' did not start:" >&2
                tail -n 5 "$dir/server.log" >&2
                pg_cluster_stop "$dir"
                return 1
        fi
        pg_url "$dir" >"$dir/url"
        for ((i = 0; i < 300; i++)); do
                [ "$(pg_sql "$primary" "SELECT count(*) FROM pg_stat_replication WHERE application_name = '$name' \
                        AND state = 'streaming'" 2>/dev/null)" = 1 ] && return 0
                sleep 0.1
        done
        echo "pg: the standby '$name' does not stream from '$primary'" >&2
        return 1
}

pg_sync() {
        local primary=$1 names n
        shift
        pg_name_ok "$primary" || return
        for n in "$@"; do pg_name_ok "$n" || return; done
        names=$(IFS=,; echo "$*")
        pg_sql "$primary" "ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 ($names)'" >/dev/null &&
                pg_sql "$primary" "ALTER SYSTEM SET synchronous_commit = 'on'" >/dev/null &&
                pg_sql "$primary" "SELECT pg_reload_conf()" >/dev/null || return
        # In force once the primary's walsenders see it.
        for ((n = 0; n < 100; n++)); do
                [ "$(pg_sql "$primary" "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")" = 1 ] &&
                        return 0
                sleep 0.1
        done
        echo "pg: no synchronous standby of '$primary' among $names" >&2
        return 1
}

pg_promote() {
        local bin
        pg_name_ok "$1" || return
        bin=$(pg_bindir) || return
        if ! pg_as "$bin/pg_ctl" -D "$T_DIR/$1/data" -w -t 60 -s promote >/dev/null 2>&1; then
                echo "pg: could not promote '$1':" >&2
                tail -n 5 "$T_DIR/$1/server.log" >&2
                return 1
        fi
}

pg_crash() {
        local dir bin
        pg_name_ok "$1" || return
        dir=$T_DIR/$1
        pg_postmaster "$dir" >/dev/null || return 0
        bin=$(pg_bindir) || return
        pg_as "$bin/pg_ctl" -D "$dir/data" -w -t 30 -s -m immediate stop >/dev/null 2>&1
        # Whatever is left of it goes as at pg_stop.
        pg_cluster_stop "$dir"
}

pg_multi_url() {
        local n hosts="" ports=""
        for n in "$@"; do
                pg_name_ok "$n" || return
                hosts+=${hosts:+,}$(pg_urlencode "$T_DIR/$n/run")
                ports+=${ports:+,}$(pg_port "$T_DIR/$n")
        done
        echo "postgresql:///slipway?host=$hosts&port=$ports&user=postgres&target_session_attrs=read-write"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
        . "$(dirname "$0")/lib.sh"
        case ${1:-}:$# in
        start:2 | start:3) pg_cluster_start "$2" "${3:-}" ;;
        stop:2) pg_cluster_stop "$2" ;;
        *)
                echo "usage: tests/pg.sh start DIR [UPTO] | stop DIR" >&2
                exit 2
                ;;
        esac
fi
