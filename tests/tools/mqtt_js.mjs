#!/usr/bin/env node
// mqtt_js.mjs: a small MQTT client (MQTT.js from the project's node_modules)
// for the persistent-session integration tests, over TCP (mqtt://) or
// WebSocket (ws://). tests/tools/mqtt_paho.py is its Paho twin, with the
// same options, output and exit codes.
//
//   node tests/tools/mqtt_js.mjs --url mqtt://HOST:PORT|ws://HOST:PORT[/PATH]
//       --user U --password TOKEN --id CLIENT_ID [--version 3|5] [--clean 0|1]
//       [--session-expiry S] [--topic T | --no-subscribe]
//       [--expect N [--extra-wait MS] | --wait-kick | --subscribe-only]
//       [--timeout S]
//
// stdout, one line each: "CONNACK rc=<code> session_present=<0|1>",
// "SUBACK qos=<granted>", "MSG <topic> <payload>", "DISCONNECT rc=<code>"
// (the broker closed the connection: its v5 reason code, -1 for a plain
// close) and "DONE received=<n>" last. Exit 0 ok, 2 timeout / too few
// messages, 3 CONNACK refused, 4 any other error (on stderr).
import mqtt from 'mqtt';

const FLAGS = ['no-subscribe', 'wait-kick', 'subscribe-only'];
const VALUES = ['url', 'user', 'password', 'id', 'version', 'clean', 'session-expiry',
    'topic', 'expect', 'extra-wait', 'timeout'];

function fail(message, rc = 4) {
    process.stderr.write(`mqtt_js: ${message}\n`);
    process.exit(rc);
}

const opt = { version: '3', clean: '0', 'session-expiry': '3600', expect: '0',
    'extra-wait': '500', timeout: '10' };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, '');
    if (!argv[i].startsWith('--')) fail(`unexpected argument ${argv[i]}`);
    else if (FLAGS.includes(name)) opt[name] = true;
    else if (VALUES.includes(name) && i + 1 < argv.length) opt[name] = argv[++i];
    else fail(`unknown option or missing value: ${argv[i]}`);
}
const num = (name) => {
    const n = Number(opt[name]);
    if (!Number.isFinite(n) || n < 0) fail(`--${name} must be a number`);
    return n;
};
if (!/^(mqtt|tcp|ws):\/\/[^/]+/.test(opt.url || '')) fail('--url mqtt://HOST:PORT or ws://HOST:PORT is required');
if (!opt.id) fail('--id is required');
if (!['3', '5'].includes(opt.version)) fail('--version must be 3 or 5');
if (!['0', '1'].includes(opt.clean)) fail('--clean must be 0 or 1');
if (!opt['no-subscribe'] && !opt.topic) fail('--topic is required unless --no-subscribe');
const v5 = opt.version === '5';
const expect = num('expect');
const extraWait = num('extra-wait');
const timeoutMs = num('timeout') * 1000;
const sessionExpiry = num('session-expiry');

const out = (line) => process.stdout.write(`${line}\n`);
let received = 0;
let closing = false;       // we asked for the close (or the CONNACK refused)
let closed = false;
let serverRc = null;       // reason code of a v5 DISCONNECT from the broker
let settled = false;
let connacked = false;
let ready = false;         // SUBACK came (or nothing to subscribe)
let collecting = false;

const client = mqtt.connect(opt.url, {
    username: opt.user, password: opt.password, clientId: opt.id,
    protocolVersion: v5 ? 5 : 4, clean: opt.clean === '1', keepalive: 60,
    reconnectPeriod: 0, connectTimeout: timeoutMs + 1000, // our deadline comes first
    ...(v5 ? { properties: { sessionExpiryInterval: sessionExpiry } } : {}),
});

// Ends the run: a clean DISCONNECT while still connected, then DONE.
function finish(rc) {
    if (settled) return;
    settled = true;
    clearTimeout(deadline);
    const done = () => { out(`DONE received=${received}`); process.exit(rc); };
    if (closed || !client.connected) { client.end(true); done(); return; }
    closing = true;
    client.end(false, {}, done);
}

const deadline = setTimeout(() => {
    const why = !client.connected ? 'no CONNACK' : !ready ? 'no SUBACK'
        : opt['wait-kick'] ? 'still connected' : `${received} of ${expect} messages`;
    process.stderr.write(`mqtt_js: ${why} at --timeout\n`);
    finish(2);
}, timeoutMs);

// After SUBACK and N messages: --extra-wait more, then done.
function collected() {
    if (!ready || collecting || received < expect || opt['wait-kick'] || opt['subscribe-only']) return;
    collecting = true;
    clearTimeout(deadline);
    setTimeout(() => finish(0), extraWait);
}

client.on('packetreceive', (packet) => {
    if (packet.cmd === 'connack') {
        const rc = v5 ? packet.reasonCode : packet.returnCode;
        out(`CONNACK rc=${rc ?? 0} session_present=${packet.sessionPresent ? 1 : 0}`);
        if (rc) { closing = true; finish(3); }
    } else if (packet.cmd === 'suback') {
        out(`SUBACK qos=${packet.granted[0]}`);
        ready = true;
        if (opt['subscribe-only']) finish(0);
        else collected();
    } else if (packet.cmd === 'disconnect') {
        serverRc = packet.reasonCode ?? 0;
    }
});

client.on('connect', () => {
    connacked = true;
    if (opt['no-subscribe']) {
        ready = true;
        if (opt['subscribe-only']) finish(0);
        else collected();
    } else {
        client.subscribe(opt.topic, { qos: 1 });
    }
});

client.on('message', (topic, payload) => {
    received++;
    out(`MSG ${topic} ${payload.toString('utf8')}`);
    collected();
});

client.on('close', () => {
    if (closed) return;
    closed = true;
    if (closing) return;
    out(`DISCONNECT rc=${serverRc ?? -1}`);
    const ok = opt['wait-kick'] ? connacked : ready && received >= expect && !opt['subscribe-only'];
    finish(ok ? 0 : 2);
});

client.on('error', (err) => {
    if (closing || settled) return;
    process.stderr.write(`mqtt_js: ${err.message}\n`);
    if (!client.connected) { out('DONE received=0'); process.exit(4); } // else 'close' follows
});
