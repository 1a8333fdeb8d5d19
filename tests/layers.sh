#!/bin/bash
# slipwayd's layers, checked from the source (part of make check):
#  - SQL only in the store: its files (bootserver/store*.c), the statement
#    API (store-db.h), the drivers' headers (store-sqlite.h, store-pg.h) and
#    SQL shared between its areas (store-*-sql.h); the headers of the areas,
#    which the fleet logic includes, hold none;
#  - sqlite only in its driver (store-sqlite*.c, store-sqlite.h): the areas
#    are written against store-db.h, so that another driver runs them;
#  - no circle among bootserver's files (a file that includes x.h depends on
#    x.c; tsort finds loops);
#  - no bootserver file over 800 lines;
#  - slipway-agent links no libcurl (its transport is common/httpc.c; the
#    thirty libraries libcurl loads would be most of its memory): none of
#    its files includes curl, and the binary (build/bin/slipway-agent, or
#    $SLIPWAY_AGENT; make test-layers builds it) has no libcurl in ldd.
# Each check names what breaks it. The PENDING lists hold what has not moved
# yet; a listed file that is clean fails the check too, so the lists only
# shrink (docs/architecture.md, "slipwayd's layers").
set -u
cd "$(dirname "$0")/.." || exit 2

SQL_PENDING="${LAYERS_SQL_PENDING-}"
SIZE_PENDING="${LAYERS_SIZE_PENDING-}"
CIRCLE_PENDING="${LAYERS_CIRCLE_PENDING-0}"
MAX_LINES=800
rc=0

listed() { # listed WORD LIST
        case " $2 " in *" $1 "*) return 0 ;; esac
        return 1
}

sql='sqlite3|store_stmt|db_(step|bind_[a-z0-9]+|column_[a-z0-9_]+|changes|reset)\b|\b(SELECT|INSERT INTO|UPDATE [a-z_]+ SET|DELETE FROM|CREATE (TABLE|INDEX))\b'
for f in bootserver/*.c bootserver/*.h; do
        b=${f#bootserver/}
        case $b in store*.c | store-db.h | store-sqlite.h | store-pg.h | store-*-sql.h) continue ;; esac
        if grep -qE "$sql" "$f"; then
                if ! listed "$b" "$SQL_PENDING"; then
                        echo "layers: SQL outside the store in $f:" >&2
                        grep -nE "$sql" "$f" | head -3 | sed 's/^/  /' >&2
                        rc=1
                fi
        elif listed "$b" "$SQL_PENDING"; then
                echo "layers: $f has no SQL any more: take it off SQL_PENDING in $0" >&2
                rc=1
        fi
done

sqlite='sqlite3|SQLITE_|include "store-sqlite\.h"'
for f in bootserver/*.c bootserver/*.h; do
        b=${f#bootserver/}
        case $b in store-sqlite*.c | store-sqlite.h) continue ;; esac
        if grep -qE "$sqlite" "$f"; then
                echo "layers: sqlite outside its driver in $f:" >&2
                grep -nE "$sqlite" "$f" | head -3 | sed 's/^/  /' >&2
                rc=1
        fi
done

for f in bootserver/*.c bootserver/*.h; do
        b=${f#bootserver/}
        n=$(wc -l <"$f")
        if [ "$n" -gt "$MAX_LINES" ] && ! listed "$b" "$SIZE_PENDING"; then
                echo "layers: $f has $n lines (at most $MAX_LINES)" >&2
                rc=1
        elif [ "$n" -le "$MAX_LINES" ] && listed "$b" "$SIZE_PENDING"; then
                echo "layers: $f has $n lines now: take it off SIZE_PENDING in $0" >&2
                rc=1
        fi
done

# Module a depends on module b when a.c or a.h includes b.h, for b.h in
# bootserver/ (main.c is the top and depends on everything, so it is left
# out: it cannot be in a circle that matters).
edges=$(for f in bootserver/*.c bootserver/*.h; do
        a=$(basename "${f%.*}")
        [ "$a" = main ] && continue
        sed -n 's/^#include "\([^"]*\)\.h".*/\1/p' "$f" | while read -r b; do
                [ -e "bootserver/$b.h" ] && [ "$a" != "$b" ] && echo "$a $b"
        done
done | sort -u)
if loops=$(tsort <<<"$edges" 2>&1 >/dev/null) && [ -z "$loops" ]; then
        if [ "$CIRCLE_PENDING" = 1 ]; then
                echo "layers: no circle among bootserver's files any more: set CIRCLE_PENDING to 0 in $0" >&2
                rc=1
        fi
elif [ "$CIRCLE_PENDING" != 1 ]; then
        echo "layers: bootserver's files include each other in a circle:" >&2
        sed 's/^tsort: /  /' <<<"$loops" | head -20 >&2
        rc=1
fi

curl='include [<"](curl/curl|curleasy)\.h[">]|\bcurl_[a-z_]+\('
for f in agent/*.c agent/*.h common/http.h common/http.c common/httpc.c common/httpparse.[ch] common/apiclient.[ch]; do
        if grep -qE "$curl" "$f"; then
                echo "layers: libcurl in $f, which slipway-agent links:" >&2
                grep -nE "$curl" "$f" | head -3 | sed 's/^/  /' >&2
                rc=1
        fi
done
agent=${SLIPWAY_AGENT:-build/bin/slipway-agent}
if [ ! -x "$agent" ]; then
        echo "layers: $agent is not built (make test-layers builds it)" >&2
        rc=1
elif ! libs=$(ldd "$agent" 2>&1); then
        echo "layers: ldd $agent failed: $libs" >&2
        rc=1
elif grep -q libcurl <<<"$libs"; then
        echo "layers: $agent links libcurl:" >&2
        grep libcurl <<<"$libs" | sed 's/^\s*/  /' >&2
        rc=1
fi

[ $rc = 0 ] && echo "layers: ok"
exit $rc
