#!/bin/bash
# Token roles: every route's least role, read from the route tables in the
# sources and checked against the table below (a route added without a line
# here fails), then called with a viewer, an operator and an admin token:
# below the route's role 403 naming the role it needs, at or above it
# anything but 401 and 403. GET /v1/whoami for each kind of token, the
# tokens there were before roles coming back as admin tokens, and slipctl's
# words on a 403. One slipwayd, no image.
. "$(dirname "$0")/../lib.sh"
t_begin roles

SD=$BIN/slipwayd
C=$BIN/slipctl
D=$T_DIR
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'

# The least role of every route: public (no token), viewer, operator,
# admin, host (that host's token, or an admin token), any (any token).
EXPECTED="
GET blobs/sha256/* public
HEAD blobs/sha256/* public
PUT v1/blobs/sha256/* admin
POST v1/images admin
GET v1/images viewer
GET v1/images/* viewer
DELETE v1/images/* admin
POST v1/hosts/register public
GET v1/hosts viewer
GET v1/hosts/* viewer
POST v1/hosts/*/labels operator
PUT v1/hosts/*/image operator
POST v1/hosts/*/checkin host
POST v1/hosts/*/lease host
DELETE v1/hosts/*/lease host
GET v1/budgets viewer
PUT v1/budgets/* operator
DELETE v1/budgets/* operator
POST v1/rollouts/plan operator
POST v1/rollouts operator
GET v1/rollouts viewer
GET v1/rollouts/* viewer
POST v1/rollouts/*/* operator
POST v1/pre-reboot public
POST v1/steady-state public
GET boot/ipxe public
GET v1/audit viewer
GET v1/instances public
GET v1/status public
GET metrics public
GET v1/files viewer
POST v1/files admin
GET v1/files/* admin
PUT v1/files/* admin
DELETE v1/files/* admin
GET v1/files/*/history viewer
GET v1/hosts/*/files host
GET v1/whoami any
GET / public
GET ui public
GET ui/* public
GET v1/fleet viewer
GET v1/events viewer
POST v1/pipelines admin
GET v1/pipelines viewer
GET v1/pipelines/* viewer
POST v1/pipelines/*/* operator
"

rank() {
        case $1 in
        viewer) echo 1 ;;
        operator) echo 2 ;;
        admin | host) echo 3 ;;
        *) echo 0 ;;
        esac
}

# api TOKEN METHOD PATH [CURL-ARGS...]: sets CODE and BODY.
api() {
        local token=$1 method=$2 path=$3 out
        shift 3
        out=$(curl -s -X "$method" -w '\n%{http_code}' -H "Authorization: Bearer $token" "$@" "$URL/$path")
        CODE=${out##*$'\n'}
        BODY=${out%$'\n'*}
}

start_server() {
        local i
        rm -f "$D/state/slipwayd.url"
        "$SD" --state-dir "$D/state" --listen 127.0.0.1:0 --trusted-keys "$D/keys" --log-json no \
                --enroll-token site-secret >>"$D/server.log" 2>&1 &
        PID=$!
        PIDS+=("$PID")
        for ((i = 0; i < 1200; i++)); do
                [ -s "$D/state/slipwayd.url" ] && break
                sleep 0.05
        done
        URL=$(cat "$D/state/slipwayd.url" 2>/dev/null)
}

mkdir -p "$D/keys"

t_case "token create --role: admin by default, operator, viewer; an unknown role refused; token list shows them"
ADMIN=$("$SD" --state-dir "$D/state" --log-json no token create ci)
OPERATOR=$("$SD" --state-dir "$D/state" --log-json no token create ops --role operator)
VIEWER=$("$SD" --state-dir "$D/state" --log-json no token create --role=viewer watcher)
"$SD" --state-dir "$D/state" --log-json no token create boss --role root 2>"$D/bad-role.err" && bad=created || bad=
"$SD" --state-dir "$D/state" --log-json no token list >"$D/tokens"
if [[ $ADMIN == slw_* ]] && [[ $OPERATOR == slw_* ]] && [[ $VIEWER == slw_* ]] && [ -z "$bad" ] &&
        grep -q "unknown role 'root'" "$D/bad-role.err" &&
        grep -Eq '^ci +admin ' "$D/tokens" && grep -Eq '^ops +operator ' "$D/tokens" &&
        grep -Eq '^watcher +viewer ' "$D/tokens" && ! grep -q '^boss ' "$D/tokens"; then t_ok; else
        t_fail "$bad $(cat "$D/bad-role.err" "$D/tokens")"; fi

start_server
HOST_MAC=52:54:00:00:00:01
api none POST v1/hosts/register -H 'Content-Type: application/json' \
        --data-binary "{\"mac\":\"$HOST_MAC\",\"enroll\":\"site-secret\"}"
HOST_TOKEN=$(jq -r .token <<<"$BODY")
HOST_ID=$(jq -r .id <<<"$BODY")

t_case "every route in the route tables has its role in this suite's table"
grep -ho '{ "[A-Z]*", "[^"]*", AUTH_[A-Z]*' "$TOP"/bootserver/api-*.c |
        sed -E -e 's/\{ "([A-Z]+)", "", /{ "\1", "\/", /' -e 's/\{ "([A-Z]+)", "([^"]+)", AUTH_([A-Z]+)/\1 \2 \3/' |
        tr 'A-Z' 'a-z' |
        awk '{ print toupper($1), $2, $3 }' | sort >"$D/routes.src"
grep -v '^$' <<<"$EXPECTED" | sort >"$D/routes.expected"
if diff -u "$D/routes.expected" "$D/routes.src" >"$D/routes.diff" && [ "$(wc -l <"$D/routes.src")" -gt 30 ]; then
        t_ok "$(wc -l <"$D/routes.src") routes"
else
        t_fail "the route tables and the suite's table differ: $(cat "$D/routes.diff")"
fi

t_case "each route with each role: 403 naming the role below it, never 401 or 403 at or above it"
# The body kind of each route, from the same tables.
grep -ho '{ "[A-Z]*", "[^"]*", AUTH_[A-Z]*, BODY_[A-Z]*' "$TOP"/bootserver/api-*.c |
        sed -E 's/\{ "([A-Z]+)", "([^"]+)", AUTH_[A-Z]+, BODY_([A-Z]+)/\1 \2 \3/' >"$D/bodies"
bad=""
checked=0
while read -r method pattern need; do
        [ -n "$method" ] || continue
        case $need in public | any) continue ;; esac
        body=$(awk -v m="$method" -v p="$pattern" '$1 == m && $2 == p { print $3 }' "$D/bodies")
        path=$pattern
        # A host route names the registered host; the others a name that is
        # not there (the refusal comes first; above it a 404 or 400 is fine).
        if [ "$need" = host ]; then path=${path/\*/$HOST_ID}; fi
        path=${path/blobs\/sha256\/\*/blobs/sha256/$(printf '%064d' 0)}
        path=${path/rollouts\/\*\/\*/rollouts/r-none/pause}
        path=${path//\*/none}
        args=()
        case $body in
        JSON) args=(-H 'Content-Type: application/json' --data-binary '{}') ;;
        BLOB) args=(--data-binary 'x') ;;
        esac
        # the event stream stays open once it is let in
        [ "$path" = v1/events ] && args+=(--max-time 2)
        for who in viewer operator admin; do
                case $who in
                viewer) tok=$VIEWER ;;
                operator) tok=$OPERATOR ;;
                admin) tok=$ADMIN ;;
                esac
                api "$tok" "$method" "$path" "${args[@]}"
                checked=$((checked + 1))
                want=$need
                [ "$need" = host ] && want=admin
                if [ "$(rank "$who")" -ge "$(rank "$need")" ]; then
                        [ "$CODE" != 401 ] && [ "$CODE" != 403 ] || bad+=" [$who $method /$path: $CODE $BODY]"
                elif [ "$CODE" != 403 ] ||
                        [ "$(jq -r '[.kind, .role_needed, .role] | join(" ")' <<<"$BODY")" != "forbidden $want $who" ] ||
                        ! jq -r .error <<<"$BODY" | grep -q "needs the $want role"; then
                        bad+=" [$who $method /$path: $CODE $BODY, not 403 for $want]"
                fi
        done
done <<<"$EXPECTED"
if [ -z "$bad" ] && [ "$checked" -gt 60 ]; then t_ok "$checked calls"; else t_fail "${bad:-only $checked calls}"; fi

t_case "a host token: its own host's routes, not another's, not a viewer's"
api "$HOST_TOKEN" GET "v1/hosts/$HOST_ID/files"
c1=$CODE
api "$HOST_TOKEN" GET "v1/hosts/h-000000000000/files"
c2=$CODE
api "$HOST_TOKEN" GET v1/hosts
if [ "$c1" = 200 ] && [ "$c2" = 403 ] && [ "$CODE" = 403 ] && [ "$(jq -r .kind <<<"$BODY")" = forbidden ]; then
        t_ok; else t_fail "$c1 $c2 $CODE $BODY"; fi

t_case "GET /v1/whoami: the name and role of each token, host:ID for a host's; 401 without a known one"
out=""
for tok in "$ADMIN" "$OPERATOR" "$VIEWER" "$HOST_TOKEN"; do
        api "$tok" GET v1/whoami
        out+="$CODE $(jq -c . <<<"$BODY");"
done
api slw_nope GET v1/whoami
c1=$CODE
out2=$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/whoami")
expected='200 {"name":"ci","role":"admin"};200 {"name":"ops","role":"operator"};200 {"name":"watcher","role":"viewer"};'
expected+="200 {\"name\":\"host:$HOST_ID\",\"role\":\"host\"};"
if [ "$out" = "$expected" ] && [ "$c1" = 401 ] && [ "$out2" = 401 ]; then t_ok; else
        t_fail "$out $c1 $out2"; fi

t_case "slipctl: a viewer's rollout pause says which role it needs; status shows the role"
err=$($C --server "$URL" --token "$VIEWER" rollout pause 999 2>&1 >/dev/null)
rc=$?
st=$($C --server "$URL" --token "$OPERATOR" status 2>&1)
if [ $rc != 0 ] && grep -q "needs the operator role; the token 'watcher' has the viewer role" <<<"$err" &&
        grep -Eq "^role: +operator \(token 'ops'\)$" <<<"$st" && grep -Eq '^token: +accepted$' <<<"$st"; then t_ok; else
        t_fail "rc=$rc $err; $st"; fi

t_case "token.create is audited with its role; a revoked token is 401"
api "$VIEWER" GET "v1/audit?action=token.create"
roles=$(jq -r '[.entries[] | .target + "=" + .detail.role] | join(" ")' <<<"$BODY")
"$SD" --state-dir "$D/state" --log-json no token revoke ops
api "$OPERATOR" GET v1/whoami
if [ "$roles" = "ci=admin ops=operator watcher=viewer" ] && [ "$CODE" = 401 ]; then t_ok; else
        t_fail "$roles; $CODE $BODY"; fi

t_case "tokens made before roles are admin tokens"
# The state as it was before: no role column, the schema before it.
t_stop "$PID"
if [ "$T_STORE" = postgresql ]; then
        t_state_sql "$D/state" "ALTER TABLE tokens DROP COLUMN role; DROP TABLE webhook_cursors;
                DROP TABLE pipeline_stages; DROP TABLE pipelines; DROP INDEX audit_target;
                DROP TRIGGER audit_appended ON audit; DROP FUNCTION audit_appended();
                UPDATE schema_version SET version = 20" >/dev/null
else
        t_state_sql "$D/state" "ALTER TABLE tokens DROP COLUMN role; DROP TABLE webhook_cursors;
                DROP TABLE pipeline_stages; DROP TABLE pipelines; DROP INDEX audit_target;
                PRAGMA user_version = 20" >/dev/null
fi
start_server
api "$VIEWER" GET v1/whoami
if [ "$(jq -r .role <<<"$BODY")" = admin ] &&
        "$SD" --state-dir "$D/state" --log-json no token list | grep -Eq '^watcher +admin '; then t_ok; else
        t_fail "$CODE $BODY $(tail -n 3 "$D/server.log")"; fi

t_end
