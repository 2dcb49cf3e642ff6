export const dynamic = 'force-dynamic';

function backendUrl() {
  if (process.env.BACKEND_URL) return process.env.BACKEND_URL.replace(/\/+$/, '');
  return 'http://127.0.0.1:' + (process.env.BACKEND_PORT || 3000);
}

async function checkBackend() {
  const url = backendUrl() + '/api/health';
  try {
    const res = await fetch(url, { cache: 'no-store', signal: AbortSignal.timeout(2000) });
    const text = await res.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    return { url, ok: res.ok, status: res.status, body };
  } catch (err) {
    const cause = err && err.cause ? ` (${err.cause.code || err.cause.message || err.cause})` : '';
    return { url, ok: false, status: null, error: `${err.name}: ${err.message}${cause}` };
  }
}

export default async function ApiCheck() {
  const result = await checkBackend();
  return (
    <main>
      <h1>API check</h1>
      <p>
        Backend: <code>{result.url}</code> —{' '}
        <strong id="backend-status">{result.ok ? 'reachable' : 'unreachable'}</strong>
      </p>
      <pre id="backend-result">{JSON.stringify(result, null, 2)}</pre>
    </main>
  );
}
