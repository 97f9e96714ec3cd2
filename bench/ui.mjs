// The library page in headless Chromium (Debian's, driven by playwright-core): for a
// signed-in user with 500 items, RUNS cold navigations (a fresh context each: empty
// cache) to /library, and the same user's JSON API call for the same first page, in the
// same browser. Prints medians as JSON: time to first byte and full render (navigation
// timing), first contentful paint, and the JS/CSS bytes transferred.
//   node ui.mjs BASE SESSION_COOKIE TOKEN RUNS
import { chromium } from 'playwright-core';

const [base, session, token, runs] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const samples = { ttfb: [], dcl: [], load: [], fcp: [], assets: [], html: [], cards: [], apiTtfb: [], apiTotal: [], apiBytes: [] };
for (let i = 0; i < Number(runs); i++) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const url = new URL(base);
  await context.addCookies([{ name: 'fh_session', value: session, domain: url.hostname, path: '/', httpOnly: true, sameSite: 'Lax' }]);
  const page = await context.newPage();
  await page.goto(`${base}/library`, { waitUntil: 'load' });
  const m = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const fcp = performance.getEntriesByType('paint').find((p) => p.name === 'first-contentful-paint');
    const assets = performance.getEntriesByType('resource').filter((r) => /\.(js|css)$/.test(new URL(r.name).pathname));
    return {
      ttfb: nav.responseStart - nav.requestStart,
      dcl: nav.domContentLoadedEventEnd - nav.startTime,
      load: nav.loadEventEnd - nav.startTime,
      fcp: fcp ? fcp.startTime : NaN,
      assets: assets.reduce((n, r) => n + r.transferSize, 0),
      html: nav.transferSize,
      cards: document.querySelectorAll('#grid li.card').length,
    };
  });
  const api = await page.evaluate(async (token) => {
    const started = performance.now();
    const res = await fetch('/api/v1/media?limit=60', { headers: { Authorization: `Bearer ${token}` }, cache: 'no-store' });
    const body = await res.text();
    const total = performance.now() - started;
    const entry = performance.getEntriesByType('resource').filter((r) => r.name.includes('/api/v1/media?limit=60')).pop();
    return { ttfb: entry.responseStart - entry.requestStart, total, bytes: body.length, ok: res.ok };
  }, token);
  if (!api.ok) throw new Error('the API call failed');
  for (const k of Object.keys(m)) samples[k].push(m[k]);
  samples.apiTtfb.push(api.ttfb);
  samples.apiTotal.push(api.total);
  samples.apiBytes.push(api.bytes);
  await context.close();
}
await browser.close();
const out = {};
for (const [k, v] of Object.entries(samples)) out[k] = median(v);
console.log(JSON.stringify(out));
