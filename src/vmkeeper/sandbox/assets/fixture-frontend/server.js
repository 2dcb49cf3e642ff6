'use strict';
// "npm run start" of the fixture frontend: serves build/index.html at / on
// 127.0.0.1:${FRONT_PORT:-3001} (HOST overrides the address).
//   - build/index.html missing at start -> message on stderr, exit 1 at once
//   - NEVER_READY marker in this directory -> listens, but answers every request 500
//   - START_DELAY_MS=N waits N ms before listening (a slow start)
//   /slow?ms=N answers after N ms (default 3000)
// Any other path -> 404. Exits cleanly on SIGTERM/SIGINT.
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const dir = __dirname;
const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.env.FRONT_PORT || 3001);
const index = path.join(dir, 'build', 'index.html');
const neverReady = fs.existsSync(path.join(dir, 'NEVER_READY'));

if (!fs.existsSync(index)) {
  console.error(`fixture frontend: ${index} is missing; run "npm run build" first`);
  process.exit(1);
}

let buildId = '';
try {
  buildId = fs.readFileSync(path.join(dir, 'build', 'BUILD_ID'), 'utf8').trim();
} catch {}

const server = http.createServer((req, res) => {
  res.on('finish', () =>
    console.log(`${new Date().toISOString()} ${req.method} ${req.url} ${res.statusCode}`)
  );
  const headers = { 'Cache-Control': 'no-store' };
  if (buildId) headers['X-Build-Id'] = buildId;
  if (neverReady) {
    res.writeHead(500, { ...headers, 'Content-Type': 'text/plain' });
    return res.end('never ready (NEVER_READY marker present)\n');
  }
  const url = new URL(req.url, 'http://localhost');
  const urlPath = url.pathname;
  if (urlPath === '/slow') {
    // A request that takes a while (?ms=N, default 3000): in flight across a switch.
    const ms = Number(url.searchParams.get('ms') || 3000);
    setTimeout(() => {
      res.writeHead(200, { ...headers, 'Content-Type': 'text/plain' });
      res.end(`slow ${ms} ms from ${process.cwd()}\n`);
    }, ms);
    return;
  }
  if (urlPath !== '/' && urlPath !== '/index.html') {
    res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' });
    return res.end('not found\n');
  }
  let body;
  try {
    body = fs.readFileSync(index); // read per request, like a server whose build was deleted
  } catch (err) {
    res.writeHead(500, { ...headers, 'Content-Type': 'text/plain' });
    return res.end(`cannot read build: ${err.code || err.message}\n`);
  }
  res.writeHead(200, {
    ...headers,
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': body.length,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
});

server.keepAliveTimeout = 5000;
server.on('error', (err) => {
  console.error(`fixture frontend: cannot listen on ${HOST}:${PORT}: ${err.message}`);
  process.exit(1);
});

setTimeout(() => {
  server.listen(PORT, HOST, () =>
    console.log(
      `fixture frontend on http://${HOST}:${PORT} (pid ${process.pid}, cwd ${process.cwd()}` +
        (neverReady ? ', NEVER_READY' : '') +
        ')'
    )
  );
}, Number(process.env.START_DELAY_MS || 0));

function shutdown(sig) {
  console.log(`fixture frontend: ${sig} received, closing`);
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 3000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
