#!/bin/bash
# slipwayd with its state in PostgreSQL, for the shell suites run with
# SLIPWAY_TEST_STORE=postgresql (tests/lib.sh puts it first as $BIN/slipwayd).
# Each state directory gets a database of its own in the suite's cluster
# (pg_state_url), made the first time, so a suite that runs several servers
# keeps them apart as it does on sqlite; the flags, the command and the pid
# (exec) stay those the suite gave. backup and restore are sqlite's and run
# as they are.
. "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/lib.sh"
. "$TOP/tests/pg.sh"

real=$TOP/build/bin/slipwayd
state=
config=
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
        # main.c's rules: every --flag but these three takes a value, given
        # after = or as the next argument; the first word that is not a
        # flag starts the command.
        case ${args[i]} in
        -h | --help | --version | --check-config | --*=*) ;;
        -c | --*) ((i++)) ;;
        backup | restore) exec "$real" "$@" ;;
        *) break ;;
        esac
        case ${args[i - 1]:-}:${args[i]} in
        --state-dir:*) state=${args[i]} ;;
        *:--state-dir=*) state=${args[i]#--state-dir=} ;;
        -c:* | --config:*) config=${args[i]} ;;
        *:--config=*) config=${args[i]#--config=} ;;
        --database:* | *:--database=*) exec "$real" "$@" ;;
        esac
done
# state-dir from the file when no flag gives it.
if [ -z "$state" ] && [ -n "$config" ] && [ -r "$config" ]; then
        state=$(sed -n 's/^[[:space:]]*state-dir[[:space:]]*=[[:space:]]*\(.*[^[:space:]]\)[[:space:]]*$/\1/p' "$config" |
                tail -n 1)
fi
if [ -z "$state" ] || [ -z "${SLIPWAY_TEST_PGURL:-}" ]; then
        exec "$real" "$@"
fi
url=$(pg_state_db "$state") || exit 1
exec "$real" --database "$url" "$@"
