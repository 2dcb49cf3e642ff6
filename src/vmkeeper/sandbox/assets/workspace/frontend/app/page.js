import fs from 'node:fs';
import path from 'node:path';

function buildId() {
  try {
    return fs.readFileSync(path.join(process.cwd(), 'build', 'BUILD_ID'), 'utf8').trim();
  } catch {
    return '(unknown)';
  }
}

// Rendered per request so the release marker and cwd reflect the running release.
export const dynamic = 'force-dynamic';

export default function Home() {
  const release = process.env.RELEASE_ID || '(RELEASE_ID not set)';
  return (
    <main>
      <h1>vmkeeper sandbox</h1>
      <p>
        Release: <code id="release">{release}</code>
      </p>
      <p>
        Build: <code id="build-id">{buildId()}</code>
      </p>
      <p>
        Working directory: <code id="cwd">{process.cwd()}</code>
      </p>
      <p>
        <a href="/api-check">API check</a>
      </p>
    </main>
  );
}
