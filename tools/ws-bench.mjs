#!/usr/bin/env node
// ws-bench.mjs: many browser-like clients (MQTT.js over WebSockets, as the
// page: feed/<uid> at QoS 1 and ribbon at QoS 0) held open on one broker
// while posts flow; run by tools/ws-bench, which starts the stack and says
// how (docs/benchmarks.md, "Connections").
//
// Driver (the default role):
//   node tools/ws-bench.mjs --ws-url ws://127.0.0.1:P/mqtt --gateway http://127.0.0.1:G
//       (or --ws-url mqtt://127.0.0.1:P: the same clients over MQTT/TCP)
//       --secret FILE --redis-port N --broker-pid PID --clients N [--procs P]
//       [--window W] [--authors A] [--rate R] [--seconds S] [--pids NAME=PID,...]
// It forks P client processes (each holds N/P connections, W connecting at
// a time), has client i follow author a<i mod A> through the gateway, waits
// until every client is connected and subscribed, reads the broker's RSS
// before and after, then posts R times a second for S seconds as the
// authors in turn (each post reaches N/A clients) and reports: connects/s,
// broker RSS per connection, deliveries and their latency (the receiving
// client's clock minus the post's created_at, set by the gateway: the whole
// path gateway -> RabbitMQ -> bridge -> Redis -> broker -> WebSocket).
// Prints the table on stdout; exits 1 when a client could not connect or a
// delivery is missing 30 s after the last post. --pids: processes whose CPU use while posting is
// reported too (the broker's and the client processes' always are).
//
// Client role (forked by the driver): --role client --first I --count N.
import { fork, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt from 'mqtt';

const { values: opt } = parseArgs({
    options: {
        role: { type: 'string', default: 'driver' },
        'ws-url': { type: 'string' },
        gateway: { type: 'string' },
        secret: { type: 'string' },
        'redis-port': { type: 'string' },
        'broker-pid': { type: 'string' },
        pids: { type: 'string', default: '' },
        clients: { type: 'string', default: '1000' },
        procs: { type: 'string', default: '2' },
        window: { type: 'string', default: '250' },
        authors: { type: 'string', default: '20' },
        rate: { type: 'string', default: '2' },
        seconds: { type: 'string', default: '20' },
        first: { type: 'string', default: '0' },
        count: { type: 'string', default: '0' },
        prefix: { type: 'string', default: 'w' },
    },
    strict: true,
});
const num = (name) => {
    const v = Number(opt[name]);
    if (!Number.isInteger(v) || v < 0) {
        process.stderr.write(`ws-bench: --${name} must be an integer >= 0\n`);
        process.exit(2);
    }
    return v;
};

// An HS256 token for uid, as the plugin and the gateway accept it.
function token(key, uid) {
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: uid, iat: now, exp: now + 7200 })}`;
    return `${body}.${createHmac('sha256', key).update(body).digest('base64url')}`;
}

function readKey(file) {
    let key = readFileSync(file);
    if (key.length > 0 && key[key.length - 1] === 0x0a) key = key.subarray(0, key.length - 1);
    return key;
}

const uidOf = (i) => `${opt.prefix}${i}`;
const authorOf = (k) => `${opt.prefix}a${k}`;

// ------------------------------------------------------------ client role

async function clientRole() {
    const key = readKey(opt.secret);
    const first = num('first');
    const count = num('count');
    const window = Math.max(1, num('window'));
    const clients = [];
    const latencies = [];
    let failed = 0;
    let firstError = null;
    const tStart = Date.now();
    let next = 0;

    const connectOne = (i) => new Promise((resolve) => {
        const uid = uidOf(i);
        const c = mqtt.connect(opt['ws-url'], {
            username: uid, password: token(key, uid), clientId: `wsb-${uid}`,
            reconnectPeriod: 0, clean: true, connectTimeout: 60000, protocolVersion: 4,
        });
        let done = false;
        const finish = (ok, err) => {
            if (done) return;
            done = true;
            if (!ok) {
                failed++;
                firstError ??= `${uid}: ${err}`;
                c.end(true);
            }
            resolve();
        };
        c.on('error', (err) => finish(false, err.message));
        c.on('close', () => finish(false, 'closed before SUBACK'));
        c.on('connect', () => {
            c.subscribe({ [`feed/${uid}`]: { qos: 1 }, ribbon: { qos: 0 } }, (err, granted) => {
                if (err || granted.some((g) => g.qos >= 128)) finish(false, `subscribe refused`);
                else finish(true);
            });
        });
        c.on('message', (topic, payload) => {
            if (topic === 'ribbon') return;
            try {
                const m = JSON.parse(payload.toString('utf8'));
                if (m.type === 'post.created') latencies.push(Date.now() - m.post.created_at);
            } catch {
                // not a post: not measured
            }
        });
        clients.push(c);
    });
    const worker = async () => {
        while (next < count) {
            const i = first + next++;
            await connectOne(i);
        }
    };
    await Promise.all(Array.from({ length: Math.min(window, count) }, worker));
    process.send({ event: 'ready', connected: count - failed, failed, firstError, tStart, tEnd: Date.now() });
    const progress = setInterval(() => {
        if (process.connected) process.send({ event: 'progress', received: latencies.length });
    }, 250);
    // The driver gone (it ended or died): so do we.
    process.on('disconnect', () => process.exit(0));
    process.on('message', (m) => {
        if (m.event !== 'finish') return;
        clearInterval(progress);
        const closedEarly = clients.filter((c) => !c.connected).length;
        process.send({ event: 'done', latencies, closedEarly });
        for (const c of clients) c.end(true);
        setTimeout(() => process.exit(0), 200);
    });
}

// ------------------------------------------------------------ driver role

function rssKiB(pid) {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
}

// CPU seconds (user + system) process pid has used so far.
function cpuSeconds(pid) {
    try {
        const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
        return (Number(rest[11]) + Number(rest[12])) / 100; // utime, stime: fields 14, 15
    } catch {
        return NaN;
    }
}

function redis(...args) {
    return execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', opt['redis-port'], ...args],
        { encoding: 'utf8' }).trim();
}

async function request(method, path, uid, key, body) {
    const res = await fetch(`${opt.gateway}${path}`, {
        method,
        headers: { authorization: `Bearer ${token(key, uid)}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status >= 300) throw new Error(`${method} ${path} as ${uid}: HTTP ${res.status}`);
    return res.json();
}

// Runs fn(i) for i in 0..n-1, c at a time.
async function pool(n, c, fn) {
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(c, n) }, async () => {
        while (next < n) await fn(next++);
    }));
}

const pct = (sorted, p) => (sorted.length === 0 ? NaN
    : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]);

async function driver() {
    const key = readKey(opt.secret);
    const n = num('clients');
    const procs = Math.max(1, Math.min(num('procs'), n));
    const authors = Math.max(1, Math.min(num('authors'), n));
    const rate = num('rate');
    const seconds = num('seconds');
    const brokerPid = num('broker-pid');

    // The follow graph: client i follows a<i mod A>.
    const t0 = Date.now();
    await pool(n, 32, (i) => request('PUT', `/api/v1/follows/${authorOf(i % authors)}`, uidOf(i), key));
    for (let k = 0; k < authors; k++) {
        const want = Math.floor(n / authors) + (k < n % authors ? 1 : 0);
        for (let tries = 0; Number(redis('SCARD', `followers:${authorOf(k)}`)) < want; tries++) {
            if (tries > 600) throw new Error(`followers:${authorOf(k)} never reached ${want}`);
            await sleep(100);
        }
    }
    process.stderr.write(`ws-bench: ${n} follows applied in ${Date.now() - t0} ms\n`);

    const rssBefore = rssKiB(brokerPid);
    const children = [];
    const ready = [];
    const done = [];
    const received = [];
    const per = Math.ceil(n / procs);
    for (let p = 0; p < procs; p++) {
        const first = p * per;
        const count = Math.min(per, n - first);
        const child = fork(new URL(import.meta.url).pathname, [
            '--role', 'client', '--ws-url', opt['ws-url'], '--secret', opt.secret,
            '--first', String(first), '--count', String(count), '--window', opt.window,
            '--prefix', opt.prefix]);
        children.push(child);
        received.push(0);
        child.on('message', (m) => { if (m.event === 'progress') received[p] = m.received; });
        ready.push(new Promise((resolve, reject) => {
            child.on('message', (m) => { if (m.event === 'ready') resolve(m); });
            child.on('exit', (code) => reject(new Error(`client process ${p} exited (${code})`)));
        }));
        done.push(new Promise((resolve) => {
            child.on('message', (m) => { if (m.event === 'done') resolve(m); });
        }));
    }
    const readies = await Promise.all(ready);
    const connected = readies.reduce((s, r) => s + r.connected, 0);
    const failed = readies.reduce((s, r) => s + r.failed, 0);
    const connectS = (Math.max(...readies.map((r) => r.tEnd)) - Math.min(...readies.map((r) => r.tStart))) / 1000;
    // Presence settles (every client counted in online:<node>); meanwhile
    // the broker's CPU use with every client connected and nothing to send.
    const idleBefore = cpuSeconds(brokerPid);
    await sleep(3000);
    const idlePct = ((cpuSeconds(brokerPid) - idleBefore) / 3) * 100;
    const rssConnected = rssKiB(brokerPid);
    process.stderr.write(`ws-bench: ${connected} connected (${failed} failed) in ${connectS.toFixed(1)} s\n`);

    // Posts: R a second for S seconds, the authors in turn.
    const posts = rate * seconds;
    let expected = 0;
    const watched = [['mosquitto', brokerPid],
        ...opt.pids.split(',').filter((s) => s.includes('=')).map((s) => s.split('=')),
        ...children.map((c, i) => [`clients ${i + 1}`, c.pid])];
    const cpuBefore = watched.map(([, pid]) => cpuSeconds(pid));
    const tPosts = Date.now();
    for (let j = 0; j < posts; j++) {
        const at = tPosts + (j * 1000) / rate;
        const wait = at - Date.now();
        if (wait > 0) await sleep(wait);
        const k = j % authors;
        await request('POST', '/api/v1/posts', authorOf(k), key, { text: `ws-bench post ${j}` });
        expected += Math.floor(n / authors) + (k < n % authors ? 1 : 0);
    }
    const rssPosting = rssKiB(brokerPid);
    const postS = (Date.now() - tPosts) / 1000;
    const cpu = watched.map(([name, pid], i) =>
        `${name} ${(((cpuSeconds(pid) - cpuBefore[i]) / postS) * 100).toFixed(0)}%`);
    // Deliveries still in flight: wait for them (a late one is measured as
    // late, not lost) up to DRAIN_MS after the last post.
    const DRAIN_MS = 30000;
    const drainUntil = Date.now() + DRAIN_MS;
    while (received.reduce((s, v) => s + v, 0) < expected && Date.now() < drainUntil) await sleep(250);
    await sleep(500); // one more progress round: nothing beyond expected arrives
    for (const c of children) c.send({ event: 'finish' });
    const results = await Promise.all(done);
    const lat = results.flatMap((r) => r.latencies).sort((a, b) => a - b);
    const closedEarly = results.reduce((s, r) => s + r.closedEarly, 0);
    const perConnKiB = (rssConnected - rssBefore) / Math.max(1, connected);

    const row = (k, v) => process.stdout.write(`  ${k.padEnd(44)} ${v}\n`);
    process.stdout.write(`connections benchmark: ${n} clients in ${procs} processes, ${authors} authors, ` +
        `${rate} posts/s for ${seconds} s\n`);
    row('clients connected and subscribed', `${connected} of ${n} (${failed} failed${failed ? `: ${readies.find((r) => r.firstError)?.firstError}` : ''})`);
    row('connect rate (connect + SUBACK)', `${(connected / connectS).toFixed(0)} clients/s (${connectS.toFixed(1)} s in all)`);
    row('broker RSS before / connected / posting', `${(rssBefore / 1024).toFixed(1)} / ${(rssConnected / 1024).toFixed(1)} / ${(rssPosting / 1024).toFixed(1)} MiB`);
    row('broker RSS per connection', `${perConnKiB.toFixed(1)} KiB`);
    row('deliveries received / expected', `${lat.length} / ${expected}`);
    row('delivery rate while posting', `${(expected / seconds).toFixed(0)} /s`);
    row('latency p50 / p90 / p99 / max (ms)', `${pct(lat, 50)} / ${pct(lat, 90)} / ${pct(lat, 99)} / ${lat.length ? lat[lat.length - 1] : NaN}`);
    row('clients that lost their connection', String(closedEarly));
    row('broker CPU, all connected, idle', `${idlePct.toFixed(0)}%`);
    row('CPU while posting (100% = one core)', cpu.join(', '));
    const ok = failed === 0 && lat.length === expected && closedEarly === 0;
    process.exit(ok ? 0 : 1);
}

if (opt.role === 'client') {
    clientRole().catch((err) => { process.stderr.write(`ws-bench client: ${err.stack}\n`); process.exit(1); });
} else {
    driver().catch((err) => { process.stderr.write(`ws-bench: ${err.message}\n`); process.exit(1); });
}
