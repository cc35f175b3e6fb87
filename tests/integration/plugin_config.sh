#!/usr/bin/env bash
# feed_auth.so refuses to start with a bad configuration: mosquitto must
# exit (non-zero) with one clear log line, never run as an open broker.
# With per_listener_settings true (which the plugin cannot see) it refuses
# connects once it is clear that the broker sends it no tick.
# Run by ctest with FP_PLUGIN (the built plugin), FP_FEEDCTL, FP_HARNESS,
# FP_TEST_TMP and, in the sanitizer build, FP_MOSQUITTO_PRELOAD.
set -euo pipefail

# mosquitto drops to its own user before it loads the plugin and reads the
# key file: both must be where that user can reach them, whatever the
# clone's location. FP_TEST_TMP's real directory is (tools/fp-server
# root-up); the build tree may not be, so the plugin is copied there.
dir=$(mktemp -d "$(readlink -f "$FP_TEST_TMP")/plugin-config.XXXXXX")
chmod 755 "$dir"
cp "$FP_PLUGIN" "$dir/feed_auth.so"
chmod 644 "$dir/feed_auth.so"
FP_PLUGIN=$dir/feed_auth.so
head -c 48 /dev/urandom | base64 -w0 >"$dir/secret"
printf 'short\n' >"$dir/short"
chmod 644 "$dir/secret" "$dir/short"
failures=0
free_port() { "$FP_HARNESS" port; }
pre=()
[ -n "${FP_MOSQUITTO_PRELOAD:-}" ] && pre=(env "LD_PRELOAD=$FP_MOSQUITTO_PRELOAD")

# expect_refusal NAME EXPECTED-TEXT OPTION-LINES: the broker must exit
# within 10 s, non-zero, and its output must contain EXPECTED-TEXT.
expect_refusal() {
    local name=$1 want=$2 opts=$3 rc=0
    {
        echo "listener $((20000 + RANDOM % 40000)) 127.0.0.1"
        echo "plugin $FP_PLUGIN"
        printf '%b\n' "$opts"
    } >"$dir/$name.conf"
    FEEDPUSH_HARNESS="$dir/mosquitto" timeout 10 "${pre[@]}" mosquitto -c "$dir/$name.conf" \
        >"$dir/$name.log" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then
        echo "FAIL $name: broker did not refuse to start (exit $rc)"
        failures=$((failures + 1))
    elif ! grep -qF -- "$want" "$dir/$name.log"; then
        echo "FAIL $name: exit $rc but no line containing: $want"
        sed 's/^/    /' "$dir/$name.log"
        failures=$((failures + 1))
    else
        echo "ok   $name: $(grep -F -- "$want" "$dir/$name.log" | head -1 | cut -c1-150)"
    fi
}

good="plugin_opt_alg HS256\nplugin_opt_key_file $dir/secret\nplugin_opt_node_id n1"
expect_refusal missing_key_file 'required option "plugin_opt_key_file" is not set' \
    "plugin_opt_alg HS256\nplugin_opt_node_id n1"
expect_refusal missing_alg 'required option "plugin_opt_alg" is not set' \
    "plugin_opt_key_file $dir/secret\nplugin_opt_node_id n1"
expect_refusal missing_node_id 'required option "plugin_opt_node_id" is not set' \
    "plugin_opt_alg HS256\nplugin_opt_key_file $dir/secret"
expect_refusal alg_none 'plugin_opt_alg "none" is not HS256, RS256 or ES256' \
    "plugin_opt_alg none\nplugin_opt_key_file $dir/secret\nplugin_opt_node_id n1"
expect_refusal unreadable_key "$dir/missing.pem: No such file or directory" \
    "plugin_opt_alg HS256\nplugin_opt_key_file $dir/missing.pem\nplugin_opt_node_id n1"
expect_refusal short_secret 'need at least 32' \
    "plugin_opt_alg HS256\nplugin_opt_key_file $dir/short\nplugin_opt_node_id n1"
expect_refusal rs256_with_secret "$dir/secret" \
    "plugin_opt_alg RS256\nplugin_opt_key_file $dir/secret\nplugin_opt_node_id n1"
expect_refusal unknown_option 'plugin_opt_redis_hots: unknown key "redis_hots"' \
    "$good\nplugin_opt_redis_hots 127.0.0.1"
expect_refusal bad_node_id 'plugin_opt_node_id: "a/b" is not a valid id' \
    "plugin_opt_alg HS256\nplugin_opt_key_file $dir/secret\nplugin_opt_node_id a/b"
expect_refusal bad_port 'plugin_opt_redis_port: redis_port: 70000 is out of range 1..65535' \
    "$good\nplugin_opt_redis_port 70000"
expect_refusal bad_leeway 'plugin_opt_leeway: leeway: "soon" is not an integer' \
    "$good\nplugin_opt_leeway soon"
expect_refusal bad_save_interval \
    'plugin_opt_session_save_interval: session_save_interval: -1 is out of range 0..86400' \
    "$good\nplugin_opt_session_save_interval -1"
expect_refusal bad_sentinels 'redis_sentinels/redis_master_name: "s1:0" is not host or host:port' \
    "$good\nplugin_opt_redis_sentinels s1:0"
expect_refusal bad_master_name 'the master name may not hold spaces' \
    "$good\nplugin_opt_redis_sentinels s1\nplugin_opt_redis_master_name a\tb"
expect_refusal same_state_file \
    'plugin_opt_session_file and plugin_opt_revocation_file are the same file' \
    "$good\nplugin_opt_session_file $dir/state\nplugin_opt_revocation_file $dir/state"
# The same file under another spelling (the files need not exist yet).
mkdir -p "$dir/sub"
expect_refusal same_state_file_spelled \
    'plugin_opt_session_file and plugin_opt_revocation_file are the same file' \
    "$good\nplugin_opt_session_file $dir//sub/../state2\nplugin_opt_revocation_file $dir/state2"
ln -s "$dir/sub" "$dir/link"
expect_refusal same_state_file_linked \
    'plugin_opt_session_file and plugin_opt_revocation_file are the same file' \
    "$good\nplugin_opt_session_file $dir/link/state3\nplugin_opt_revocation_file $dir/sub/state3"
# One the other's temporary file: each write of one deletes the other.
expect_refusal state_file_is_temp \
    "is the other's temporary file" \
    "$good\nplugin_opt_session_file $dir/state4\nplugin_opt_revocation_file $dir/state4.tmp"
expect_refusal state_file_is_temp_other_way \
    "is the other's temporary file" \
    "$good\nplugin_opt_session_file $dir/sub/../state5.tmp\nplugin_opt_revocation_file $dir/state5"

# per_listener_settings true: mosquitto 2.0.11 sends plugins no tick, so
# the plugin could never kick an expired or revoked token. The broker
# starts (nothing in the configuration tells the plugin), serves for
# 5 s after its first connect, and refuses every connect from then on,
# with one error line.
port=$(free_port)
{
    echo "per_listener_settings true"
    echo "listener $port 127.0.0.1"
    echo "plugin $FP_PLUGIN"
    printf '%b\n' "$good"
} >"$dir/per_listener.conf"
FEEDPUSH_HARNESS="$dir/mosquitto" "${pre[@]}" mosquitto -c "$dir/per_listener.conf" \
    >"$dir/per_listener.log" 2>&1 &
broker=$!
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done
tok=$("$FP_FEEDCTL" token pl --key "$dir/secret" --ttl 600)
# connects NAME: does user pl connect (and publish, which its ACL drops)?
connects() {
    mosquitto_pub -h 127.0.0.1 -p "$port" -V mqttv311 -i "pl-$1" -u pl -P "$tok" -t feed/pl \
        -m x >"$dir/per_listener.$1" 2>&1
}
no_tick_line="has sent no tick in 5 s of connects (per_listener_settings true?)"
if connects first; then
    echo "ok   per_listener_settings: the first connect is served"
else
    echo "FAIL per_listener_settings: the first connect failed: $(cat "$dir/per_listener.first")"
    failures=$((failures + 1))
fi
sleep 5.5
if connects later; then
    echo "FAIL per_listener_settings: a connect 5.5 s later was still served"
    failures=$((failures + 1))
elif grep -qF -- "$no_tick_line" "$dir/per_listener.log" &&
    [ "$(grep -cF -- "$no_tick_line" "$dir/per_listener.log")" -eq 1 ]; then
    echo "ok   per_listener_settings: later connects refused, said once: $(grep -F -- "$no_tick_line" "$dir/per_listener.log" | cut -c1-150)"
else
    echo "FAIL per_listener_settings: refused, but the log has no single line: $no_tick_line"
    sed 's/^/    /' "$dir/per_listener.log"
    failures=$((failures + 1))
fi
connects again || true
[ "$(grep -cF -- "$no_tick_line" "$dir/per_listener.log")" -eq 1 ] || {
    echo "FAIL per_listener_settings: the no-tick error was logged more than once"
    failures=$((failures + 1))
}
kill "$broker" 2>/dev/null || true
wait "$broker" 2>/dev/null || true

if [ "$failures" -ne 0 ]; then
    echo "$failures configuration case(s) failed"
    exit 1
fi
echo "every bad configuration was refused"
