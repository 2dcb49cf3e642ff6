'use strict';
// Stand-in for the standard VM's backend API (PM2 app backend-dev).
//   GET /api/health   -> 200 {"ok":true,"service":"backend-dev","pid":...}
//   GET /api/auth/me  -> 401 without a valid HS256 JWT, 200 {"user":{...claims}} with one
//   POST /api/videos/:key/reverse -> asks the media service (vmkeeper media serve) to reverse
//        the uploaded video with storage key :key (URL-encoded); answers the service's job JSON
//   GET  /api/videos/jobs/:id -> the media service's job
//   anything else under /api -> 404 JSON
// Env: PORT (default 3000), HOST (default 127.0.0.1), JWT_SECRET (default 'sandbox-secret').
const http = require('node:http');
const { verify } = require('./jwt');

const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.env.PORT || 3000);
const SERVICE = 'backend-dev';

function send(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(data),
    'Cache-Control': 'no-store',
  });
  res.end(data);
}

function bearer(req) {
  const h = req.headers.authorization || '';
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1] : null;
}

// The media service (issue 7): the backend never spawns FFmpeg itself, it hands the job over.
const MEDIA_URL = process.env.MEDIA_URL || 'http://127.0.0.1:3090';
const MEDIA_TOKEN = process.env.MEDIA_TOKEN || '';

async function media(res, method, path, body) {
  try {
    const answer = await fetch(MEDIA_URL + path, {
      method,
      headers: { Authorization: `Bearer ${MEDIA_TOKEN}`, 'Content-Type': 'application/json' },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(10000),
    });
    const retry = answer.headers.get('retry-after');
    if (retry) res.setHeader('Retry-After', retry);
    return send(res, answer.status, await answer.json());
  } catch (err) {
    return send(res, 502, { error: 'media service unavailable', detail: String(err && err.message) });
  }
}

function route(req, res) {
  const path = new URL(req.url, 'http://localhost').pathname;
  const get = req.method === 'GET' || req.method === 'HEAD';
  if (path === '/api/health' && get) {
    return send(res, 200, { ok: true, service: SERVICE, pid: process.pid });
  }
  if (path === '/api/auth/me' && get) {
    const claims = verify(bearer(req));
    if (!claims) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      return send(res, 401, { error: 'unauthorized' });
    }
    return send(res, 200, { user: claims });
  }
  const reverse = /^\/api\/videos\/([^/]+)\/reverse$/.exec(path);
  if (reverse && req.method === 'POST') {
    let key;
    try {
      key = decodeURIComponent(reverse[1]);
    } catch (err) {
      return send(res, 400, { error: 'bad key' });
    }
    const force = new URL(req.url, 'http://localhost').searchParams.get('force') === '1';
    return media(res, 'POST', '/reverse', { key, force });
  }
  const job = /^\/api\/videos\/jobs\/([0-9a-f]+)$/.exec(path);
  if (job && get) {
    return media(res, 'GET', `/jobs/${job[1]}`);
  }
  // Everything else (under /api or not) is a JSON 404.
  return send(res, 404, { error: 'not found', path });
}

const server = http.createServer((req, res) => {
  const started = process.hrtime.bigint();
  res.on('finish', () => {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    console.log(
      `${new Date().toISOString()} ${req.method} ${req.url} ${res.statusCode} ${ms.toFixed(1)}ms`
    );
  });
  try {
    route(req, res);
  } catch (err) {
    console.error(`${new Date().toISOString()} error: ${err && err.stack ? err.stack : err}`);
    if (!res.headersSent) send(res, 500, { error: 'internal error' });
    else res.destroy();
  }
});

server.keepAliveTimeout = 5000;

server.on('error', (err) => {
  console.error(`${SERVICE}: cannot listen on ${HOST}:${PORT}: ${err.message}`);
  process.exit(1);
});

server.listen(PORT, HOST, () => {
  console.log(`${SERVICE} listening on http://${HOST}:${PORT} (pid ${process.pid})`);
});

function shutdown(signal) {
  console.log(`${SERVICE}: ${signal} received, closing`);
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 3000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
