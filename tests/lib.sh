# Shared by the shell tests: assertions, temporary directories, stopping
# what a suite started, qemu.
# Each test script sources this file and calls `t_begin NAME`.

set -u
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$TOP/build/bin
T_PASSED=0
T_FAILED=0
T_SKIPPED=0
T_NAME=""

t_begin() {
        T_SUITE=$1
        T_BEGUN=$SECONDS
        T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/slipway-$1.XXXXXX")
        T_VERDICT=none
        T_ENDED=0
        # Everything the suite starts carries its mark (see t_exit).
        export SLIPWAY_TEST_SUITE=$T_DIR
        t_run_note suite $$ "$(t_stat $$ 22)" "$T_DIR"
        trap t_exit EXIT
        trap 'T_SIGNAL=INT; exit 130' INT
        trap 'T_SIGNAL=TERM; exit 143' TERM
        if [ "$T_STORE" = postgresql ]; then
                . "$TOP/tests/pg.sh"
                pg_start pgstate >"$T_DIR/pgstate.log" 2>&1 || {
                        echo "$T_SUITE: cannot start PostgreSQL for the suite: $(cat "$T_DIR/pgstate.log")"
                        exit 1
                }
                export SLIPWAY_TEST_PGURL=$PGURL
                echo "$T_SUITE: slipwayd keeps its state in PostgreSQL"
        fi
}

# ---- the store the suites' slipwayd run on ---------------------------------
# SLIPWAY_TEST_STORE=postgresql runs a suite's slipwayd on PostgreSQL: t_begin
# starts a cluster of the suite's own, and $BIN/slipwayd is
# tests/slipwayd-pg.sh, which gives each state directory a database of its
# own there. Unset or sqlite: state-dir/state.db, as in production's default.
T_STORE=${SLIPWAY_TEST_STORE:-sqlite}
# t_link TARGET LINK: LINK points to TARGET; an existing one is left alone
# (a suite beside may be running a program through it).
t_link() {
        [ "$(readlink "$2")" = "$1" ] || ln -sfn "$1" "$2"
}
case $T_STORE in
sqlite) ;;
postgresql)
        # The programs of build/bin, with slipwayd in front of the real one.
        BIN=$TOP/build/pg-bin
        mkdir -p "$BIN"
        for f in "$TOP"/build/bin/*; do
                [ "${f##*/}" = slipwayd ] || t_link "$f" "$BIN/${f##*/}"
        done
        t_link "$TOP/tests/slipwayd-pg.sh" "$BIN/slipwayd"
        ;;
*)
        echo "SLIPWAY_TEST_STORE: expected sqlite or postgresql, got '$T_STORE'" >&2
        exit 2
        ;;
esac

# t_state_sql STATE-DIR SQL: runs SQL on the database of the slipwayd whose
# state directory is STATE-DIR, prints the rows (|-separated, no header).
t_state_sql() {
        if [ "$T_STORE" = postgresql ]; then
                psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$(pg_state_url "$1")" -c "$2"
        else
                sqlite3 "$1/state.db" "$2"
        fi
}

# t_state_copy FROM TO: state directory TO becomes a copy of FROM (whose
# slipwayd is stopped), its database included.
t_state_copy() {
        rm -rf "$2"
        cp -a "$1" "$2" || return
        [ "$T_STORE" != postgresql ] || pg_state_copy "$1" "$2"
}

# ---- what a suite starts ---------------------------------------------------
# Every process a suite starts is stopped when its script ends, however it
# ends: success, failure, an `exit` in the middle, SIGINT or SIGTERM. The
# script names its own clean-up with t_on_exit (never `trap ... EXIT`, which
# would replace t_exit), its network namespaces with t_netns_add, and stops
# what it started with t_stop. At the end t_exit also stops whatever is left
# of the suite: the script's descendants, every process that carries its
# mark (SLIPWAY_TEST_SUITE=$T_DIR, inherited through exec, `ip netns exec`
# and qemu) and every process whose command line points into $T_DIR (a
# dnsmasq, which slipwayd starts with a clean environment).

T_ON_EXIT=()
T_NETNS=()
T_SIGNAL=

# t_run_note WORDS...: under make check and make test, writes down a suite
# or a namespace of this run for tests/leftovers.sh.
t_run_note() {
        [ -n "${SLIPWAY_TEST_RUN:-}" ] || return 0
        mkdir -p "$(dirname "$SLIPWAY_TEST_RUN")" && echo "$*" >>"$SLIPWAY_TEST_RUN"
}

# t_stat PID N: field N of /proc/PID/stat: 4 is the parent, 22 the start
# time (which tells a process from a later one with the same pid).
t_stat() {
        local s k=$(($2 - 2))
        { read -r s </proc/"$1"/stat; } 2>/dev/null || return 1
        # The fields after the command name, which may hold blanks: 3 on.
        # shellcheck disable=SC2086
        set -- ${s##*) }
        echo "${!k}"
}

# t_on_exit CMD: runs CMD (eval'd) when the script ends, before t_exit stops
# what is left; in the order given. t_end runs them before it removes the
# suite's directory, which what they stop may still use.
t_on_exit() {
        T_ON_EXIT+=("$1")
}

# t_cleanup: runs the t_on_exit commands, once.
t_cleanup() {
        local cmd cmds=("${T_ON_EXIT[@]}")
        T_ON_EXIT=()
        for cmd in "${cmds[@]}"; do eval "$cmd"; done
}

# t_netns_add NS: makes network namespace NS; when the script ends, every
# process in it is stopped and it is deleted.
t_netns_add() {
        ip netns add "$1" || return
        T_NETNS+=("$1")
        t_run_note netns "$1" "$T_DIR"
}

# t_alive PID: PID is a process that has not exited (a zombie has).
t_alive() {
        local s
        { read -r s </proc/"$1"/stat; } 2>/dev/null || return 1
        s=${s##*) }
        [ "${s%% *}" != Z ]
}

# t_descendants PID: PID's children, their children and so on.
t_descendants() {
        local c
        for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
                echo "$c"
                t_descendants "$c"
        done
}

# t_below PID ANCESTOR: PID descends from ANCESTOR.
t_below() {
        local p=$1
        while [ -n "$p" ] && [ "$p" -gt 1 ]; do
                p=$(t_stat "$p" 4) || return 1
                [ "$p" = "$2" ] && return 0
        done
        return 1
}

# t_marked: the processes that carry this suite's mark or point into $T_DIR.
t_marked() {
        {
                grep -lazx "SLIPWAY_TEST_SUITE=$T_DIR" /proc/[0-9]*/environ
                grep -laF "$T_DIR" /proc/[0-9]*/cmdline
        } 2>/dev/null | cut -d/ -f3 | sort -un
}

# t_stop PID...: stops (t_kill) each PID that is this suite's (a descendant
# of the script, or marked) and everything it started; the script's own
# children are reaped. A PID that is gone, or that is now someone else's,
# is left alone.
t_stop() {
        local p c marked pids=()
        marked=" $(t_marked | tr '\n' ' ') "
        for p in "$@"; do
                if [ -z "$p" ] || [ "$p" = $$ ] || ! t_alive "$p"; then continue; fi
                [[ $marked == *" $p "* ]] || t_below "$p" $$ || continue
                pids+=("$p")
                for c in $(t_descendants "$p"); do pids+=("$c"); done
        done
        t_kill "${pids[@]}"
        for p in "$@"; do [ -n "$p" ] && wait "$p" 2>/dev/null; done
        return 0
}

# t_kill PID...: SIGTERM and SIGCONT (for a stopped one), then SIGKILL to
# those still there after 10 s. Asks nothing: the caller knows they are
# the tests'.
t_kill() {
        local p i left=()
        [ $# -gt 0 ] || return 0
        kill -TERM "$@" 2>/dev/null
        kill -CONT "$@" 2>/dev/null
        for ((i = 0; i < 100; i++)); do
                left=()
                for p in "$@"; do t_alive "$p" && left+=("$p"); done
                [ ${#left[@]} -eq 0 ] && return 0
                sleep 0.1
        done
        kill -KILL "${left[@]}" 2>/dev/null
        return 0
}

# t_exit: the EXIT trap t_begin sets. Runs the script's t_on_exit commands,
# stops the processes in its namespaces and deletes them, then stops what
# is left of the suite (naming it: the script's own clean-up missed it).
t_exit() {
        local ns p stray=()
        trap - EXIT INT TERM
        t_cleanup
        for ns in "${T_NETNS[@]}"; do
                # shellcheck disable=SC2046
                t_stop $(ip netns pids "$ns" 2>/dev/null)
                ip netns del "$ns" 2>/dev/null
        done
        # The subshells that list them are gone by the time they are checked.
        for p in $(t_descendants $$) $(t_marked); do
                [ "$p" != $$ ] && t_alive "$p" && stray+=("$p")
        done
        if [ ${#stray[@]} -gt 0 ]; then
                echo "$T_SUITE: stopping what was left running:" \
                        "$(ps -o pid=,args= -p "${stray[*]}" 2>/dev/null | cut -c1-100 | tr '\n' ';')"
                t_stop "${stray[@]}"
        fi
        if [ -n "$T_SIGNAL" ] && [ "${T_KEEP:-0}" != 1 ]; then
                rm -rf "$T_DIR"
        elif [ "$T_ENDED" = 0 ] && [ -d "$T_DIR" ]; then
                echo "$T_SUITE: ended before t_end; files kept in $T_DIR"
        fi
}

# Every case ends in exactly one verdict. A case that reaches the next
# t_case (or t_end) without t_ok or t_fail is a failure: an `if A && B;
# then t_ok; fi` whose A failed would otherwise pass by saying nothing.
t_verdict_check() {
        if [ -n "$T_NAME" ] && [ "$T_VERDICT" = pending ]; then
                t_fail "the case ended without a verdict (neither ok nor FAIL)"
        fi
}

# t_case NAME: starts one case; its output goes to $T_DIR/NAME.log.
t_case() {
        t_verdict_check
        T_NAME=$1
        T_VERDICT=pending
        echo "--- $T_SUITE: $T_NAME"
}

# t_ok [NOTE]: the case passed, unless it already failed (then it stays
# failed and says so).
t_ok() {
        if [ "$T_VERDICT" = fail ]; then
                echo "FAIL $T_SUITE: $T_NAME: ok after a failure in the same case"
                return 0
        fi
        if [ "$T_VERDICT" = ok ]; then
                echo "ok   $T_SUITE: $T_NAME${1:+ ($1)} (again)"
                return 0
        fi
        T_VERDICT=ok
        T_PASSED=$((T_PASSED + 1))
        echo "ok   $T_SUITE: $T_NAME${1:+ ($1)}"
}

# t_fail MESSAGE: the case failed; a case counts once however often it fails.
t_fail() {
        echo "FAIL $T_SUITE: $T_NAME: $*"
        case $T_VERDICT in
        fail) return 0 ;;
        ok) T_PASSED=$((T_PASSED - 1)) ;;
        esac
        T_VERDICT=fail
        T_FAILED=$((T_FAILED + 1))
}

# t_skip REASON: the case cannot run here (no root, a tool missing). That is
# its verdict, reported as a skip; under CI (CI=true), where every test must
# run, a skip is a failure.
t_skip() {
        if [ "${CI:-}" = true ]; then
                t_fail "cannot run under CI: $*"
                return 0
        fi
        [ "$T_VERDICT" = pending ] || return 0
        T_VERDICT=skip
        T_SKIPPED=$((T_SKIPPED + 1))
        echo "skip $T_SUITE: $T_NAME: $*"
}

# t_end: prints the summary line; keeps the directory when something failed
# (or T_KEEP=1).
t_end() {
        t_verdict_check
        T_NAME=""
        T_ENDED=1
        t_cleanup
        if [ "$T_FAILED" -eq 0 ] && [ "${T_KEEP:-0}" != 1 ]; then
                rm -rf "$T_DIR"
        else
                echo "$T_SUITE: files kept in $T_DIR"
        fi
        local skipped=""
        [ "$T_SKIPPED" -eq 0 ] || skipped=", $T_SKIPPED skipped"
        echo "$T_SUITE: $T_PASSED passed, $T_FAILED failed$skipped in $((SECONDS - T_BEGUN)) s"
        [ "$T_FAILED" -eq 0 ]
}

# expect_fail PATTERN CMD...: CMD must exit non-zero and print exactly one
# error line on stderr, which must match PATTERN (grep -E).
expect_fail() {
        local pattern=$1 err rc lines
        shift
        err=$("$@" 2>&1 >/dev/null)
        rc=$?
        if [ $rc -eq 0 ]; then
                t_fail "expected failure, got exit 0"
                return 1
        fi
        lines=$(printf '%s\n' "$err" | grep -c -E '^slip(way-[a-z]+|ctl|wayd): ' || true)
        if ! printf '%s\n' "$err" | grep -q -E "$pattern"; then
                t_fail "error does not match /$pattern/: $err"
                return 1
        fi
        if [ "$lines" -ne 1 ]; then
                t_fail "expected one error line, got $lines: $err"
                return 1
        fi
        T_LAST_ERROR=$err
        return 0
}

# t_port: a free loopback TCP port for a server the suite starts and may
# stop and start again on the same port, where port 0 (any) will not do.
# It is below the range the kernel picks from for port 0 and for outgoing
# connections (ip_local_port_range), so no other program is given it while
# the server is down; no socket uses it; and no other suite running on this
# machine was given it: the ports handed out are written down, with their
# suite, in /tmp/slipway-test-ports.UID under flock, and a suite's are free
# again once it has ended.
t_port() {
        local list
        list=/tmp/slipway-test-ports.$(id -u)
        (
                local lo=20000 hi used=" " kept=() f addr p i owner start
                flock 9 || exit 1
                read -r hi _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || hi=32768
                hi=$((hi - 1))
                [ "$hi" -gt $((lo + 1000)) ] || hi=$((lo + 10000))
                for f in /proc/net/tcp /proc/net/tcp6; do
                        [ -r "$f" ] || continue
                        while read -r _ addr _; do
                                used+="$((16#${addr##*:})) "
                        done < <(tail -n +2 "$f")
                done
                # The ports of suites still running stay theirs.
                while read -r p owner start; do
                        [ -n "$start" ] && t_alive "$owner" && [ "$(t_stat "$owner" 22)" = "$start" ] || continue
                        kept+=("$p $owner $start")
                        used+="$p "
                done <"$list"
                for ((i = 0; i < 200; i++)); do
                        p=$((lo + RANDOM % (hi - lo + 1)))
                        [[ $used == *" $p "* ]] && continue
                        kept+=("$p $$ $(t_stat $$ 22)")
                        # In place: the lock is the file's.
                        printf '%s\n' "${kept[@]}" >"$list" || exit 1
                        echo "$p"
                        exit 0
                done
                echo "$T_SUITE: no free port between $lo and $hi" >&2
                exit 1
        ) 9>>"$list"
}

# until_true SECONDS CMD...: runs CMD every second (every UNTIL_EVERY
# seconds when that is set: UNTIL_EVERY=0.05 until_true ...) until it
# succeeds or SECONDS have passed; the status is that of its last run.
until_true() {
        local deadline=$(($(date +%s) + $1))
        shift
        while [ "$(date +%s)" -lt "$deadline" ]; do
                "$@" && return 0
                sleep "${UNTIL_EVERY:-1}"
        done
        "$@"
}

# cut_when CMD...: a power cut, by the suite's vm_off (qemu killed, nothing
# synced by the guest), as soon as CMD succeeds, polled every 50 ms; 0 when
# it did within 300 s.
cut_when() {
        UNTIL_EVERY=0.05 until_true 300 "$@" || return 1
        vm_off
}

# t_reuse_dir DIR PATH...: for a second run while a suite is worked on: the
# suite's directory becomes DIR (made when missing), each PATH in it (a
# glob, relative to DIR) is removed, and the rest (build caches, keys)
# kept for this run.
t_reuse_dir() {
        local p
        rm -rf "$T_DIR"
        T_DIR=$1
        export SLIPWAY_TEST_SUITE=$T_DIR
        mkdir -p "$T_DIR"
        shift
        for p in "$@"; do
                # shellcheck disable=SC2086
                rm -rf "$T_DIR"/$p
        done
}

# sha FILE: its SHA-256, in hex.
sha() { sha256sum "$1" | cut -c1-64; }
# now_ms: the time, in milliseconds.
now_ms() { date +%s%3N; }

# sample_def FILE [SED-ARGS...]: images/tiny.conf, pointed at the sample
# repository (build/sample-repo, from `make sample-repo`) and its signing
# key, written to FILE; SED-ARGS (-e 's/^install = .*/install = x/') change
# it further.
sample_def() {
        local file=$1
        shift
        sed -e "s|^baseurl = .*|baseurl = $TOP/build/sample-repo|" \
                -e "s|^gpgkey = .*|gpgkey = $TOP/build/sample-repo/RPM-GPG-KEY-slipway-sample|" \
                "$@" "$TOP/images/tiny.conf" >"$file"
}

# tiny_def FILE VERSION [PACKAGE...]: sample_def for release VERSION of the
# sample image: [image] version and the tiny-base it installs are VERSION
# (images/sample-repo.sh builds tiny-base 1.0 to 4.0), and each PACKAGE
# joins the install line.
tiny_def() {
        local file=$1 version=$2
        shift 2
        sample_def "$file" -e "s|^version = .*|version = $version|" \
                -e "s|^install = tiny-base = [^ ]*|install = tiny-base = $version|" \
                -e "/^install = /s|\$|${*:+ $*}|"
}

# t_wait_until SECONDS CMD...: until_true, retrying every 0.2 s.
t_wait_until() {
        UNTIL_EVERY=0.2 until_true "$@"
}

# t_tiny_images DIR: a signing key (DIR/k.key, its public half in DIR/keys
# for --trusted-keys) and the sample image tiny at 1.0 and 2.0, built with
# it into the store DIR/store; what failed is said (DIR/build.log).
t_tiny_images() {
        local v
        mkdir -p "$1/keys"
        "$BIN/slipway-build" keygen "$1/k.key" "$1/keys/k.pub" >/dev/null
        for v in 1.0 2.0; do
                tiny_def "$1/tiny-$v.conf" $v
                "$BIN/slipway-build" -q --store "$1/store" build --key "$1/k.key" --lock "$1/tiny.lock" --no-disk \
                        "$1/tiny-$v.conf" >/dev/null 2>>"$1/build.log" ||
                        echo "building tiny $v failed: $(tail -3 "$1/build.log")"
        done
}

# t_slipwayd DIR LISTEN [OPTION...]: starts slipwayd ($SLIPWAYD, or the one
# built) on LISTEN with its state in DIR/srv, trusting DIR/keys, its log
# appended to DIR/srv.log; once it listens, its PID is in T_SLIPWAYD_PID
# and its URL in URL. One that does not listen within 20 s is stopped, and
# 1 returned, its log said.
t_slipwayd() {
        local d=$1 listen=$2 pid
        shift 2
        rm -f "$d/srv/slipwayd.url"
        "${SLIPWAYD:-$BIN/slipwayd}" --state-dir "$d/srv" --listen "$listen" --trusted-keys "$d/keys" \
                --log-json no "$@" >>"$d/srv.log" 2>&1 &
        pid=$!
        if ! t_wait_until 20 test -s "$d/srv/slipwayd.url"; then
                t_stop "$pid"
                echo "slipwayd did not start: $(tail "$d/srv.log")"
                return 1
        fi
        T_SLIPWAYD_PID=$pid
        URL=$(cat "$d/srv/slipwayd.url")
}

# t_tiny_push DIR: pushes tiny 1.0 and 2.0 of t_tiny_images to the slipwayd
# at $URL (SLIPWAY_SERVER and SLIPWAY_TOKEN exported); their image IDs in
# ID1 and ID2.
t_tiny_push() {
        local v
        for v in 1.0 2.0; do
                "$BIN/slipway-build" -q --store "$1/store" push "$URL" tiny:$v >/dev/null || echo "pushing tiny $v failed"
        done
        ID1=$("$BIN/slipctl" --json image show tiny:1.0 | jq -r .id)
        ID2=$("$BIN/slipctl" --json image show tiny:2.0 | jq -r .id)
}

# The accelerator for test VMs: SLIPWAY_QEMU_ACCEL when set; otherwise KVM
# when a probe boot shows it really runs guests (on some machines /dev/kvm
# exists but a guest never gets past the firmware), TCG if not. The verdict
# is kept in build/kvm-probe for the current boot of this machine.
qemu_accel() {
        local cache=$TOP/build/kvm-probe boot id verdict kernel log pid i
        if [ -n "${SLIPWAY_QEMU_ACCEL:-}" ]; then
                echo "$SLIPWAY_QEMU_ACCEL"
                return
        fi
        boot=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)
        if [ -f "$cache" ] && read -r id verdict <"$cache" && [ "$id" = "$boot" ]; then
                echo "$verdict"
                return
        fi
        verdict=tcg
        kernel=$(ls /boot/vmlinuz-* 2>/dev/null | tail -n 1)
        if [ -w /dev/kvm ] && [ -n "$kernel" ]; then
                log=$(mktemp)
                qemu-system-x86_64 -accel kvm -m 256 -no-reboot -display none -monitor none -serial "file:$log" \
                        -kernel "$kernel" -append "console=ttyS0 panic=-1" </dev/null >/dev/null 2>&1 &
                pid=$!
                for ((i = 0; i < 40; i++)); do
                        grep -q -a "Linux version" "$log" && { verdict=kvm; break; }
                        kill -0 "$pid" 2>/dev/null || break
                        sleep 0.2
                done
                kill "$pid" 2>/dev/null
                wait "$pid" 2>/dev/null
                rm -f "$log"
        fi
        mkdir -p "$TOP/build"
        echo "$boot $verdict" >"$cache"
        echo "$verdict"
}

# qemu_until MARKER TIMEOUT LOG QEMU-ARGS...: boots a VM with its serial
# console in LOG and returns 0 once MARKER appears (the VM is then stopped),
# 1 on timeout or when qemu exits first.
qemu_until() {
        local marker=$1 timeout=$2 log=$3 pid i
        shift 3
        : >"$log"
        qemu-system-x86_64 -accel "$(qemu_accel)" -no-reboot -serial "file:$log" -monitor none \
                -display none "$@" </dev/null >/dev/null 2>"$log.stderr" &
        pid=$!
        for ((i = 0; i < timeout * 5; i++)); do
                if grep -q -a "$marker" "$log"; then
                        kill "$pid" 2>/dev/null
                        wait "$pid" 2>/dev/null
                        return 0
                fi
                if ! kill -0 "$pid" 2>/dev/null; then
                        wait "$pid" 2>/dev/null
                        grep -q -a "$marker" "$log" && return 0
                        return 1
                fi
                sleep 0.2
        done
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        return 1
}

# The environment libguestfs needs where KVM cannot run guests.
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
