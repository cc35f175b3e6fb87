#!/usr/bin/env bash
# TLS on every hop that carries a user's data, with a CA this test makes
# (tools/mkcerts; the server certificate names DNS:localhost only):
#
#   RabbitMQ with an amqps listener (fp-server --tls); mosquitto with the
#   shipped mosquitto.conf's commented TLS listeners (MQTT 8883-style and
#   secure WebSockets 8443-style) switched on, and no plain listener;
#   feed-bridge consuming and publishing over amqps and publishing to the
#   broker over TLS; feed-gateway serving HTTPS and publishing over amqps.
#
# Checks: mosquitto_sub --cafile over TLS and MQTT.js over wss:// receive
# a post made with feedctl over https; a client trusting another CA is
# refused (mosquitto_sub, MQTT.js, feedctl, and the gateway's amqps link);
# a name that does not match the certificate (127.0.0.1) is refused
# (mosquitto_sub, feedctl, the gateway's amqps link); the browser test
# passes over https + wss, Chromium trusting the test CA through an NSS
# database of the test's own.
#
# Run by ctest with FP_SOURCE_DIR, FP_HARNESS, FP_TEST_TMP, FP_PLUGIN,
# FP_BRIDGE, FP_GATEWAY, FP_FEEDCTL and FP_MOSQUITTO_PRELOAD.
set -euo pipefail

# shellcheck source=ft_check.sh
. "$(dirname "$0")/ft_check.sh"

t=$(ft_tmp tls)
ft_stop_at_exit "$t"
src=$FP_SOURCE_DIR

"$src/tools/mkcerts" "$t/pki" DNS:localhost >/dev/null || die "tools/mkcerts failed"
"$src/tools/mkcerts" "$t/other" DNS:localhost >/dev/null || die "tools/mkcerts (other CA) failed"
ca=$t/pki/ca.crt
other=$t/other/ca.crt
head -c 48 /dev/urandom | base64 -w0 >"$t/secret"
chmod 644 "$t/secret"
mqtts=$(free_port)
wss=$(free_port)
hp=$(free_port)
hp2=$(free_port)
[ "$(printf '%s\n' "$mqtts" "$wss" "$hp" "$hp2" | sort -u | wc -l)" -eq 4 ] || die "free ports collided, run again"

"$FP_HARNESS" start redis "$t" >/dev/null || die "redis did not start"
rport=$(sed -n 's/^PORT=//p' "$t/redis.env")
"$FP_HARNESS" start rabbitmq "$t" --tls "$t/pki" >/dev/null ||
    die "rabbitmq with TLS did not start: $(tail -5 "$t/rabbitmq/rabbitmq.log")"
aport=$(sed -n 's/^TLS_PORT=//p' "$t/rabbitmq.env")
[ -n "$aport" ] || die "rabbitmq.env has no TLS_PORT"

# The broker: the shipped config with its TLS listeners switched on, the
# plain ones dropped, this run's ports, certificate, plugin and key.
sed -e '/^listener 1883 /,/^protocol/d' -e '/^listener 9001 /,/^protocol/d' \
    -e "s|^#listener 8883\$|listener $mqtts 127.0.0.1|" -e "s|^#listener 8443\$|listener $wss 127.0.0.1|" \
    -e 's/^#\(protocol\|certfile\|keyfile\|tls_version\) /\1 /' \
    -e "s|/etc/feedpush/tls/broker.crt|$t/pki/server.crt|" -e "s|/etc/feedpush/tls/broker.key|$t/pki/server.key|" \
    -e "s|^plugin /.*|plugin $FP_PLUGIN|" -e "s|^plugin_opt_key_file .*|plugin_opt_key_file $t/secret|" \
    -e "s|^plugin_opt_redis_port .*|plugin_opt_redis_port $rport|" \
    -e "s|^plugin_opt_session_file .*|plugin_opt_session_file ./feedpush-sessions|" \
    -e "s|^plugin_opt_revocation_file .*|plugin_opt_revocation_file ./feedpush-revocations|" \
    "$src/mosquitto.conf" >"$t/mosquitto.conf"
n=$(grep -c '^listener ' "$t/mosquitto.conf")
[ "$n" -eq 2 ] || die "expected the 2 TLS listeners in the rendered mosquitto.conf, got $n"
"$FP_HARNESS" start mosquitto "$t" --port "$mqtts" --ws-port "$wss" --config "$t/mosquitto.conf" \
    >/dev/null || die "mosquitto with TLS listeners did not start: $(tail -5 "$t/mosquitto/mosquitto.log")"
ok "mosquitto runs the shipped TLS listeners (mqtt $mqtts, websockets $wss)"

export FEEDPUSH_AMQP_HOST=localhost FEEDPUSH_AMQP_PORT=$aport FEEDPUSH_AMQP_TLS=on \
    FEEDPUSH_AMQP_TLS_CA=$ca FEEDPUSH_REDIS_PORT=$rport
FEEDPUSH_MQTT_HOST=localhost FEEDPUSH_MQTT_PORT=$mqtts FEEDPUSH_MQTT_TLS=on FEEDPUSH_MQTT_TLS_CA=$ca \
    FEEDPUSH_JWT_SIGNING_KEY=$t/secret \
    "$FP_HARNESS" start bridge "$t" --config "$src/conf/bridge.conf" --bin "$FP_BRIDGE" >/dev/null ||
    die "feed-bridge over amqps and TLS did not start: $(tail -5 "$t/bridge/bridge.log")"
ok "feed-bridge is connected over amqps (port $aport) and TLS to the broker"

# gateway DIR PORT [VAR=VALUE...]: a feed-gateway serving HTTPS.
gateway() {
    local d=$1 port=$2
    shift 2
    env "$@" FEEDPUSH_TLS_CERT="$t/pki/server.crt" FEEDPUSH_TLS_KEY="$t/pki/server.key" \
        FEEDPUSH_JWT_KEY="$t/secret" FEEDPUSH_JWT_SIGNING_KEY="$t/secret" FEEDPUSH_DEV_MODE=on \
        FEEDPUSH_WWW_DIR="$src/gateway/www" FEEDPUSH_MQTT_JS_DIR="$src/node_modules/mqtt/dist" \
        FEEDPUSH_MQTT_WS_URLS="wss://localhost:$wss/mqtt" \
        "$FP_HARNESS" start gateway "$d" --port "$port" --config "$src/conf/gateway.conf" --bin "$FP_GATEWAY"
}
gateway "$t" "$hp" >/dev/null || die "feed-gateway with HTTPS did not start: $(tail -5 "$t/gateway/gateway.log")"
url=https://localhost:$hp

# healthz URL CAFILE: the body of GET /healthz (any status).
healthz() { curl -sS --cacert "$2" "$1/healthz" 2>&1 || true; }
for _ in $(seq 1 50); do
    case "$(healthz "$url" "$ca")" in *'"status":"ok"'*) break ;; esac
    sleep 0.1
done
h=$(healthz "$url" "$ca")
case "$h" in *'"status":"ok"'*) ok "the gateway answers over https, its amqps link is up: $h" ;;
*) fail "GET $url/healthz: $h" ;; esac

fc=("$FP_FEEDCTL" --url "$url" --cacert "$ca" --key "$t/secret")
a=ta$$ b=tb$$
if "${fc[@]}" --as "$b" follow "$a" >/dev/null; then ok "feedctl over https: $b follows $a"; else fail "feedctl follow over https"; fi

# The two listeners: mosquitto_sub over TLS and MQTT.js over wss, both
# subscribed before the post is made.
token=$("$FP_FEEDCTL" token "$b" --key "$t/secret")
# -d prints "received SUBACK"; stdbuf keeps it from waiting in a buffer.
stdbuf -oL mosquitto_sub -d -h localhost -p "$mqtts" --cafile "$ca" -u "$b" -P "$token" -i "sub-$b" -q 1 \
    -t "feed/$b" -C 1 -W 30 >"$t/sub.out" 2>&1 &
sub_pid=$!
node "$src/tests/tools/mqtt-ws-client.mjs" --url "wss://localhost:$wss/mqtt" --ca "$ca" \
    --username "$b" --password "$token" --client-id "ws-$b" --subscribe "feed/$b" --expect 1 \
    --timeout-ms 30000 --ready-file "$t/ws.ready" >"$t/ws.out" 2>&1 &
ws_pid=$!
for _ in $(seq 1 200); do
    grep -q 'received SUBACK' "$t/sub.out" 2>/dev/null && [ -e "$t/ws.ready" ] && break
    kill -0 "$sub_pid" 2>/dev/null && kill -0 "$ws_pid" 2>/dev/null || break
    sleep 0.1
done
grep -q 'received SUBACK' "$t/sub.out" || fail "mosquitto_sub over TLS did not subscribe: $(tail -3 "$t/sub.out")"
[ -e "$t/ws.ready" ] || fail "MQTT.js over wss did not subscribe"
text="tls post $$"
if "${fc[@]}" --as "$a" post "$text" >/dev/null; then ok "feedctl over https: $a posted"; else fail "feedctl post over https"; fi
wait "$sub_pid" || true
wait "$ws_pid" || true
if grep -qF "$text" "$t/sub.out"; then ok "mosquitto_sub --cafile over TLS received the post"; else
    fail "mosquitto_sub over TLS did not receive the post: $(tail -3 "$t/sub.out")"; fi
if grep -qF "$text" "$t/ws.out"; then ok "MQTT.js over wss:// received the post"; else
    fail "MQTT.js over wss did not receive the post: $(cat "$t/ws.out")"; fi

# refused NAME CMD...: CMD must fail; its output is shown.
refused() {
    local name=$1 out rc=0
    shift
    out=$("$@" 2>&1) || rc=$?
    if [ $rc -ne 0 ]; then
        ok "$name refused: $(printf '%s' "$out" | tr '\n' ' ' | cut -c1-160)"
    else
        fail "$name was accepted: $(printf '%s' "$out" | tr '\n' ' ' | cut -c1-160)"
    fi
}
refused "mosquitto_sub trusting another CA" mosquitto_sub -h localhost -p "$mqtts" --cafile "$other" \
    -u "$b" -P "$token" -t "feed/$b" -C 1 -W 5
refused "mosquitto_sub to 127.0.0.1 (not the certificate's name)" mosquitto_sub -h 127.0.0.1 -p "$mqtts" \
    --cafile "$ca" -u "$b" -P "$token" -t "feed/$b" -C 1 -W 5
refused "feedctl trusting another CA" "$FP_FEEDCTL" --url "$url" --cacert "$other" --key "$t/secret" \
    --as "$a" feed
refused "feedctl to https://127.0.0.1 (not the certificate's name)" "$FP_FEEDCTL" \
    --url "https://127.0.0.1:$hp" --cacert "$ca" --key "$t/secret" --as "$a" feed
out=$(node "$src/tests/tools/mqtt-ws-client.mjs" --url "wss://localhost:$wss/mqtt" --ca "$other" \
    --username "$b" --password "$token" --timeout-ms 5000 2>&1 || true)
case "$out" in *'"connected":false'*) ok "MQTT.js trusting another CA refused: $(printf '%s' "$out" | cut -c1-160)" ;;
*) fail "MQTT.js trusting another CA: $out" ;; esac

# The amqps link refuses too: a gateway trusting another CA, and one that
# dials 127.0.0.1, stay unhealthy and say why.
# amqps_refused NAME DIR PORT WANT VAR=VALUE...
amqps_refused() {
    local name=$1 d=$2 port=$3 want=$4 h
    shift 4
    mkdir -p "$d"
    gateway "$d" "$port" "$@" >/dev/null || { fail "$name: the gateway did not start"; return; }
    for _ in $(seq 1 50); do
        grep -qF "$want" "$d/gateway/gateway.log" && break
        sleep 0.1
    done
    h=$(healthz "https://localhost:$port" "$ca")
    if ! grep -qF "$want" "$d/gateway/gateway.log"; then
        fail "$name: no \"$want\" in its log; healthz: $h"
    elif [[ "$h" != *'"rabbitmq":"down"'* ]]; then
        fail "$name: the log says \"$want\" but /healthz has rabbitmq up: $h"
    else
        ok "$name refused: $(grep -F "$want" "$d/gateway/gateway.log" | head -1 | cut -c1-160)"
    fi
    "$FP_HARNESS" stop-all "$d" >/dev/null || fail "$name: a server stopped with an error (above)"
}
amqps_refused "amqps trusting another CA" "$t/g-other" "$hp2" "peer cert verification failed" \
    FEEDPUSH_AMQP_TLS_CA="$other"
amqps_refused "amqps to 127.0.0.1 (not the certificate's name)" "$t/g-name" "$hp2" \
    "hostname verification failed" FEEDPUSH_AMQP_HOST=127.0.0.1

# The browser over https + wss: Chromium trusts the test CA through the NSS
# database in a HOME of its own; the script's own requests (node) through
# NODE_EXTRA_CA_CERTS.
if command -v certutil >/dev/null 2>&1; then
    home=$t/home
    mkdir -p "$home/.pki/nssdb"
    certutil -d "sql:$home/.pki/nssdb" -N --empty-password
    certutil -d "sql:$home/.pki/nssdb" -A -n "feedpush test CA" -t "C,," -i "$ca"
    if HOME=$home NODE_EXTRA_CA_CERTS=$ca FP_GATEWAY_URL=$url FP_SHOTS_DIR=$t/shots FP_RUN_ID=t$$ \
        node "$src/tests/browser/feed_e2e.mjs" >"$t/browser.log" 2>&1; then
        sed 's/^/    /' "$t/browser.log"
        ok "the browser test passed over https + wss"
    else
        sed 's/^/    /' "$t/browser.log"
        fail "the browser test failed over https + wss"
    fi
else
    fail "certutil is missing (libnss3-tools, tools/deps installs it): the browser cannot be given the CA"
fi

verdict
