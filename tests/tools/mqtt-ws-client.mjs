#!/usr/bin/env node
// mqtt-ws-client.mjs: a browser-like MQTT.js client over WebSockets for the
// integration tests. It connects once (no auto-reconnect), optionally
// subscribes, publishes, waits for messages and stays connected, then prints
// ONE JSON line on stdout describing what happened. The caller asserts on
// that line: the exit code is 0 whenever the tool ran, whatever the broker
// did (refused, kicked, timed out), and 2 on a usage error.
//
// Usage:
//   node tests/tools/mqtt-ws-client.mjs --url ws://127.0.0.1:PORT/mqtt
//       [--username U] [--password JWT] [--client-id ID]
//       [--protocol-version 4|5]        MQTT 3.1.1 (default) or 5
//       [--subscribe TOPIC]...          one SUBSCRIBE at QoS 1 for all topics
//       [--publish TOPIC=PAYLOAD]...    QoS 1, one after another; the topic
//                                       ends at the first '='
//       [--expect N]                    wait for N messages
//       [--stay-ms MS]                  then stay connected up to MS ms
//       [--timeout-ms MS]               limit for connect, subscribe, publish
//                                       and expect together (default 5000);
//                                       --stay-ms comes on top of it
//       [--ca FILE]                     wss://: trust only this CA (PEM);
//                                       the name is checked as always
//       [--ready-file FILE]             create FILE once the SUBACK came (a
//                                       caller waits for it before it makes
//                                       the messages to expect)
//
// Steps run in that order and stop early when the connection closes or the
// timeout passes. Output fields:
//   connected        true once a CONNACK accepted the connection
//   connack_rc       CONNACK code: 0, or the refusal (3.1.1 returnCode, 5 =
//                    not authorized; MQTT 5 reasonCode, 135 = not authorized);
//                    null when no CONNACK came
//   connect_ms       ms from start until the CONNACK (or null)
//   error            first error seen (connect failure, timeout, ...) or null
//   granted          [{topic, qos}] from the SUBACK; qos >= 128 is a refusal
//   published        [{topic, acked, reason_code}]; reason_code is the MQTT 5
//                    PUBACK reason code (0, 16 no subscribers, 135 not
//                    authorized, ...), null for 3.1.1, where mosquitto acks
//                    a denied publish like any other and drops it
//   messages         [{topic, payload, retain}] received, payload as UTF-8
//   closed_after_ms  ms from the CONNACK until the broker closed the
//                    connection, null if it did not (before we ended it)
//   disconnect_rc    reason code of an MQTT 5 DISCONNECT from the broker, or
//                    null
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt from 'mqtt';

function usage(message) {
    process.stderr.write(`mqtt-ws-client: ${message}\n` +
        'usage: mqtt-ws-client.mjs --url ws://HOST:PORT[/mqtt] [--username U] ' +
        '[--password P] [--client-id ID] [--protocol-version 4|5] ' +
        '[--subscribe TOPIC]... [--publish TOPIC=PAYLOAD]... [--expect N] ' +
        '[--stay-ms MS] [--timeout-ms MS] [--ca FILE] [--ready-file FILE]\n');
    process.exit(2);
}

function parseCommandLine() {
    let values;
    try {
        ({ values } = parseArgs({
            options: {
                url: { type: 'string' },
                username: { type: 'string' },
                password: { type: 'string' },
                'client-id': { type: 'string' },
                'protocol-version': { type: 'string', default: '4' },
                subscribe: { type: 'string', multiple: true, default: [] },
                publish: { type: 'string', multiple: true, default: [] },
                expect: { type: 'string', default: '0' },
                'stay-ms': { type: 'string', default: '0' },
                'timeout-ms': { type: 'string', default: '5000' },
                ca: { type: 'string' },
                'ready-file': { type: 'string' },
            },
            strict: true,
            allowPositionals: false,
        }));
    } catch (err) {
        usage(err.message);
    }
    if (!values.url) usage('--url is required');
    if (!/^wss?:\/\//.test(values.url)) usage('--url must be ws:// or wss://');
    const count = (name, min) => {
        const text = values[name];
        if (!/^\d+$/.test(text) || Number(text) < min) {
            usage(`--${name} must be an integer >= ${min}, not "${text}"`);
        }
        return Number(text);
    };
    const protocolVersion = values['protocol-version'];
    if (protocolVersion !== '4' && protocolVersion !== '5') {
        usage('--protocol-version must be 4 or 5');
    }
    const publish = values.publish.map((spec) => {
        const eq = spec.indexOf('=');
        if (eq <= 0) usage(`--publish needs TOPIC=PAYLOAD, not "${spec}"`);
        return { topic: spec.slice(0, eq), payload: spec.slice(eq + 1) };
    });
    return {
        url: values.url,
        username: values.username,
        password: values.password,
        clientId: values['client-id'],
        protocolVersion: Number(protocolVersion),
        subscribe: values.subscribe,
        publish,
        expect: count('expect', 0),
        stayMs: count('stay-ms', 0),
        timeoutMs: count('timeout-ms', 1),
        ca: values.ca,
        readyFile: values['ready-file'],
    };
}

const args = parseCommandLine();
const result = {
    connected: false,
    connack_rc: null,
    connect_ms: null,
    error: null,
    granted: [],
    published: [],
    messages: [],
    closed_after_ms: null,
    disconnect_rc: null,
};
const start = performance.now();
let connectedAt = null;
let ending = false;
const elapsed = (since) => Math.round(performance.now() - since);
const noteError = (message) => { result.error ??= message; };

const options = {
    protocolVersion: args.protocolVersion,
    reconnectPeriod: 0,
    connectTimeout: args.timeoutMs,
    clean: true,
};
if (args.username !== undefined) options.username = args.username;
if (args.password !== undefined) options.password = args.password;
if (args.clientId !== undefined) options.clientId = args.clientId;
if (args.ca !== undefined) {
    try {
        options.ca = readFileSync(args.ca);
    } catch (err) {
        usage(`--ca ${args.ca}: ${err.message}`);
    }
    options.rejectUnauthorized = true;
}

const client = mqtt.connect(args.url, options);

const CLOSED = Symbol('closed');
const TIMEOUT = Symbol('timeout');
const closed = new Promise((resolve) => {
    client.once('close', () => {
        if (connectedAt !== null && !ending) {
            result.closed_after_ms = elapsed(connectedAt);
        }
        resolve(CLOSED);
    });
});
const connected = new Promise((resolve) => {
    client.once('connect', (connack) => {
        connectedAt = performance.now();
        result.connected = true;
        result.connack_rc = connack.returnCode ?? connack.reasonCode ?? 0;
        result.connect_ms = elapsed(start);
        resolve();
    });
});
client.on('error', (err) => {
    // A refused CONNACK comes as an error whose code is the CONNACK code.
    if (!result.connected && typeof err.code === 'number') {
        result.connack_rc = err.code;
        result.connect_ms = elapsed(start);
    }
    noteError(err.message);
});
client.on('disconnect', (packet) => {
    result.disconnect_rc = packet.reasonCode ?? 0;
});
const pubackCodes = new Map();
client.on('packetreceive', (packet) => {
    if (packet.cmd === 'puback') pubackCodes.set(packet.messageId, packet.reasonCode ?? 0);
});
let messageArrived = () => {};
client.on('message', (topic, payload, packet) => {
    result.messages.push({ topic, payload: payload.toString('utf8'), retain: packet.retain });
    messageArrived();
});

// Runs one step against the connection closing and the overall deadline;
// returns false when the run must stop there.
const deadline = sleep(args.timeoutMs, TIMEOUT, { ref: false });
async function step(what, promise) {
    const outcome = await Promise.race([promise, closed, deadline]);
    if (outcome === TIMEOUT) noteError(`timeout after ${args.timeoutMs} ms ${what}`);
    return outcome !== CLOSED && outcome !== TIMEOUT;
}

async function run() {
    if (!await step('connecting', connected)) return;

    if (args.subscribe.length > 0) {
        const subscribed = new Promise((resolve) => {
            client.subscribe(args.subscribe, { qos: 1 }, (err, _subs, suback) => {
                if (suback) {
                    result.granted = args.subscribe.map(
                        (topic, i) => ({ topic, qos: suback.granted[i] }));
                } else {
                    noteError(`subscribe: ${err.message}`);
                }
                resolve();
            });
        });
        if (!await step('subscribing', subscribed)) return;
        if (args.readyFile !== undefined) writeFileSync(args.readyFile, 'subscribed\n');
    }

    for (const { topic, payload } of args.publish) {
        const acked = new Promise((resolve) => {
            client.publish(topic, payload, { qos: 1 }, (err, packet) => {
                // MQTT 5 error reason codes come as err with a numeric code;
                // anything else (connection closed) means no PUBACK.
                const gotAck = !err || typeof err.code === 'number';
                if (!gotAck) noteError(`publish ${topic}: ${err.message}`);
                result.published.push({
                    topic,
                    acked: gotAck,
                    reason_code: gotAck && args.protocolVersion === 5
                        ? pubackCodes.get(packet.messageId) ?? err?.code ?? 0
                        : null,
                });
                resolve();
            });
        });
        if (!await step(`publishing to ${topic}`, acked)) return;
    }

    if (result.messages.length < args.expect) {
        const enough = new Promise((resolve) => {
            messageArrived = () => { if (result.messages.length >= args.expect) resolve(); };
        });
        if (!await step(`waiting for ${args.expect} messages`, enough)) return;
    }

    if (args.stayMs > 0) await Promise.race([sleep(args.stayMs), closed]);
}

await run();
ending = true;
if (client.connected) {
    await Promise.race([new Promise((resolve) => client.end(false, {}, resolve)), sleep(1000)]);
} else {
    client.end(true);
}
process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
