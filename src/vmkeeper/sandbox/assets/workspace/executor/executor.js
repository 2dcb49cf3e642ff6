'use strict';
// Stand-in for the standard VM's executor bridge (PM2 app fl-executor). Listens on no port.
// Logs a heartbeat line every HEARTBEAT_SECONDS (default 30); exits cleanly on SIGTERM/SIGINT.
const INTERVAL_MS = Math.max(1, Number(process.env.HEARTBEAT_SECONDS || 30)) * 1000;
let beats = 0;

function log(msg) {
  console.log(`${new Date().toISOString()} fl-executor ${msg}`);
}

log(`started (pid ${process.pid}, cwd ${process.cwd()}, heartbeat every ${INTERVAL_MS / 1000}s)`);
const timer = setInterval(() => {
  beats += 1;
  log(`heartbeat ${beats}`);
}, INTERVAL_MS);

function shutdown(sig) {
  clearInterval(timer);
  log(`${sig} received, exiting after ${beats} heartbeats`);
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
