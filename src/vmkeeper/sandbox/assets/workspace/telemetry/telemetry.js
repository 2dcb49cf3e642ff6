'use strict';
// Stand-in for the standard VM's telemetry daemon (PM2 app fl-telemetry). No dependencies.
//   TCP  127.0.0.1:${OTLP_GRPC_PORT:-4317}  accepts connections and closes them (no gRPC)
//   HTTP 127.0.0.1:${OTLP_HTTP_PORT:-4318}  POST /v1/traces|/v1/metrics|/v1/logs -> 200 {}
//                                           GET /  -> 200 JSON with request counts
// Env: OTLP_GRPC_PORT, OTLP_HTTP_PORT, HOST (default 127.0.0.1).
const http = require('node:http');
const net = require('node:net');

const HOST = process.env.HOST || '127.0.0.1';
const GRPC_PORT = Number(process.env.OTLP_GRPC_PORT || 4317);
const HTTP_PORT = Number(process.env.OTLP_HTTP_PORT || 4318);
const SIGNALS = { '/v1/traces': 'traces', '/v1/metrics': 'metrics', '/v1/logs': 'logs' };
const MAX_BODY = 16 * 1024 * 1024;

const counts = { traces: 0, metrics: 0, logs: 0, bytes: 0, grpc_connections: 0 };
const startedAt = new Date().toISOString();

function log(msg) {
  console.log(`${new Date().toISOString()} fl-telemetry ${msg}`);
}

function send(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(data),
  });
  res.end(data);
}

const httpServer = http.createServer((req, res) => {
  const path = new URL(req.url, 'http://localhost').pathname;
  const signal = SIGNALS[path];
  if (req.method === 'POST' && signal) {
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        send(res, 413, { error: 'payload too large' });
        req.destroy();
      }
    });
    req.on('end', () => {
      if (res.headersSent) return;
      counts[signal] += 1;
      counts.bytes += size;
      log(`POST ${path} ${size} bytes`);
      send(res, 200, {});
    });
    req.on('error', () => {});
    return;
  }
  if ((req.method === 'GET' || req.method === 'HEAD') && path === '/') {
    return send(res, 200, {
      service: 'fl-telemetry',
      pid: process.pid,
      started_at: startedAt,
      counts,
    });
  }
  req.resume();
  send(res, 404, { error: 'not found' });
});

const grpcServer = net.createServer((socket) => {
  counts.grpc_connections += 1;
  socket.on('error', () => {});
  socket.end();
});

function fail(what, port) {
  return (err) => {
    console.error(`fl-telemetry: cannot listen (${what}) on ${HOST}:${port}: ${err.message}`);
    process.exit(1);
  };
}
httpServer.on('error', fail('otlp/http', HTTP_PORT));
grpcServer.on('error', fail('otlp/grpc', GRPC_PORT));

grpcServer.listen(GRPC_PORT, HOST, () => log(`otlp/grpc stand-in on ${HOST}:${GRPC_PORT}`));
httpServer.listen(HTTP_PORT, HOST, () => log(`otlp/http on http://${HOST}:${HTTP_PORT}`));

function shutdown(sig) {
  log(`${sig} received, closing`);
  grpcServer.close();
  httpServer.close(() => process.exit(0));
  httpServer.closeIdleConnections();
  setTimeout(() => process.exit(0), 3000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
