// feedpush browser client: plain JavaScript, no build step.
//
// Talks to feed-gateway's HTTP API (docs/gateway.md) and, for the live part,
// to mosquitto over WebSockets with MQTT.js (global `mqtt`, served at
// /vendor/mqtt.min.js): it subscribes to feed/<me> (QoS 1) and the retained
// `ribbon` topic (docs/protocol.md).
//
// The page runs under a strict Content-Security-Policy: no inline scripts,
// no inline handlers, no eval, no inline styles. Every piece of data goes
// into the DOM through textContent / attributes, never as HTML.
(function () {
    'use strict';

    const API = '/api/v1';
    const STORE_KEY = 'feedpush.session';
    const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
    const MAX_POST_BYTES = 8192;
    const MAX_RIBBON_TEXT_BYTES = 512;
    const FEED_PAGE = 50;
    const CATCH_UP_PAGES = 20; // more missed than that: the feed starts over from its first page
    const RENEW_AT = 0.8;            // dev tokens: renew after 80 % of their lifetime
    const WARN_BEFORE_S = 120;       // pasted tokens: warn this long before exp
    const TICK_MS = 15000;           // relative times, token checks (backup timer)
    const REFUSED_RETRY_MS = 15000;  // broker refused the connect: retry after this,
    const REFUSED_RETRY_MAX_MS = 120000; // doubling (with jitter) up to this
    const RECONNECT_QUICK = 5;           // attempts in an outage 1-3 s apart, then
    const RECONNECT_MAX_MS = 30000;      // the wait doubles up to this (half as much again at most)
    const LOAD_RETRY_MIN_MS = 2000;  // a load the server could not answer now: again after this,
    const LOAD_RETRY_MAX_MS = 30000; // doubling up to this
    const LIVE_SETTLE_MS = 60000; // a live post's feed writes are done by then (big authors' too)

    const encoder = new TextEncoder();
    const decoder = new TextDecoder();

    // ---------------------------------------------------------------- state

    const state = {
        config : null,
        session : null, // {token, userId, kind: 'dev'|'pasted', iat, exp}
        epoch : 0,      // bumped at every sign-in / sign-out: late answers are dropped
        client : null,  // the MQTT.js client of this session
        everLive : false,
        subscribed : false, // the current connection has its SUBACK
        connects : 0,
        posts : new Map(), // id -> {post, el, pending, liveAt}
        order : [],        // ids of the pages read, in the server's order: a top slice of the feed
        deleted : new Set(),    // ids seen deleted: never shown again
        nextBefore : undefined, // undefined: first page not loaded; null: no older posts
        cursor : null,  // the newest post had, in the server's order: catch-up starts after it
        synced : false, // every post up to cursor is had: a live post may move it on
        syncs : 0,      // subscriptions so far: a load for an older one does not set synced
        feedGen : 0,    // bumped when the list starts over: a Load older begun before is dropped
        feedLoaded : false,
        loadingOlder : false,
        ribbon : [],
        ribbonVersion : -1, // version of the ribbon shown: an older document is ignored
        following : [],
        renewing : false,
        renewTimer : 0,
        refusedTimer : 0,
        refusals : 0,         // CONNACK refusals since the last accepted connect
        attempts : 0,         // reconnects MQTT.js made by itself since then, the browser online
        ownReconnect : false, // the next 'reconnect' is one of ours (client.reconnect())
        retryTimers : {},     // name -> timer of a load to try again (loadRetrying)
        refusedRenewAt : 0,   // last time a broker refusal made us fetch a dev token
        tickTimer : 0,
    };

    // ---------------------------------------------------------------- DOM helpers

    const $ = (id) => document.getElementById(id);

    function el(tag, attrs, ...children) {
        const node = document.createElement(tag);
        if (attrs) {
            for (const [k, v] of Object.entries(attrs)) {
                if (v === undefined || v === null || v === false) continue;
                if (k === 'class') node.className = v;
                else if (k === 'text') node.textContent = v;
                else node.setAttribute(k, v === true ? '' : String(v));
            }
        }
        for (const c of children) {
            if (c === null || c === undefined) continue;
            node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
        }
        return node;
    }

    function show(node, visible) {
        node.hidden = !visible;
    }

    function setError(node, message) {
        node.textContent = message || '';
        show(node, Boolean(message));
    }

    let noticeTimer = 0;
    function notice(message, sticky) {
        $('notice-text').textContent = message;
        show($('notice'), true);
        clearTimeout(noticeTimer);
        if (!sticky) noticeTimer = setTimeout(() => show($('notice'), false), 8000);
    }

    function byteLength(text) {
        return encoder.encode(text).length;
    }

    function hueClass(id) {
        let h = 0;
        for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
        return 'hue-' + (h % 8);
    }

    function avatar(id, small) {
        const initial = (id.match(/[A-Za-z0-9]/) || ['?'])[0].toUpperCase();
        return el('span', { class: 'avatar ' + hueClass(id) + (small ? ' avatar-small' : ''), 'aria-hidden': 'true', text: initial });
    }

    function relTime(ms) {
        const s = Math.round((Date.now() - ms) / 1000);
        if (s < 45) return 'just now';
        if (s < 3600) return Math.round(s / 60) + ' min ago';
        if (s < 86400) return Math.round(s / 3600) + ' h ago';
        if (s < 7 * 86400) return Math.round(s / 86400) + ' d ago';
        return new Date(ms).toLocaleDateString();
    }

    function timeEl(ms) {
        const date = new Date(ms);
        // The server takes any time up to 2^53 ms; a Date ends at 8.64e15
        // (toISOString would throw and stop the page's rendering).
        if (!Number.isFinite(date.getTime())) return el('span', { class: 'muted' }, 'at an unknown time');
        const t = el('time', { datetime: date.toISOString(), title: date.toLocaleString(), 'data-ms': ms });
        t.textContent = relTime(ms);
        return t;
    }

    function refreshTimes() {
        for (const t of document.querySelectorAll('time[data-ms]')) {
            t.textContent = relTime(Number(t.getAttribute('data-ms')));
        }
    }

    function randomHex(n) {
        const bytes = new Uint8Array(Math.ceil(n / 2));
        crypto.getRandomValues(bytes);
        return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('').slice(0, n);
    }

    // ---------------------------------------------------------------- tokens

    // The payload of a compact JWT, for display and timing only: the
    // gateway and the broker verify the signature.
    function decodeJwt(token) {
        const parts = token.split('.');
        if (parts.length !== 3 || !parts[1]) throw new Error('This is not a token (a JWT has three parts separated by dots).');
        let b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
        while (b64.length % 4) b64 += '=';
        let claims;
        try {
            const bin = atob(b64);
            const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
            claims = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
        } catch (e) {
            throw new Error('The token\'s payload cannot be read.');
        }
        if (!claims || typeof claims !== 'object' || Array.isArray(claims)) throw new Error('The token\'s payload is not a JSON object.');
        if (typeof claims.sub !== 'string' || !ID_RE.test(claims.sub)) throw new Error('The token has no valid user id (sub).');
        if (typeof claims.exp !== 'number') throw new Error('The token has no expiry (exp).');
        return claims;
    }

    function makeSession(token, kind, fallbackExp) {
        const claims = decodeJwt(token);
        const now = Date.now() / 1000;
        const exp = typeof claims.exp === 'number' ? claims.exp : fallbackExp;
        const iat = typeof claims.iat === 'number' ? claims.iat : Math.min(now, exp);
        return { token, userId: claims.sub, kind, iat, exp };
    }

    function saveSession() {
        try {
            if (state.session) {
                const s = state.session;
                sessionStorage.setItem(STORE_KEY, JSON.stringify({ token: s.token, kind: s.kind }));
            } else {
                sessionStorage.removeItem(STORE_KEY);
            }
        } catch (e) { /* storage disabled: the session lives as long as the page */ }
    }

    function loadSavedSession() {
        try {
            const raw = sessionStorage.getItem(STORE_KEY);
            if (!raw) return null;
            const saved = JSON.parse(raw);
            const sess = makeSession(saved.token, saved.kind === 'dev' ? 'dev' : 'pasted');
            if (sess.exp <= Date.now() / 1000 + 2) return null;
            return sess;
        } catch (e) {
            return null;
        }
    }

    // ---------------------------------------------------------------- API

    class ApiError extends Error {
        constructor(status, code, message) {
            super(message);
            this.status = status;
            this.code = code;
        }
    }

    // fetch + JSON, with the session's current token. A 401 signs out.
    // Answers that arrive after the session changed reject with code 'stale'.
    async function api(method, path, body, opts) {
        const epoch = state.epoch;
        const headers = {};
        const auth = !(opts && opts.noAuth);
        if (auth && state.session) headers.Authorization = 'Bearer ' + state.session.token;
        if (body !== undefined) headers['Content-Type'] = 'application/json';
        let res;
        try {
            res = await fetch(API + path, {
                method,
                headers,
                body: body === undefined ? undefined : JSON.stringify(body),
                cache: 'no-store',
                credentials: 'omit',
            });
        } catch (e) {
            throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection.');
        }
        let data = null;
        let unreadable = false;
        try {
            const text = await res.text();
            data = text ? JSON.parse(text) : null;
        } catch (e) {
            unreadable = true; // cut off on the way, or not JSON
        }
        if (epoch !== state.epoch) throw new ApiError(0, 'stale', 'the session changed');
        if (!res.ok) {
            const code = data && typeof data.error === 'string' ? data.error : 'http_' + res.status;
            const message = data && typeof data.message === 'string' && data.message
                ? data.message : (res.statusText || 'HTTP ' + res.status);
            if (res.status === 401 && auth && state.session) {
                signOut('You were signed out: ' + message);
                throw new ApiError(401, 'stale', message);
            }
            throw new ApiError(res.status, code, message);
        }
        // A success whose answer cannot be read (the connection dropped in
        // the middle of it) is a network failure: loads try again.
        if (unreadable)
            throw new ApiError(0, 'network',
                               'The answer from the server was cut off. Check your connection.');
        return data;
    }

    // What to tell the user about a failed call (null: nothing, it is moot).
    function errorText(err) {
        if (err && err.code === 'stale') return null;
        if (err instanceof ApiError) return err.message;
        return 'Something went wrong: ' + (err && err.message ? err.message : String(err));
    }

    function reportTo(node) {
        return (err) => {
            const text = errorText(err);
            if (text !== null) setError(node, text);
        };
    }

    function reportNotice(err) {
        const text = errorText(err);
        if (text !== null) notice(text);
    }

    // A failure that passes by itself: the server not reached, or not able
    // to answer now (a 503 while its Redis or RabbitMQ is away, a proxy's
    // 502/504).
    function passing(err)
    {
        return err instanceof ApiError &&
               ((err.status === 0 && err.code === 'network') || err.status === 502 ||
                err.status === 503 || err.status === 504);
    }

    // Runs load (feed, ribbon, follows) now and, after a passing failure,
    // again after LOAD_RETRY_MIN_MS, doubling up to LOAD_RETRY_MAX_MS, until
    // it succeeds or the session changes: the page must not stay empty
    // until the next reconnect, which may never come. A chain's first
    // failure is reported (the notice would repeat otherwise), and the one
    // that ends it when it is not a passing one; another call for the
    // same name replaces the chain, whose attempt in flight then
    // schedules nothing.
    const retryChains = {}; // name -> the current chain's number
    function loadRetrying(name, load)
    {
        const epoch = state.epoch;
        const chain = (retryChains[name] || 0) + 1;
        let delay = LOAD_RETRY_MIN_MS;
        let reported = false;
        retryChains[name] = chain;
        const attempt = () => {
            delete state.retryTimers[name];
            load().catch((err) => {
                if (epoch !== state.epoch || retryChains[name] !== chain)
                    return;
                if (!reported || !passing(err))
                    reportNotice(err);
                reported = true;
                if (!passing(err))
                    return;
                state.retryTimers[name] = setTimeout(attempt, delay);
                delay = Math.min(delay * 2, LOAD_RETRY_MAX_MS);
            });
        };
        clearTimeout(state.retryTimers[name]);
        attempt();
    }

    function cancelRetries()
    {
        for (const t of Object.values(state.retryTimers))
            clearTimeout(t);
        state.retryTimers = {};
    }

    // ---------------------------------------------------------------- connection state

    const CONN_STATES = ['connecting', 'live', 'reconnecting', 'offline'];

    function setConn(s) {
        if (!CONN_STATES.includes(s)) return;
        const node = $('conn-state');
        if (node.getAttribute('data-state') === s) return;
        node.setAttribute('data-state', s);
        node.textContent = s;
        node.title = {
            connecting: 'Connecting to live updates…',
            live: 'Live: new posts appear as they are written',
            reconnecting: 'Connection lost, reconnecting…',
            offline: 'Not connected to live updates',
        }[s];
    }

    // ---------------------------------------------------------------- MQTT

    function wsUrl(u) {
        // Accept absolute ws(s):// URLs and, for a deployment behind the same
        // host, relative ones (/mqtt) or http(s):// ones.
        const url = new URL(u, location.href);
        if (url.protocol === 'http:') url.protocol = 'ws:';
        else if (url.protocol === 'https:') url.protocol = 'wss:';
        return url.href;
    }

    function connectMqtt() {
        const sess = state.session;
        const urls = (state.config && Array.isArray(state.config.mqtt_ws_urls) ? state.config.mqtt_ws_urls : [])
            .filter((u) => typeof u === 'string' && u);
        if (!urls.length) {
            setConn('offline');
            notice('No live-update server is configured; the feed will not update by itself.', true);
            return;
        }
        if (typeof mqtt === 'undefined' || typeof mqtt.connect !== 'function') {
            setConn('offline');
            notice('The live-update library did not load; the feed will not update by itself.', true);
            return;
        }
        const pick = () => wsUrl(urls[Math.floor(Math.random() * urls.length)]);
        const me = sess.userId;
        const feedTopic = 'feed/' + me;
        setConn('connecting');
        const client = mqtt.connect(pick(), {
            username: me,
            password: sess.token,
            clientId: 'web-' + me.slice(0, 40) + '-' + randomHex(12),
            protocolVersion: 4,
            clean: true,
            keepalive: 30,
            connectTimeout: 10000,
            reconnectPeriod: 1000,
            resubscribe: false,          // subscribed again at every connect, below
            // worker-timers would start a Worker from a blob: URL, which the
            // page's CSP forbids.
            timerVariant: 'native',
            // A (re)connect goes to any of the nodes: one that died is left.
            transformWsUrl: () => pick(),
        });
        state.client = client;
        state.everLive = false;
        state.subscribed = false;
        state.connects = 0;
        state.attempts = 0;

        const current = () => state.client === client;

        client.on('connect', () => {
            if (!current()) return;
            state.connects += 1;
            state.refusals = 0;
            state.attempts = 0;
            client.options.reconnectPeriod = 1000;
            client.subscribe({ [feedTopic]: { qos: 1 }, ribbon: { qos: 0 } }, (err, granted) => {
                if (!current()) return;
                if (err) {
                    if (client.connected) notice('Subscribing to live updates failed: ' + err.message);
                    return;
                }
                const refused = (granted || []).filter((g) => g.qos >= 128).map((g) => g.topic);
                if (refused.includes(feedTopic)) {
                    setConn('offline');
                    notice('The server refused live updates for your feed.', true);
                    return;
                }
                if (refused.length) notice('The server refused live updates for: ' + refused.join(', '));
                state.everLive = true;
                state.subscribed = true;
                setConn(navigator.onLine === false ? 'offline' : 'live');
                // Whatever was posted while the subscription was not in place
                // (before the first connect, or while offline) is in the feed
                // cache: merge its first page. Until that is done the cursor
                // stays where the posts had end (live ones do not move it):
                // a retry after a failure reads on from there.
                state.synced = false;
                const sync = ++state.syncs;
                loadRetrying('feed', () => refreshFirstPage().then(() => {
                    if (state.syncs === sync)
                        state.synced = true;
                }));
            });
        });

        client.on('message', (topic, payload) => {
            if (!current()) return;
            let text;
            try {
                text = decoder.decode(payload);
            } catch (e) {
                return;
            }
            if (topic === 'ribbon') {
                if (text === '') {
                    setRibbon([], null);
                    return;
                }
                const msg = parseJson(text);
                if (msg && msg.type === 'ribbon' && Array.isArray(msg.entries))
                    setRibbon(msg.entries, msg.version);
                return;
            }
            if (topic !== feedTopic) return;
            const msg = parseJson(text);
            if (!msg) return;
            if (msg.type === 'post.created' && validPost(msg.post)) {
                // Live posts come in the server's order: once the feed is
                // whole up to the cursor, the next one moves it on.
                if (state.synced)
                    state.cursor = msg.post.id;
                addPost(msg.post, {fresh : true, live : true});
                updateFeedChrome();
            } else if (msg.type === 'post.deleted' && typeof msg.post_id === 'string') {
                removePost(msg.post_id);
            }
        });

        client.on('offline', () => {
            if (!current()) return;
            // Spread the reconnects of many clients when a node goes away.
            client.options.reconnectPeriod = 1000 + Math.floor(Math.random() * 2000);
            setConn(navigator.onLine === false ? 'offline' : (state.everLive ? 'reconnecting' : 'connecting'));
        });
        client.on('reconnect', () => {
            if (!current()) return;
            // The wait before the next attempt, should this one fail (MQTT.js
            // reads it when the connection closes): a short outage (a node
            // restarting, a page moving to another node) is retried every
            // 1-3 s; a long one (every node down) ever more slowly, so that
            // the pages do not all come back at once when the nodes do. Only
            // MQTT.js' own attempts count, and not while the browser is
            // offline (those fail at once; 'online' below starts over).
            const own = state.ownReconnect;
            state.ownReconnect = false;
            if (!own && navigator.onLine !== false)
                state.attempts += 1;
            if (state.attempts >= RECONNECT_QUICK) {
                const base =
                    Math.min(1000 * 2 ** (state.attempts - RECONNECT_QUICK + 1), RECONNECT_MAX_MS);
                client.options.reconnectPeriod = Math.round(base * (0.5 + Math.random()));
            }
            setConn(navigator.onLine === false ? 'offline' : (state.everLive ? 'reconnecting' : 'connecting'));
        });
        client.on('close', () => {
            if (!current()) return;
            state.subscribed = false;
            if ($('conn-state').getAttribute('data-state') === 'live') setConn('reconnecting');
        });
        client.on('error', (err) => {
            if (!current()) return;
            const code = err && typeof err.code === 'number' ? err.code : null;
            if (code === 4 || code === 5 || code === 134 || code === 135) {
                brokerRefused();
            } else if (code !== null && code > 0 && code < 256) {
                // Another CONNACK refusal (server unavailable, ...): MQTT.js
                // does not retry those by itself.
                state.refusals += 1;
                setConn('reconnecting');
                scheduleRetry();
            }
            // Transport errors: MQTT.js reconnects by itself.
        });
    }

    // After a CONNACK refusal (MQTT.js does not retry those): connect
    // again after REFUSED_RETRY_MS, doubled for each refusal in a row up to
    // REFUSED_RETRY_MAX_MS, give or take a quarter, so that the pages of a
    // node that refuses everyone do not all come back at once.
    function scheduleRetry() {
        clearTimeout(state.refusedTimer);
        const client = state.client;
        const n = Math.min(Math.max(state.refusals, 1), 8);
        const delay = Math.min(REFUSED_RETRY_MS * 2 ** (n - 1), REFUSED_RETRY_MAX_MS) *
                      (0.75 + Math.random() / 2);
        state.refusedTimer = setTimeout(() => {
            if (state.client === client && !client.connected) {
                state.ownReconnect = true;
                client.reconnect();
            }
        }, delay);
    }

    // The broker refused our token. A dev session gets a new token; anything
    // else: ask the API, which signs out on 401. Otherwise (the API took the
    // token, or could not answer now) we connect again later: a page must
    // not stay offline for good because the API was away at that moment.
    function brokerRefused() {
        const sess = state.session;
        if (!sess) return;
        state.refusals += 1;
        setConn('offline');
        const retry = () => {
            if (state.session !== sess)
                return;
            setConn('reconnecting');
            scheduleRetry();
        };
        const now = Date.now();
        if (sess.kind === 'dev' && state.config && state.config.dev_mode && now - state.refusedRenewAt > REFUSED_RETRY_MS) {
            state.refusedRenewAt = now;
            // A new token reconnects at once (setToken); without one, retry.
            renewDevToken().then((renewed) => {
                if (!renewed)
                    retry();
            });
            return;
        }
        api('GET', '/follows')
            .then(() => {
                notice('The live-update server refused your token; retrying.');
                retry();
            })
            .catch((err) => {
                reportNotice(err);
                retry();
            });
    }

    function stopMqtt() {
        const client = state.client;
        state.client = null;
        clearTimeout(state.refusedTimer);
        if (client) {
            try {
                client.end(true);
            } catch (e) { /* already closed */ }
        }
    }

    // A new token for the live connection: the broker checks the password
    // at CONNECT only, so reconnect to carry the new expiry.
    function reconnectWithToken(token) {
        const client = state.client;
        if (!client) return;
        client.options.password = token;
        clearTimeout(state.refusedTimer);
        setConn(state.everLive ? 'reconnecting' : 'connecting');
        // Connected: a clean DISCONNECT. Otherwise drop whatever attempt is
        // under way (it carries the old token) so there is only one.
        client.end(!client.connected);
        state.ownReconnect = true;
        client.reconnect();
    }

    function parseJson(text) {
        try {
            const v = JSON.parse(text);
            return v && typeof v === 'object' ? v : null;
        } catch (e) {
            return null;
        }
    }

    // ---------------------------------------------------------------- token renewal / expiry

    function renewAt(sess) {
        return sess.iat + RENEW_AT * (sess.exp - sess.iat);
    }

    function warnLead(sess) {
        return Math.min(WARN_BEFORE_S, Math.max(5, 0.2 * (sess.exp - sess.iat)));
    }

    // One timer for the next thing to do about the token: renew it (dev),
    // warn / count down (pasted), sign out at exp.
    function scheduleTokenCheck() {
        clearTimeout(state.renewTimer);
        const sess = state.session;
        if (!sess) return;
        const now = Date.now() / 1000;
        let at;
        if (sess.kind === 'dev') {
            at = renewAt(sess);
            if (at <= now) at = sess.exp;           // renewal under way or failed: next is exp
        } else {
            at = sess.exp - warnLead(sess);
            if (at <= now) at = Math.min(sess.exp, now + 1);  // the countdown
        }
        const delay = Math.max(0, Math.min((at - now) * 1000, 2147483000));
        state.renewTimer = setTimeout(checkToken, delay + 50);
    }

    function checkToken() {
        const sess = state.session;
        if (!sess) return;
        const now = Date.now() / 1000;
        if (now >= sess.exp) {
            signOut('Your session expired. Sign in again.');
            return;
        }
        if (sess.kind === 'dev') {
            if (now >= renewAt(sess)) {
                renewDevToken();
                return;
            }
        } else if (now >= sess.exp - warnLead(sess)) {
            const left = Math.max(0, Math.round(sess.exp - now));
            $('expiry-text').textContent = 'Your token expires in ' +
                (left >= 90 ? Math.round(left / 60) + ' minutes' : left + (left === 1 ? ' second' : ' seconds')) +
                '. Paste a new token to stay signed in.';
            show($('expiry-warning'), true);
        }
        scheduleTokenCheck();
    }

    // Fetches a new dev token and connects with it. Resolves to true when
    // it did, false otherwise (another renewal under way, a failure, the
    // session changed).
    async function renewDevToken() {
        const sess = state.session;
        if (!sess || state.renewing)
            return false;
        state.renewing = true;
        try {
            const data = await api('POST', '/dev/token', { user_id: sess.userId }, { noAuth: true });
            if (state.session !== sess)
                return false;
            if (!data || typeof data.token !== 'string') throw new ApiError(0, 'bad', 'The server sent no token.');
            const next = makeSession(data.token, 'dev', data.expires_at);
            if (next.userId !== sess.userId) throw new ApiError(0, 'bad', 'The server sent a token for another user.');
            setToken(next);
            return true;
        } catch (err) {
            if (state.session !== sess || (err && err.code === 'stale'))
                return false;
            if (err && err.status === 404) {
                // Dev mode was switched off: this token runs out, like a pasted one.
                sess.kind = 'pasted';
                saveSession();
            } else {
                notice('Renewing your session failed (' + (errorText(err) || 'error') + '); retrying.');
                clearTimeout(state.renewTimer);
                state.renewTimer = setTimeout(checkToken, 10000);
                return false;
            }
        } finally {
            state.renewing = false;
        }
        scheduleTokenCheck();
        return false;
    }

    function setToken(next) {
        const sess = state.session;
        sess.token = next.token;
        sess.iat = next.iat;
        sess.exp = next.exp;
        sess.kind = next.kind;
        saveSession();
        show($('expiry-warning'), false);
        reconnectWithToken(next.token);
        scheduleTokenCheck();
    }

    $('renew-form').addEventListener('submit', (ev) => {
        ev.preventDefault();
        const sess = state.session;
        if (!sess) return;
        const raw = $('renew-token').value.trim();
        let next;
        try {
            next = makeSession(raw, 'pasted');
        } catch (e) {
            notice(e.message);
            return;
        }
        if (next.userId !== sess.userId) {
            notice('That token is for ' + next.userId + ', not ' + sess.userId + '. Sign out to switch users.');
            return;
        }
        if (next.exp <= Date.now() / 1000) {
            notice('That token has already expired.');
            return;
        }
        $('renew-token').value = '';
        setToken(next);
    });

    // ---------------------------------------------------------------- feed

    function validPost(p) {
        return p && typeof p === 'object' && typeof p.id === 'string' && typeof p.author_id === 'string' &&
            typeof p.text === 'string' && typeof p.created_at === 'number';
    }

    // Newest first: created_at descending, then id descending.
    function newerFirst(a, b) {
        if (a.created_at !== b.created_at) return b.created_at - a.created_at;
        return a.id < b.id ? 1 : (a.id > b.id ? -1 : 0);
    }

    function renderPost(post) {
        const mine = state.session && post.author_id === state.session.userId;
        const item = el('li', {
            class: 'post' + (mine ? ' post-mine' : ''),
            'data-testid': 'post',
            'data-post-id': post.id,
            'data-author': post.author_id,
        });
        const head = el('div', { class: 'post-head' },
            el('span', { class: 'post-author', text: post.author_id }),
            el('span', { class: 'dot', 'aria-hidden': 'true', text: '·' }),
            timeEl(post.created_at));
        if (mine) {
            const del = el('button', { type: 'button', class: 'btn-link post-delete', 'data-testid': 'post-delete', 'aria-label': 'Delete this post', text: 'Delete' });
            del.addEventListener('click', () => deletePost(post.id, del));
            head.appendChild(del);
        }
        const body = el('div', { class: 'post-body' }, head,
            el('p', { class: 'post-text', 'data-testid': 'post-text', text: post.text }));
        item.appendChild(avatar(post.author_id));
        item.appendChild(body);
        return item;
    }

    function addPost(post, opts) {
        if (state.deleted.has(post.id)) return;
        const existing = state.posts.get(post.id);
        const liveAt = opts && opts.live ? Date.now() : 0;
        if (existing) {
            if (!(opts && opts.pending)) existing.pending = false;
            if (!existing.liveAt)
                existing.liveAt = liveAt;
            return;
        }
        const node = renderPost(post);
        if (opts && opts.fresh) {
            node.classList.add('fresh');
            setTimeout(() => node.classList.remove('fresh'), 2500);
        }
        const feed = $('feed');
        // Insert in order; new posts nearly always go first.
        let before = null;
        for (const child of feed.children) {
            const other = state.posts.get(child.getAttribute('data-post-id'));
            if (other && newerFirst(post, other.post) < 0) {
                before = child;
                break;
            }
        }
        feed.insertBefore(node, before);
        state.posts.set(post.id,
                        {post, el : node, pending : Boolean(opts && opts.pending), liveAt});
    }

    function removePost(id) {
        state.deleted.add(id);
        dropPost(id);
    }

    // Off the page, without counting it as deleted: it may come back.
    function dropPost(id)
    {
        const entry = state.posts.get(id);
        if (!entry) return;
        state.posts.delete(id);
        entry.el.remove();
        updateFeedChrome();
    }

    function clearFeed() {
        state.posts.clear();
        state.order = [];
        state.cursor = null;
        state.synced = false;
        state.feedGen += 1;
        $('feed').replaceChildren();
    }

    function oldestPost() {
        let oldest = null;
        for (const { post } of state.posts.values()) {
            if (!oldest || newerFirst(post, oldest) > 0) oldest = post;
        }
        return oldest;
    }

    function updateFeedChrome() {
        show($('feed-loading'), !state.feedLoaded && state.posts.size === 0);
        show($('feed-empty'), state.feedLoaded && state.posts.size === 0);
        show($('load-older'), state.feedLoaded && typeof state.nextBefore === 'string');
    }

    function pagePosts(data) {
        if (!data || !Array.isArray(data.posts)) throw new ApiError(0, 'bad', 'The server sent an unreadable feed.');
        return data.posts.filter(validPost);
    }

    async function loadFirstPage() {
        const data = await api('GET', '/feed?limit=' + FEED_PAGE);
        const posts = pagePosts(data);
        for (const p of posts) addPost(p);
        state.order = posts.map((p) => p.id);
        if (posts.length)
            state.cursor = posts[0].id;
        if (state.nextBefore === undefined) state.nextBefore = typeof data.next_before === 'string' ? data.next_before : null;
        state.feedLoaded = true;
        updateFeedChrome();
    }

    // What was posted while we were away, forward from state.cursor page
    // by page (protocol.md, "Catching up"): no gap however much it was.
    // False when the cursor is not known any more, or there is more than
    // CATCH_UP_PAGES pages of it: then the caller starts over.
    async function catchUp()
    {
        let after = state.cursor;
        for (let i = 0; i < CATCH_UP_PAGES; i++) {
            const data = await api('GET', '/feed?limit=' + FEED_PAGE +
                                              '&after=' + encodeURIComponent(after));
            const posts = pagePosts(data);
            if (data.after_found !== true)
                return false;
            for (const p of posts)
                addPost(p);
            if (Array.isArray(data.posts) && data.posts.length &&
                typeof data.posts[0].id === 'string')
                state.cursor = data.posts[0].id;
            if (typeof data.next_after !== 'string')
                return true;
            after = data.next_after;
        }
        return false;
    }

    // After a reconnect: what we missed (catchUp), then the first page
    // again, merged into what is shown: posts shown but gone from the
    // server (deleted while we were away) are taken off. When the page does
    // not reach what we have the list starts over from it. A feed that
    // had no older posts (a short first page, or Load older at its end)
    // may have some now (an empty feed filled up, an author followed since,
    // whose posts reads merge in): when this page is full, Load older goes
    // on from the oldest post shown.
    async function refreshFirstPage() {
        if (!state.feedLoaded) {
            return loadFirstPage();
        }
        if (state.cursor && !(await catchUp())) {
            clearFeed();
            state.nextBefore = undefined;
            state.feedLoaded = false; // a retry after a failure here starts over too
            updateFeedChrome();
            await loadFirstPage();
            return;
        }
        const known = new Set(state.posts.keys());
        const data = await api('GET', '/feed?limit=' + FEED_PAGE);
        const posts = pagePosts(data);
        const served = Array.isArray(data.posts) ? data.posts.length : 0;
        if (typeof data.next_before === 'string' && served < FEED_PAGE) {
            // Cut short by the server's budget (ids of gone posts): no
            // span to compare with what is shown; just add what came.
            for (const p of posts)
                addPost(p);
            if (state.nextBefore === null)
                state.nextBefore = olderFrom(data.next_before);
            updateFeedChrome();
            return;
        }
        const full = typeof data.next_before === 'string';
        const ids = new Set(posts.map((p) => p.id));
        if (!state.cursor && posts.length)
            state.cursor = posts[0].id;
        if (full && known.size && !posts.some((p) => known.has(p.id))) {
            clearFeed();
            for (const p of posts) addPost(p);
            state.order = posts.map((p) => p.id);
            if (posts.length)
                state.cursor = posts[0].id;
            state.nextBefore = data.next_before;
            updateFeedChrome();
            return;
        }
        dropMissing(posts, ids, known, full);
        for (const p of posts) addPost(p);
        if (full && state.nextBefore === null)
            state.nextBefore = olderFrom(data.next_before);
        else if (!full && state.nextBefore === undefined)
            state.nextBefore = null;
        updateFeedChrome();
    }

    // Takes off the posts shown that a first page (posts, their ids; full:
    // older ones remain) no longer lists though it reaches below them:
    // deleted while we were away. Their places come from the pages read
    // before, in the server's order (state.order): a post read above one
    // this page lists is missing for good. A post known only from a live
    // message has no place yet (a big author's feed writes come after the
    // live delivery, and a post's created_at need not follow the server's
    // order): judged by created_at against the page's oldest, and only
    // once it came LIVE_SETTLE_MS ago. Posts only taken off the page, not
    // held as deleted. Then state.order is this page over what was below.
    function dropMissing(posts, ids, known, full)
    {
        let reach = full ? -1 : state.order.length - 1;
        state.order.forEach((id, i) => {
            if (ids.has(id))
                reach = Math.max(reach, i);
        });
        const placed = new Set(state.order);
        const oldest = posts.length ? posts[posts.length - 1] : null;
        for (const id of known) {
            const entry = state.posts.get(id);
            if (ids.has(id) || !entry || entry.pending)
                continue;
            const gone = placed.has(id)
                             ? state.order.indexOf(id) <= reach
                             : entry.liveAt > 0 && Date.now() - entry.liveAt >= LIVE_SETTLE_MS &&
                                   (!full || (oldest && newerFirst(entry.post, oldest) < 0));
            if (gone)
                dropPost(id);
        }
        state.order = posts.map((p) => p.id).concat(state.order.slice(reach + 1));
    }

    // Where Load older goes on once older posts may have come: below the
    // oldest post shown (none shown: the page's own next_before).
    function olderFrom(nextBefore)
    {
        const oldest = oldestPost();
        return oldest ? oldest.id : nextBefore;
    }

    async function loadOlder() {
        if (state.loadingOlder || typeof state.nextBefore !== 'string') return;
        state.loadingOlder = true;
        const button = $('load-older');
        button.disabled = true;
        button.textContent = 'Loading…';
        // A list that started over meanwhile (a reconnect's catch-up that
        // could not reach what was shown) has a Load older of its own.
        const gen = state.feedGen;
        try {
            let before = state.nextBefore;
            let data = await api('GET', '/feed?limit=' + FEED_PAGE + '&before=' + encodeURIComponent(before));
            if (gen !== state.feedGen)
                return;
            let posts = pagePosts(data);
            if (!posts.length && typeof data.next_before !== 'string') {
                // That entry left the feed (deleted or trimmed): continue
                // from the oldest post shown instead. (An empty page with a
                // next_before was cut short by the server's budget: go on
                // from there.)
                const oldest = oldestPost();
                if (oldest && oldest.id !== before) {
                    before = oldest.id;
                    data = await api('GET', '/feed?limit=' + FEED_PAGE + '&before=' + encodeURIComponent(before));
                    if (gen !== state.feedGen)
                        return;
                    posts = pagePosts(data);
                }
            }
            for (const p of posts) addPost(p);
            // Right below the pages read: their order goes on.
            if (before === state.order[state.order.length - 1]) {
                const had = new Set(state.order);
                state.order.push(...posts.map((p) => p.id).filter((id) => !had.has(id)));
            }
            state.nextBefore = typeof data.next_before === 'string' ? data.next_before : null;
        } catch (err) {
            reportNotice(err);
        } finally {
            state.loadingOlder = false;
            button.disabled = false;
            button.textContent = 'Load older';
            updateFeedChrome();
        }
    }

    // After post id was deleted: the key kept for the text in the box
    // (a post whose answer was lost is sent again with it) is dropped when
    // the deleted post has that text, so the text sent again is a new
    // post, not a retry of that one (its key would name the deleted post).
    // The delete of another post leaves it.
    function forgetKeyOf(id)
    {
        const entry = state.posts.get(id);
        if (composeKey && entry && entry.post.text === composeKey.text)
            composeKey = null;
    }

    async function deletePost(id, button) {
        button.disabled = true;
        button.textContent = 'Deleting…';
        try {
            await api('DELETE', '/posts/' + encodeURIComponent(id));
            forgetKeyOf(id);
            removePost(id);
        } catch (err) {
            const entry = state.posts.get(id);
            if (err && err.status === 410) {
                // Deleted already (a delete sent twice, or from another tab).
                forgetKeyOf(id);
                removePost(id);
                return;
            }
            if (err && err.status === 404 && !(entry && entry.pending)) {
                removePost(id);
                return;
            }
            if (err && err.status === 404) {
                // Our own post, accepted but not written yet (the bridges
                // are behind): gone from the page now, it would still be
                // published once they catch up.
                button.disabled = false;
                button.textContent = 'Delete';
                notice('This post is still being published; delete it again in a moment.');
                return;
            }
            button.disabled = false;
            button.textContent = 'Delete';
            reportNotice(err);
        }
    }

    $('load-older').addEventListener('click', loadOlder);

    // ---------------------------------------------------------------- compose

    function updateCompose() {
        const text = $('compose-text').value;
        const bytes = byteLength(text);
        const count = $('compose-count');
        count.textContent = bytes + ' / ' + MAX_POST_BYTES + ' bytes';
        count.classList.toggle('over', bytes > MAX_POST_BYTES);
        count.classList.toggle('near', bytes <= MAX_POST_BYTES && bytes > MAX_POST_BYTES * 0.9);
        $('compose-send').disabled = composing || text.trim() === '' || bytes > MAX_POST_BYTES;
    }

    let composing = false;
    // The key of the text being sent (POST /api/v1/posts "key"): kept until
    // that text is accepted, so a retry after a failure (a 503 that came
    // after RabbitMQ took it, a lost answer) names the same post and is
    // applied once.
    let composeKey = null;

    async function sendPost() {
        const area = $('compose-text');
        const text = area.value;
        if (composing || text.trim() === '') return;
        if (byteLength(text) > MAX_POST_BYTES) {
            setError($('compose-error'), 'A post can be at most ' + MAX_POST_BYTES + ' bytes.');
            return;
        }
        setError($('compose-error'), '');
        composing = true;
        updateCompose();
        if (!composeKey || composeKey.text !== text)
            composeKey = {text, key : randomHex(32)};
        try {
            const data = await api('POST', '/posts', {text, key : composeKey.key});
            composeKey = null;
            if (data && validPost(data.post)) {
                addPost(data.post, { pending: true, fresh: true });
                updateFeedChrome();
            }
            if (area.value === text) area.value = '';
        } catch (err) {
            reportTo($('compose-error'))(err);
        } finally {
            composing = false;
            updateCompose();
        }
    }

    $('compose-text').addEventListener('input', () => {
        setError($('compose-error'), '');
        updateCompose();
    });
    $('compose-text').addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
            ev.preventDefault();
            sendPost();
        }
    });
    $('compose-form').addEventListener('submit', (ev) => {
        ev.preventDefault();
        sendPost();
    });

    // ---------------------------------------------------------------- ribbon

    function validEntry(e) {
        return e && typeof e === 'object' && typeof e.user_id === 'string' && ID_RE.test(e.user_id);
    }

    // Shows a ribbon document unless the one shown is newer. Each node's
    // broker keeps its own retained copy, and after a switch of node (or a
    // GET answered before a push) an older document can arrive after a
    // newer one: versions only grow (docs/protocol.md). A document without
    // a version (an empty retained message) is always shown.
    function setRibbon(entries, version)
    {
        if (Number.isSafeInteger(version)) {
            if (version < state.ribbonVersion)
                return;
            state.ribbonVersion = version;
        }
        state.ribbon = entries.filter(validEntry);
        renderRibbon();
    }

    function renderRibbon() {
        const list = $('ribbon');
        const me = state.session ? state.session.userId : null;
        const items = state.ribbon.map((e) => {
            const name = typeof e.name === 'string' && e.name ? e.name : e.user_id;
            const item = el('li', {
                class: 'ribbon-entry' + (e.user_id === me ? ' ribbon-me' : ''),
                'data-testid': 'ribbon-entry',
                'data-user': e.user_id,
                title: name + (typeof e.text === 'string' && e.text ? ': ' + e.text : ''),
            }, avatar(e.user_id, true));
            const textBox = el('span', { class: 'ribbon-body' }, el('span', { class: 'ribbon-name', text: name }));
            if (typeof e.text === 'string' && e.text) textBox.appendChild(el('span', { class: 'ribbon-text', text: e.text }));
            else if (typeof e.at === 'number') textBox.appendChild(el('span', { class: 'ribbon-text muted' }, timeEl(e.at)));
            item.appendChild(textBox);
            return item;
        });
        if (!items.length) items.push(el('li', { class: 'ribbon-empty', text: 'Nobody on the ribbon yet. Be the first!' }));
        list.replaceChildren(...items);
    }

    async function loadRibbon() {
        const data = await api('GET', '/ribbon');
        if (data && Array.isArray(data.entries))
            setRibbon(data.entries, data.version);
    }

    $('ribbon-form').addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const input = $('ribbon-text');
        const button = $('ribbon-push');
        const text = input.value.trim();
        if (byteLength(text) > MAX_RIBBON_TEXT_BYTES) {
            notice('The ribbon text can be at most ' + MAX_RIBBON_TEXT_BYTES + ' bytes.');
            return;
        }
        button.disabled = true;
        try {
            const data = await api('POST', '/ribbon', text ? { text } : {});
            input.value = '';
            const shown = data && validEntry(data.entry)
                              ? state.ribbon.find((e) => e.user_id === data.entry.user_id)
                              : undefined;
            // Shown at once; the retained ribbon follows over MQTT (unless
            // it came first: then it already holds this entry or a newer one).
            if (data && validEntry(data.entry) &&
                !(shown && typeof shown.at === 'number' && shown.at >= data.entry.at)) {
                state.ribbon = [data.entry].concat(state.ribbon.filter((e) => e.user_id !== data.entry.user_id));
                renderRibbon();
            }
        } catch (err) {
            reportNotice(err);
        } finally {
            button.disabled = false;
        }
    });

    // ---------------------------------------------------------------- follows

    function renderFollowing() {
        const list = $('following');
        const items = state.following.map((id) => {
            const unfollow = el('button', { type: 'button', class: 'btn btn-quiet btn-small', 'data-testid': 'unfollow-button', 'aria-label': 'Unfollow ' + id, text: 'Unfollow' });
            unfollow.addEventListener('click', () => unfollowUser(id, unfollow));
            return el('li', { class: 'following-entry', 'data-testid': 'following-entry', 'data-user': id },
                avatar(id, true), el('span', { class: 'following-name', text: id }), unfollow);
        });
        list.replaceChildren(...items);
        $('following-count').textContent = String(state.following.length);
        show($('following-empty'), state.following.length === 0);
    }

    // Follows and unfollows the server confirmed: a list read meanwhile
    // (a retried load) may not have them yet, as the bridges apply them
    // after the answer (later still when they are behind). Each is applied
    // over a list read until one agrees with it, for FOLLOW_EDITS_MS at
    // most; one that undid an earlier edit of the same user is kept the
    // whole time (a list can agree with it before the bridges have applied
    // the edit it undid, and then show that one).
    const FOLLOW_EDITS_MS = 600000;
    let followEdits = []; // {at, id, add, toggled}

    function noteFollowEdit(id, add)
    {
        const now = Date.now();
        const toggled = followEdits.some((e) => e.id === id && e.add !== add);
        followEdits = followEdits.filter((e) => now - e.at < FOLLOW_EDITS_MS && e.id !== id);
        followEdits.push({at : now, id, add, toggled});
    }

    async function loadFollows() {
        const data = await api('GET', '/follows');
        if (data && Array.isArray(data.following)) {
            const list = new Set(data.following.filter((id) => typeof id === 'string'));
            const now = Date.now();
            followEdits = followEdits.filter((e) => now - e.at < FOLLOW_EDITS_MS &&
                                                    (e.toggled || list.has(e.id) !== e.add));
            for (const e of followEdits) {
                if (e.add)
                    list.add(e.id);
                else
                    list.delete(e.id);
            }
            state.following = Array.from(list).sort();
            renderFollowing();
        }
    }

    $('follow-form').addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const input = $('follow-user');
        const errNode = $('follow-error');
        const id = input.value.trim();
        setError(errNode, '');
        if (!ID_RE.test(id)) {
            setError(errNode, 'A user id is 1–64 letters, digits, "_" or "-".');
            return;
        }
        if (state.session && id === state.session.userId) {
            setError(errNode, 'You cannot follow yourself.');
            return;
        }
        const button = $('follow-button');
        button.disabled = true;
        try {
            await api('PUT', '/follows/' + encodeURIComponent(id));
            noteFollowEdit(id, true);
            input.value = '';
            if (!state.following.includes(id)) {
                state.following.push(id);
                state.following.sort();
            }
            renderFollowing();
        } catch (err) {
            reportTo(errNode)(err);
        } finally {
            button.disabled = false;
        }
    });

    async function unfollowUser(id, button) {
        button.disabled = true;
        try {
            await api('DELETE', '/follows/' + encodeURIComponent(id));
            noteFollowEdit(id, false);
            state.following = state.following.filter((x) => x !== id);
            renderFollowing();
        } catch (err) {
            button.disabled = false;
            reportTo($('follow-error'))(err);
        }
    }

    // ---------------------------------------------------------------- sign in / out

    function resetData() {
        cancelRetries();
        followEdits = [];
        clearFeed();
        state.deleted.clear();
        state.nextBefore = undefined;
        state.feedLoaded = false;
        state.loadingOlder = false;
        state.ribbon = [];
        state.ribbonVersion = -1;
        state.following = [];
        state.renewing = false;
        state.refusals = 0;
        state.refusedRenewAt = 0;
    }

    function startSession(sess) {
        state.epoch += 1;
        resetData();
        state.session = sess;
        saveSession();
        $('signed-in-as').textContent = sess.userId;
        show($('account'), true);
        show($('signin-view'), false);
        show($('app-view'), true);
        show($('expiry-warning'), false);
        setError($('compose-error'), '');
        setError($('follow-error'), '');
        $('compose-text').value = '';
        updateCompose();
        updateFeedChrome();
        renderRibbon();
        renderFollowing();
        connectMqtt();
        loadRetrying('feed', refreshFirstPage);
        loadRetrying('ribbon', loadRibbon);
        loadRetrying('follows', loadFollows);
        checkToken();
    }

    function signOut(message) {
        state.epoch += 1;
        stopMqtt();
        clearTimeout(state.renewTimer);
        state.session = null;
        saveSession();
        resetData();
        setConn('offline');
        show($('account'), false);
        show($('app-view'), false);
        show($('expiry-warning'), false);
        show($('notice'), false);
        showSignIn(message);
    }

    function showSignIn(message) {
        show($('signin-view'), true);
        setError($('signin-message'), message || '');
        const dev = Boolean(state.config && state.config.dev_mode);
        show($('dev-form'), dev);
        show($('signin-or'), dev);
        $('signin-button').disabled = false;
        $('signin-token-button').disabled = false;
        const focus = dev ? $('signin-user') : $('signin-token');
        if (!matchMedia('(pointer: coarse)').matches) focus.focus();
    }

    $('dev-form').addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const id = $('signin-user').value.trim();
        if (!ID_RE.test(id)) {
            setError($('signin-message'), 'A user id is 1–64 letters, digits, "_" or "-".');
            return;
        }
        const button = $('signin-button');
        button.disabled = true;
        setError($('signin-message'), '');
        try {
            const data = await api('POST', '/dev/token', { user_id: id }, { noAuth: true });
            if (!data || typeof data.token !== 'string') throw new ApiError(0, 'bad', 'The server sent no token.');
            startSession(makeSession(data.token, 'dev', data.expires_at));
            $('signin-user').value = '';
        } catch (err) {
            const text = errorText(err);
            if (text !== null) setError($('signin-message'), text);
        } finally {
            button.disabled = false;
        }
    });

    $('token-form').addEventListener('submit', (ev) => {
        ev.preventDefault();
        const raw = $('signin-token').value.trim();
        let sess;
        try {
            sess = makeSession(raw, 'pasted');
        } catch (e) {
            setError($('signin-message'), e.message);
            return;
        }
        if (sess.exp <= Date.now() / 1000) {
            setError($('signin-message'), 'That token has expired.');
            return;
        }
        $('signin-token').value = '';
        setError($('signin-message'), '');
        startSession(sess);
    });

    $('signout-button').addEventListener('click', () => signOut(''));
    $('notice-close').addEventListener('click', () => show($('notice'), false));

    window.addEventListener('offline', () => {
        if (state.session) setConn('offline');
    });
    window.addEventListener('online', () => {
        const client = state.client;
        if (!state.session || !client) return;
        if (client.connected && state.subscribed) {
            setConn('live');
            return;
        }
        setConn(state.everLive ? 'reconnecting' : 'connecting');
        // The network is back: connect now, not after a wait grown while
        // it was away. Only between two attempts (MQTT.js' reconnectTimer:
        // none is under way), and not after a refused token, which has
        // its own retry timer.
        state.attempts = 0;
        client.options.reconnectPeriod = 1000 + Math.floor(Math.random() * 2000);
        if (!client.connected && client.reconnectTimer && !state.refusals) {
            state.ownReconnect = true;
            client.reconnect();
        }
    });
    document.addEventListener('visibilitychange', () => {
        // Timers are throttled in background tabs: check the token when
        // the tab comes back.
        if (document.visibilityState === 'visible' && state.session) checkToken();
    });

    // ---------------------------------------------------------------- start

    async function boot() {
        setConn('offline');
        const configState = $('config-state');
        for (let attempt = 0; ; attempt++) {
            try {
                const data = await api('GET', '/config', undefined, { noAuth: true });
                if (!data || typeof data !== 'object') throw new ApiError(0, 'bad', 'The server sent an unreadable configuration.');
                state.config = data;
                break;
            } catch (err) {
                show($('signin-view'), true);
                show(configState, true);
                configState.textContent = 'Cannot load the configuration (' + (errorText(err) || 'error') + '); retrying…';
                await new Promise((r) => setTimeout(r, Math.min(10000, 1000 * (attempt + 1))));
            }
        }
        show(configState, false);
        state.tickTimer = setInterval(() => {
            refreshTimes();
            if (state.session) checkToken();
        }, TICK_MS);
        const saved = loadSavedSession();
        if (saved) startSession(saved);
        else showSignIn('');
    }

    boot();
})();
