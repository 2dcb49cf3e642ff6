// GET /slow?ms=N answers after N ms (default 3000): a request still in flight when a deploy
// switches releases (the zero-downtime switch must let it finish).
export const dynamic = 'force-dynamic';

export async function GET(request) {
  const ms = Number(new URL(request.url).searchParams.get('ms') || 3000);
  await new Promise((resolve) => setTimeout(resolve, ms));
  return new Response(`slow ${ms} ms from ${process.cwd()}\n`, {
    headers: { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store' },
  });
}
