# tools/bench-stack.sh: the whole stack for the script benchmarks
# (tools/gateway-bench, tools/ws-bench); sourced, not run.
#
#   bench_stack_up NAME
#
# Needs SERVER (tools/fp-server), BUILD (the build tree), KEEP (1 keeps
# the temp dir). Makes a temp dir (under FP_TEST_TMP when CTest set it),
# starts there through fp-server: redis-server, rabbitmq-server (under
# CTest: the run's, in a vhost of its own), mosquitto with feed_auth.so
# (plus the lines of BENCH_MOSQUITTO_EXTRA), feed-bridge and feed-gateway
# (plus the lines of BENCH_GATEWAY_EXTRA; no browser client) with a fresh
# HS256 secret. Sets ROOT, SRV, REDIS, AMQP, VHOST. At exit everything
# stops and the dir goes, unless KEEP=1 or the caller never set ok=1 (a
# failed run): then the logs stay and a line says where.
#
#   val KIND KEY    a KEY=value of a server's fp-server .env file

val() { sed -n "s/^$2=//p" "$SRV/$1.env"; }

# The EXIT trap: a server that stops with an error (fp-server shows a
# sanitizer report and exits 3) or processes left behind fail the run,
# whatever its own status was.
bench_stack_finish() {
    local rc=$?
    if ! "$SERVER" stop-all "$SRV" >/dev/null; then
        echo "$BENCH_NAME: a server stopped with an error (above)" >&2
        ok=0 rc=1
    fi
    if [ "$KEEP" = 1 ] || [ "$ok" != 1 ]; then
        "$SERVER" root-drop "$ROOT" --keep || rc=1
        echo "$BENCH_NAME: logs kept in $ROOT" >&2
    elif ! "$SERVER" root-drop "$ROOT"; then
        echo "$BENCH_NAME: processes were left behind" >&2
        rc=1
    fi
    exit $rc
}

bench_stack_up() {
    BENCH_NAME=$1
    local base=${FP_TEST_TMP:-${TMPDIR:-/tmp}}
    ROOT=$(mktemp -d "$base/feedpush-$BENCH_NAME.XXXXXX")
    chmod 755 "$ROOT" # rabbitmq and mosquitto run as their own users
    SRV=$ROOT/srv ok=0
    trap bench_stack_finish EXIT

    echo "$BENCH_NAME: starting redis, rabbitmq, mosquitto + feed_auth.so, feed-bridge, feed-gateway..." >&2
    "$SERVER" start redis "$SRV" >/dev/null
    REDIS=$(val redis PORT)
    VHOST=/
    if [ -n "${FP_TEST_TMP:-}" ] && [ -f "$FP_TEST_TMP/shared/rabbitmq.env" ]; then
        AMQP=$(sed -n 's/^PORT=//p' "$FP_TEST_TMP/shared/rabbitmq.env")
        VHOST=$BENCH_NAME-$$
        "$SERVER" vhost "$FP_TEST_TMP/shared" "$VHOST"
    else
        "$SERVER" start rabbitmq "$SRV" >/dev/null
        AMQP=$(val rabbitmq PORT)
    fi
    head -c 48 /dev/urandom | base64 -w0 >"$ROOT/jwt.secret"
    chmod 644 "$ROOT/jwt.secret"
    cat >"$ROOT/plugin.conf" <<CONF
${BENCH_MOSQUITTO_EXTRA:-}
plugin $BUILD/plugin/feed_auth.so
plugin_opt_alg HS256
plugin_opt_key_file $ROOT/jwt.secret
plugin_opt_node_id n1
plugin_opt_redis_host 127.0.0.1
plugin_opt_redis_port $REDIS
CONF
    "$SERVER" start mosquitto "$SRV" --conf "$ROOT/plugin.conf" >/dev/null
    cat >"$ROOT/bridge.conf" <<CONF
node_id n1
amqp_port $AMQP
amqp_vhost $VHOST
redis_port $REDIS
mqtt_port $(val mosquitto PORT)
jwt_signing_key $ROOT/jwt.secret
CONF
    "$SERVER" start bridge "$SRV" --config "$ROOT/bridge.conf" --bin "$BUILD/bridge/feed-bridge" >/dev/null
    cat >"$ROOT/gateway.conf" <<CONF
http_host 127.0.0.1
amqp_port $AMQP
amqp_vhost $VHOST
redis_port $REDIS
jwt_key $ROOT/jwt.secret
${BENCH_GATEWAY_EXTRA:-}
CONF
    # No browser client: only the API is used.
    FEEDPUSH_WWW_DIR="" FEEDPUSH_MQTT_JS_DIR="" \
        "$SERVER" start gateway "$SRV" --config "$ROOT/gateway.conf" --bin "$BUILD/gateway/feed-gateway" >/dev/null
}
