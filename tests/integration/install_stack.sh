#!/usr/bin/env bash
# The installed feedpush, and nothing else: `cmake --install` into a temp
# DESTDIR (prefix /usr) must give the layout and the /usr and /etc paths a
# package has; `cmake --install --prefix <temp>` must give a tree the whole
# stack runs from: mosquitto loading the installed feed_auth.so with the
# installed snippet, feed-bridge and feed-gateway from the installed bin/
# with the installed configs (ports and the test's vhost come from the
# environment, FEEDPUSH_*), the page and MQTT.js from the installed www.
# Then the installed feedctl posts and reads a follower's feed, and the
# browser test (tests/browser/feed_e2e.mjs, headless Chromium) runs
# against the installed gateway: the page loads, a post reaches a follower
# over WebSockets live.
#
# Run by ctest with FP_BUILD_DIR, FP_SOURCE_DIR, FP_HARNESS (tools/fp-server),
# FP_TEST_TMP and, in the sanitizer build, FP_MOSQUITTO_PRELOAD.
set -euo pipefail

# shellcheck source=ft_check.sh
. "$(dirname "$0")/ft_check.sh"

# The brokers drop to their own users: the tree lives where they can read.
t=$(ft_tmp install)
ft_stop_at_exit "$t"

# ---- 1. DESTDIR, prefix /usr: the package's layout and paths ----
dd=$t/destdir
DESTDIR=$dd cmake --install "$FP_BUILD_DIR" --prefix /usr >"$t/install-destdir.log" 2>&1 ||
    die "cmake --install with DESTDIR failed: $(tail -3 "$t/install-destdir.log")"
for f in usr/bin/feed-bridge usr/bin/feed-gateway usr/bin/feedctl usr/lib/feedpush/feed_auth.so \
    usr/share/feedpush/www/index.html usr/share/feedpush/www/app.js usr/share/feedpush/www/style.css \
    usr/share/feedpush/www/vendor/mqtt.min.js etc/feedpush/bridge.conf etc/feedpush/gateway.conf \
    etc/feedpush/mosquitto/feedpush.conf lib/systemd/system/feed-bridge.service \
    lib/systemd/system/feed-gateway.service usr/share/doc/feedpush/copyright \
    usr/share/man/man8/feed-bridge.8.gz usr/share/man/man1/feedctl.1.gz; do
    [ -s "$dd/$f" ] || fail "DESTDIR install lacks /$f"
done
# expect_line FILE LINE: FILE has exactly this line.
expect_line() {
    if grep -qxF -- "$2" "$1"; then
        ok "${1#"$t/"}: $2"
    else
        fail "${1#"$t/"} has no line \"$2\""
    fi
}
expect_line "$dd/etc/feedpush/mosquitto/feedpush.conf" "plugin /usr/lib/feedpush/feed_auth.so"
expect_line "$dd/etc/feedpush/mosquitto/feedpush.conf" "plugin_opt_key_file /etc/feedpush/jwt.secret"
expect_line "$dd/etc/feedpush/gateway.conf" "www_dir /usr/share/feedpush/www"
expect_line "$dd/etc/feedpush/gateway.conf" "mqtt_js_dir /usr/share/feedpush/www/vendor"
expect_line "$dd/etc/feedpush/bridge.conf" "jwt_signing_key /etc/feedpush/jwt.secret"
expect_line "$dd/lib/systemd/system/feed-bridge.service" \
    "ExecStart=/usr/bin/feed-bridge -c /etc/feedpush/bridge.conf"
expect_line "$dd/lib/systemd/system/feed-gateway.service" \
    "ExecStart=/usr/bin/feed-gateway -c /etc/feedpush/gateway.conf"
for b in feed-bridge feed-gateway feedctl; do
    v=$("$dd/usr/bin/$b" --version 2>&1) || fail "$b --version exited non-zero"
    case "$v" in "$b "[0-9]*.[0-9]*.[0-9]*) ok "$b --version: $v" ;; *) fail "$b --version said: $v" ;; esac
done
# A key file a daemon cannot read is a bad configuration: exit 2, which
# the units do not restart on (RestartPreventExitStatus=2).
# bad_key DAEMON CONF KEY: DAEMON run with KEY in CONF naming no file.
bad_key() {
    local rc=0
    sed "s|^$3 .*|$3 $t/no-such-key|" "$dd/etc/feedpush/$2" >"$t/$1-badkey.conf"
    timeout 30 "$dd/usr/bin/$1" -c "$t/$1-badkey.conf" 2>"$t/$1-badkey.log" || rc=$?
    if [ "$rc" -eq 2 ] && grep -q "jwt key file $t/no-such-key: No such file or directory" "$t/$1-badkey.log"; then
        ok "$1 with an unreadable $3 exits 2, naming it"
    else
        fail "$1 with an unreadable $3: exit $rc, $(cat "$t/$1-badkey.log")"
    fi
}
bad_key feed-bridge bridge.conf jwt_signing_key
bad_key feed-gateway gateway.conf jwt_key

# Installing again (an upgrade): a config nobody edited since the last
# install (it is still its pristine copy in share/feedpush/conf/) is
# replaced; an edited one is kept, the new one beside it as .dist. An
# older version is made by adding the same line to bridge.conf and its
# pristine copy; an edit by adding one to gateway.conf alone.
pristine=$dd/usr/share/feedpush/conf
echo "# an older version" | tee -a "$dd/etc/feedpush/bridge.conf" >>"$pristine/bridge.conf"
echo "# the operator's edit" >>"$dd/etc/feedpush/gateway.conf"
DESTDIR=$dd cmake --install "$FP_BUILD_DIR" --prefix /usr >"$t/install-again.log" 2>&1 ||
    die "cmake --install again failed: $(tail -3 "$t/install-again.log")"
if ! grep -q "older version" "$dd/etc/feedpush/bridge.conf" && [ ! -e "$dd/etc/feedpush/bridge.conf.dist" ] &&
    cmp -s "$dd/etc/feedpush/bridge.conf" "$pristine/bridge.conf"; then
    ok "an unedited bridge.conf is replaced at a second install"
else
    fail "an unedited bridge.conf was not replaced: $(grep bridge.conf "$t/install-again.log")"
fi
if grep -q "the operator's edit" "$dd/etc/feedpush/gateway.conf" &&
    cmp -s "$dd/etc/feedpush/gateway.conf.dist" "$pristine/gateway.conf"; then
    ok "an edited gateway.conf is kept, the new one written as gateway.conf.dist"
else
    fail "an edited gateway.conf was not kept beside a .dist: $(grep gateway.conf "$t/install-again.log")"
fi

# ---- 2. --prefix <temp>: the tree the stack runs from ----
P=$t/prefix
cmake --install "$FP_BUILD_DIR" --prefix "$P" >"$t/install-prefix.log" 2>&1 ||
    die "cmake --install --prefix failed: $(tail -3 "$t/install-prefix.log")"
# Nothing installed may point back into the source or build tree.
if grep -rlF -e "$FP_SOURCE_DIR" -e "$FP_BUILD_DIR" "$P/etc" "$P/lib/systemd" "$P/share/feedpush" \
    "$dd/etc" "$dd/lib" >"$t/leaks" 2>/dev/null; then
    fail "installed files name the source or build tree: $(tr '\n' ' ' <"$t/leaks")"
else
    ok "no installed config, unit or page names the source or build tree"
fi
expect_line "$P/etc/feedpush/mosquitto/feedpush.conf" "plugin $P/lib/feedpush/feed_auth.so"
expect_line "$P/etc/feedpush/gateway.conf" "www_dir $P/share/feedpush/www"
[ "$failures" -eq 0 ] || die "$failures layout check(s) failed; the stack is not started"

# The operator's part: the key the configs name, and free ports.
head -c 48 /dev/urandom | base64 -w0 >"$P/etc/feedpush/jwt.secret"
chmod 644 "$P/etc/feedpush/jwt.secret"
mq=$(free_port)
ws=$(free_port)
hp=$(free_port)
[ "$mq" != "$ws" ] && [ "$ws" != "$hp" ] && [ "$mq" != "$hp" ] || die "free ports collided, run again"

"$FP_HARNESS" start redis "$t" >/dev/null || die "redis did not start"
rport=$(sed -n 's/^PORT=//p' "$t/redis.env")
shared=$FP_TEST_TMP/shared
vhost=install-$$
"$FP_HARNESS" vhost "$shared" "$vhost" >/dev/null || die "no vhost $vhost in the shared RabbitMQ"
aport=$(sed -n 's/^PORT=//p' "$shared/rabbitmq.env")

# The broker: a few broker-wide lines of the test's own, then the installed
# snippet with this run's ports (what an operator edits); its paths stay.
{
    printf 'per_listener_settings false\npersistence false\nlog_dest stderr\n'
    printf 'log_type error\nlog_type warning\nlog_type notice\nlog_type information\n'
    sed -e "s|^listener 1883 |listener $mq |" -e "s|^listener 9001 |listener $ws |" \
        -e "s|^plugin_opt_redis_port .*|plugin_opt_redis_port $rport|" \
        -e "s|^plugin_opt_session_file .*|plugin_opt_session_file ./feedpush-sessions|" \
        -e "s|^plugin_opt_revocation_file .*|plugin_opt_revocation_file ./feedpush-revocations|" \
        "$P/etc/feedpush/mosquitto/feedpush.conf"
} >"$t/mosquitto.conf"
"$FP_HARNESS" start mosquitto "$t" --port "$mq" --ws-port "$ws" --config "$t/mosquitto.conf" \
    >/dev/null || die "mosquitto did not start with the installed plugin: $(tail -5 "$t/mosquitto/mosquitto.log")"
mpid=$(sed -n 's/^PID=//p' "$t/mosquitto.env")
if grep -qF "$P/lib/feedpush/feed_auth.so" "/proc/$mpid/maps"; then
    ok "mosquitto runs the installed $P/lib/feedpush/feed_auth.so"
else
    fail "mosquitto did not map $P/lib/feedpush/feed_auth.so"
fi

export FEEDPUSH_AMQP_PORT=$aport FEEDPUSH_AMQP_VHOST=$vhost FEEDPUSH_REDIS_PORT=$rport
FEEDPUSH_MQTT_PORT=$mq "$FP_HARNESS" start bridge "$t" --config "$P/etc/feedpush/bridge.conf" \
    --bin "$P/bin/feed-bridge" >/dev/null || die "feed-bridge did not start: $(tail -5 "$t/bridge/bridge.log")"
FEEDPUSH_MQTT_WS_URLS=ws://127.0.0.1:$ws/mqtt FEEDPUSH_DEV_MODE=on \
    FEEDPUSH_JWT_SIGNING_KEY=$P/etc/feedpush/jwt.secret FEEDPUSH_DEV_TOKEN_TTL=300 \
    "$FP_HARNESS" start gateway "$t" --port "$hp" --config "$P/etc/feedpush/gateway.conf" \
    --bin "$P/bin/feed-gateway" >/dev/null || die "feed-gateway did not start: $(tail -5 "$t/gateway/gateway.log")"
for k in bridge gateway; do
    pid=$(sed -n 's/^PID=//p' "$t/$k.env")
    exe=$(readlink "/proc/$pid/exe")
    if [ "$exe" = "$P/bin/feed-$k" ]; then ok "feed-$k runs from $exe"; else fail "feed-$k runs $exe"; fi
done

url=http://127.0.0.1:$hp
if curl -fsS "$url/vendor/mqtt.min.js" | cmp -s - "$P/share/feedpush/www/vendor/mqtt.min.js"; then
    ok "the gateway serves the installed MQTT.js"
else
    fail "GET /vendor/mqtt.min.js is not the installed MQTT.js"
fi

# The installed feedctl: b follows a, a posts, the post is in b's feed.
fc=("$P/bin/feedctl" --url "$url" --key "$P/etc/feedpush/jwt.secret")
a=ia$$ b=ib$$
"${fc[@]}" --as "$b" follow "$a" >/dev/null || fail "feedctl follow failed"
"${fc[@]}" --as "$a" post "installed post $$" >/dev/null || fail "feedctl post failed"
seen=0
for _ in $(seq 1 100); do
    if "${fc[@]}" --as "$b" feed 2>/dev/null | grep -qF "installed post $$"; then
        seen=1
        break
    fi
    sleep 0.1
done
if [ $seen -eq 1 ]; then ok "the post is in the follower's feed"; else fail "the post never reached $b's feed"; fi

# The browser test against the installed gateway and page.
if FP_GATEWAY_URL=$url FP_SHOTS_DIR=$t/shots FP_RUN_ID=i$$ \
    node "$FP_SOURCE_DIR/tests/browser/feed_e2e.mjs" >"$t/browser.log" 2>&1; then
    sed 's/^/    /' "$t/browser.log"
    ok "the browser test passed against the installed page"
else
    sed 's/^/    /' "$t/browser.log"
    fail "the browser test failed against the installed page"
    # What the daemons said meanwhile: the files go with the machine.
    for f in bridge/bridge.log gateway/gateway.log mosquitto/mosquitto.log; do
        echo "    --- the last lines of $f"
        tail -n 25 "$t/$f" 2>/dev/null | sed 's/^/    /' || true
    done
fi

verdict
