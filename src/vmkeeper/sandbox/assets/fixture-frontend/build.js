'use strict';
// "npm run build" of the fixture frontend. Writes:
//   build/index.html      the page server.js serves (contains the build id)
//   build/BUILD_ID        the build id alone
//   build/cache/some-file a build cache the deploy must remove
//   .next/trace           another cache the deploy must remove
// Build id: env BUILD_ID, GIT_SHA, GIT_COMMIT or RELEASE_ID (first set), else a UTC timestamp.
// Marker files in this directory change the outcome:
//   FAIL_BUILD  -> message on stderr, exit 1, nothing written
//   HANG_BUILD  -> never finishes (until killed)
// BUILD_DELAY_MS=N sleeps N ms before writing (to make a build take a while).
const fs = require('node:fs');
const path = require('node:path');

const dir = __dirname;
const has = (name) => fs.existsSync(path.join(dir, name));

if (has('FAIL_BUILD')) {
  console.error('fixture build failed: FAIL_BUILD marker present in ' + dir);
  process.exit(1);
}

if (has('HANG_BUILD')) {
  console.error('fixture build hanging: HANG_BUILD marker present in ' + dir + ' (kill me)');
  setInterval(() => {}, 1 << 30); // keeps the event loop alive until the process is killed
} else {
  setTimeout(build, Number(process.env.BUILD_DELAY_MS || 0));
}

function build() {
  const buildId =
    process.env.BUILD_ID ||
    process.env.GIT_SHA ||
    process.env.GIT_COMMIT ||
    process.env.RELEASE_ID ||
    new Date().toISOString().replace(/[-:.]/g, '');
  const builtAt = new Date().toISOString();
  const out = path.join(dir, 'build');
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(path.join(out, 'cache'), { recursive: true });
  fs.mkdirSync(path.join(dir, '.next'), { recursive: true });
  const html =
    '<!doctype html>\n<html><head><meta charset="utf-8"><title>vmkeeper fixture</title></head>\n' +
    `<body><h1>vmkeeper fixture frontend</h1>\n<p>build: <code id="build-id">${escapeHtml(buildId)}</code></p>\n` +
    `<p>built at: <code id="built-at">${builtAt}</code></p></body></html>\n`;
  fs.writeFileSync(path.join(out, 'index.html'), html);
  fs.writeFileSync(path.join(out, 'BUILD_ID'), buildId);
  fs.writeFileSync(path.join(out, 'cache', 'some-file'), 'cache ' + builtAt + '\n');
  fs.writeFileSync(path.join(dir, '.next', 'trace'), JSON.stringify({ buildId, builtAt }) + '\n');
  console.log(`fixture build ${buildId} written to ${out}`);
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
