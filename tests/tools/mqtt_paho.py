#!/usr/bin/python3
"""mqtt_paho.py: a small MQTT client (Eclipse Paho, Debian's python3-paho-mqtt)
for the persistent-session integration tests. tests/tools/mqtt_js.mjs is
its MQTT.js twin, with the same options, output and exit codes.

Run it with Debian's /usr/bin/python3 (the shebang), which sees the package.

  mqtt_paho.py --url mqtt://HOST:PORT|ws://HOST:PORT[/PATH] --user U
      --password TOKEN --id CLIENT_ID [--version 3|5] [--clean 0|1]
      [--session-expiry S] [--topic T | --no-subscribe]
      [--expect N [--extra-wait MS] | --wait-kick | --subscribe-only]
      [--timeout S]

stdout, one line each: "CONNACK rc=<code> session_present=<0|1>",
"SUBACK qos=<granted>", "MSG <topic> <payload>", "DISCONNECT rc=<code>" (the
broker closed the connection: its v5 reason code, -1 for a plain close) and
"DONE received=<n>" last. Exit 0 ok, 2 timeout / too few messages, 3 CONNACK
refused, 4 any other error (on stderr).
"""
import argparse
import sys
import time
import urllib.parse

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes


class Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors exit 4, not argparse's 2
        self.print_usage(sys.stderr)
        sys.stderr.write(f"mqtt_paho: {message}\n")
        sys.exit(4)


def parse_args():
    p = Parser(description="MQTT test client (paho)")
    p.add_argument("--url", required=True)
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--id", required=True)
    p.add_argument("--version", type=int, choices=(3, 5), default=3)
    p.add_argument("--clean", type=int, choices=(0, 1), default=0)
    p.add_argument("--session-expiry", type=int, default=3600)
    p.add_argument("--topic")
    p.add_argument("--no-subscribe", action="store_true")
    p.add_argument("--expect", type=int, default=0)
    p.add_argument("--extra-wait", type=int, default=500)
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--wait-kick", action="store_true")
    p.add_argument("--subscribe-only", action="store_true")
    a = p.parse_args()
    if not a.no_subscribe and not a.topic:
        p.error("--topic is required unless --no-subscribe")
    return a


def out(line):
    print(line, flush=True)


def code(rc):
    """An int from paho's int or ReasonCodes."""
    return rc.value if hasattr(rc, "value") else int(rc)


class State:
    connack = None        # the CONNACK code once it came
    subacked = False
    received = 0
    closed = False        # the network connection is gone
    closing = False       # we asked for it
    server_rc = None      # reason code of a v5 DISCONNECT from the broker


def main():
    a = parse_args()
    url = urllib.parse.urlsplit(a.url)
    if url.scheme not in ("mqtt", "tcp", "ws") or not url.hostname:
        sys.stderr.write(f"mqtt_paho: unsupported --url {a.url}\n")
        return 4
    ws = url.scheme == "ws"
    v5 = a.version == 5
    st = State()

    kw = {"client_id": a.id, "protocol": mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
          "transport": "websockets" if ws else "tcp"}
    if not v5:
        kw["clean_session"] = bool(a.clean)
    if hasattr(mqtt, "CallbackAPIVersion"):  # paho 2.x: keep 1.x callbacks
        kw["callback_api_version"] = mqtt.CallbackAPIVersion.VERSION1
    c = mqtt.Client(**kw)
    if ws:
        c.ws_set_options(path=url.path or "/")
    if a.user is not None:
        c.username_pw_set(a.user, a.password)

    # Paho (1.6 and 2.x) only parses a v5 DISCONNECT's reason code when
    # properties follow it, so a bare "152" would come out as a lost
    # connection: note the code from the raw packet body before paho sees it.
    handle_disconnect = c._handle_disconnect

    def peek_disconnect():
        pkt = c._in_packet
        body = pkt["packet"] if isinstance(pkt, dict) else pkt.packet
        st.server_rc = body[0] if len(body) else 0
        return handle_disconnect()
    c._handle_disconnect = peek_disconnect

    def on_connect(client, userdata, flags, rc, properties=None):
        st.connack = code(rc)
        sp = flags.get("session present", 0) if isinstance(flags, dict) else flags.session_present
        out(f"CONNACK rc={st.connack} session_present={int(bool(sp))}")
        st.closing = st.connack != 0  # a refusal's close is no DISCONNECT line

    def on_subscribe(client, userdata, mid, granted, properties=None):
        st.subacked = True
        out(f"SUBACK qos={code(granted[0])}")

    def on_message(client, userdata, msg):
        st.received += 1
        out(f"MSG {msg.topic} {msg.payload.decode('utf-8', 'replace')}")

    def on_disconnect(client, userdata, rc, properties=None):
        if st.closed:
            return
        st.closed = True
        if st.closing:
            return
        if st.server_rc is not None:
            rc = st.server_rc
        elif v5 and hasattr(rc, "value"):
            rc = rc.value
        else:
            rc = -1
        out(f"DISCONNECT rc={rc}")

    c.on_connect, c.on_subscribe = on_connect, on_subscribe
    c.on_message, c.on_disconnect = on_message, on_disconnect

    ckw = {"keepalive": 60}
    if v5:
        ckw["clean_start"] = bool(a.clean)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = a.session_expiry
        ckw["properties"] = props
    deadline = time.monotonic() + a.timeout

    def run_until(cond, until):
        while not cond() and not st.closed and time.monotonic() < until:
            c.loop(0.05)
        return cond()

    def finish(rc):
        if not st.closed:
            st.closing = True
            c.disconnect()
            run_until(lambda: st.closed, time.monotonic() + 2)
        out(f"DONE received={st.received}")
        return rc

    try:
        c.connect(url.hostname, url.port or (80 if ws else 1883), **ckw)
    except OSError as e:
        sys.stderr.write(f"mqtt_paho: connect to {a.url}: {e}\n")
        out("DONE received=0")
        return 4
    if not run_until(lambda: st.connack is not None, deadline):
        sys.stderr.write("mqtt_paho: no CONNACK\n")
        return finish(2)
    if st.connack != 0:
        return finish(3)
    if not a.no_subscribe:
        c.subscribe(a.topic, qos=1)
        run_until(lambda: st.subacked, deadline)
    if a.wait_kick:  # a close any time after CONNACK is what we wait for
        run_until(lambda: False, deadline)
        return finish(0 if st.closed else 2)
    if not a.no_subscribe and not st.subacked:
        sys.stderr.write("mqtt_paho: no SUBACK\n")
        return finish(2)
    if a.subscribe_only:
        return finish(0)
    if not run_until(lambda: st.received >= a.expect, deadline):
        sys.stderr.write(f"mqtt_paho: {st.received} of {a.expect} messages\n")
        return finish(2)
    run_until(lambda: False, time.monotonic() + a.extra_wait / 1000)
    return finish(0)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - any failure is exit 4
        sys.stderr.write(f"mqtt_paho: {type(e).__name__}: {e}\n")
        sys.exit(4)
