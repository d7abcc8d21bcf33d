// portkey-preload.mjs: loaded with `node --import` before @portkey-ai/gateway's
// start-server.js, for the benchmark only. Two fixes, nothing else:
//
// 1. Streaming. Portkey appends its x-portkey-* headers to the Response it got
//    from fetch(); @hono/node-server's lightweight Response keeps fetch's
//    immutable Headers when it wraps a stream body, so every streaming request
//    fails with "TypeError: immutable" (Portkey-AI/gateway#1389, #1550). We
//    hand Portkey a Response with a fresh, mutable copy of the headers.
// 2. Loopback. start-server.js calls serve({fetch, port}) with no host, so it
//    listens on every interface. A listen() with a port and no host is bound
//    to PORTKEY_HOST (default 127.0.0.1) instead.
import net from 'node:net';

const host = process.env.PORTKEY_HOST || '127.0.0.1';
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
    if (typeof args[0] === 'number' && (args[1] === undefined || typeof args[1] === 'function')) {
        const cb = args.find((a) => typeof a === 'function');
        return cb ? listen.call(this, args[0], host, cb) : listen.call(this, args[0], host);
    }
    return listen.apply(this, args);
};

const realFetch = globalThis.fetch;
globalThis.fetch = async function (...args) {
    const r = await realFetch.apply(this, args);
    return new Response(r.body, {
        status: r.status,
        statusText: r.statusText,
        headers: new Headers(r.headers),
    });
};
