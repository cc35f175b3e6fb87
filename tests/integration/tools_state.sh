#!/usr/bin/env bash
# The servers tools/fp-server starts, and the state files that name them:
# - A server's state file (KIND.env) names its pid. After a reboot or a
#   crash that pid may be another program's: fp-server stop must not
#   signal it, and tools/stack status must not call it up. The process
#   standing in for "another program" is a session leader of our own
#   (setsid sleep), as a reused pid of a shell or a daemon would be.
# - A start interrupted before the server is ready (Ctrl-C in tools/run)
#   leaves no server running: it has no state file yet for a stop to use.
# Run by ctest with FP_SOURCE_DIR, FP_HARNESS (tools/fp-server) and
# FP_TEST_TMP.
set -euo pipefail

# shellcheck source=ft_check.sh
. "$(dirname "$0")/ft_check.sh"

t=$(ft_tmp tools-state)
ft_stop_at_exit "$t/real"
victim=""
cleanup() {
    [ -z "$victim" ] || kill -KILL -- "-$victim" 2>/dev/null || true
}
# The status the script ends with, kept across cleanup for ft__stop_exit
# (which took cleanup's 0 before: every failure passed).
trap 'ft__rc=$?; cleanup; ft__stop_exit "$ft__rc"' EXIT

boot=$(cat /proc/sys/kernel/random/boot_id)
env_val() { sed -n "s/^$2=//p" "$1"; }
# gone PID: no such process, or a zombie (the stand-in is our child: it
# stays a zombie until reaped).
gone() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 0
    case "$st" in Z*) return 0 ;; esac
    return 1
}

# ---- a real server records its stamp, and its stop still stops it ----
"$FP_HARNESS" start redis "$t/real" >/dev/null
pid=$(env_val "$t/real/redis.env" PID)
start=$(env_val "$t/real/redis.env" START)
[ -n "$start" ] || die "redis.env has no START= line"
if [ "$start" = "$("$FP_HARNESS" stamp "$pid")" ] && [ "${start%%/*}" = "$boot" ]; then
    ok "redis.env records the server's boot id and start time ($start)"
else
    fail "redis.env's START=$start is not pid $pid's stamp ($("$FP_HARNESS" stamp "$pid"))"
fi
"$FP_HARNESS" stop redis "$t/real"
if ! gone "$pid"; then
    fail "fp-server stop left the server (pid $pid) running"
else
    ok "fp-server stop stopped the server it started"
fi

# ---- a state file whose pid is now another program's ----
setsid sleep 600 &
victim=$!
vstart=$("$FP_HARNESS" stamp "$victim")
[ -n "$vstart" ] || die "no stamp for the stand-in (pid $victim)"
# fake_env DIR START: DIR/redis.env naming the stand-in's pid with START.
fake_env() {
    mkdir -p "$1"
    printf 'PORT=1\nPID=%s\nSTART=%s\nLOG=%s\n' "$victim" "$2" "$1/redis/redis.log" >"$1/redis.env"
}
# expect_spared NAME DIR: fp-server stop on DIR leaves the stand-in alone
# and says why.
expect_spared() {
    local err
    err=$("$FP_HARNESS" stop redis "$2" 2>&1 >/dev/null) || fail "$1: fp-server stop exited non-zero"
    sleep 0.2
    if ! gone "$victim"; then
        ok "$1: the process that has the pid now is not signalled"
    else
        die "$1: fp-server stop killed pid $victim, which is not its server"
    fi
    case "$err" in
    *"is not the server started there"*) ok "$1: the stop says so" ;;
    *) fail "$1: the stop said: $err" ;;
    esac
}
fake_env "$t/reboot" "00000000-0000-0000-0000-000000000000/${vstart##*/}"
expect_spared "recorded in another boot" "$t/reboot"
fake_env "$t/reused" "$boot/$((${vstart##*/} - 1))"
expect_spared "the pid reused in this boot" "$t/reused"

# tools/stack status reads run/ beside its tools: a copy of them, with a
# run/redis.env naming the stand-in.
mkdir -p "$t/clone/tools" "$t/clone/run"
cp "$FP_SOURCE_DIR/tools/stack" "$FP_SOURCE_DIR/tools/fp-server" "$t/clone/tools/"
printf 'PORT=1\nPID=%s\nSTART=%s\nLOG=x\n' "$victim" "$boot/$((${vstart##*/} - 1))" \
    >"$t/clone/run/redis.env"
line=$("$t/clone/tools/stack" status 2>&1 | grep -m1 '^  redis ' || true)
case "$line" in
*" down "*) ok "tools/stack status: redis down, not up as pid $victim ($line)" ;;
*) fail "tools/stack status said: ${line:-(no redis line)}" ;;
esac
printf 'PORT=1\nPID=%s\nSTART=%s\nLOG=x\n' "$victim" "$vstart" >"$t/clone/run/redis.env"
line=$("$t/clone/tools/stack" status 2>&1 | grep -m1 '^  redis ' || true)
case "$line" in
*" up $victim "*) ok "tools/stack status: up when the stamp matches ($line)" ;;
*) fail "tools/stack status, stamp matching, said: ${line:-(no redis line)}" ;;
esac

# ---- the stamp matches: the stop signals the group as before ----
fake_env "$t/match" "$vstart"
"$FP_HARNESS" stop redis "$t/match" 2>/dev/null || fail "fp-server stop (stamp matching) exited non-zero"
for _ in $(seq 1 50); do
    gone "$victim" && break
    sleep 0.1
done
if ! gone "$victim"; then
    fail "fp-server stop did not signal the process its file names (stamp matching)"
else
    ok "the stamp matching, fp-server stop signals the process group"
    victim=""
fi

# ---- an interrupted start ----
# A stand-in for feed-bridge that never says it runs: the start waits for
# it until the TERM (a test's background job ignores SIGINT, so TERM
# stands in for Ctrl-C; the trap is the same).
printf '#!/bin/sh\nexec sleep 600\n' >"$t/never-ready"
chmod +x "$t/never-ready"
: >"$t/bridge.conf"
"$FP_HARNESS" start bridge "$t/int" --config "$t/bridge.conf" --bin "$t/never-ready" \
    --no-watchdog 2>"$t/int.err" &
starter=$!
marked() { grep -lzs "^FEEDPUSH_HARNESS=$t/int/bridge" /proc/[0-9]*/environ 2>/dev/null || true; }
for _ in $(seq 1 100); do
    [ -n "$(marked)" ] && break
    sleep 0.05
done
[ -n "$(marked)" ] || die "the never-ready stand-in did not start"
kill -TERM "$starter"
rc=0
wait "$starter" || rc=$?
if [ "$rc" -eq 130 ] && grep -q "start interrupted" "$t/int.err"; then
    ok "an interrupted start fails (exit 130) and says so"
else
    fail "an interrupted start exited $rc: $(cat "$t/int.err")"
fi
left=$(marked)
if [ -z "$left" ]; then
    ok "an interrupted start leaves no server running"
else
    fail "an interrupted start left running: $left"
    for f in $left; do
        f=${f#/proc/}
        kill -KILL "${f%%/*}" 2>/dev/null || true
    done
fi
[ ! -e "$t/int/bridge.env" ] || fail "an interrupted start left bridge.env"
verdict
