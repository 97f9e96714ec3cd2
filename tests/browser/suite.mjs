// The web UI's browser suite: playwright-core driving Debian's Chromium, headless, against
// the real binary that crates/framehouse/tests/browser.rs started. It walks the pages as
// a new user would, checks access between two users, CSRF, playback across origins and
// in an embed, a tus upload surviving a server restart and a page reload, the account
// and admin pages, an OpenID sign-in and a password reset, runs axe on every page and
// writes desktop and phone screenshots of each.
//
// env: FRAMEHOUSE_BASE (the server), FIXTURES (the media files), SCREENSHOTS (a folder),
// CHROMIUM (the executable), NOTIFICATIONS (the server's notifications.log, where a
// password reset link arrives). Asks the harness to restart the server by printing
// "restart" and waits for "restarted" on stdin. Prints "ok NAME" per step; exits 1 on
// the first failure.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import AxeBuilder from '@axe-core/playwright';

const BASE = process.env.FRAMEHOUSE_BASE;
const FIXTURES = process.env.FIXTURES;
const SHOTS = process.env.SCREENSHOTS;
const here = path.dirname(fileURLToPath(import.meta.url));
const fixture = (name) => path.join(FIXTURES, name);
fs.mkdirSync(SHOTS, { recursive: true });

const stdin = readline.createInterface({ input: process.stdin });
const answers = [];
const waiting = [];
stdin.on('line', (line) => (waiting.length ? waiting.shift()(line) : answers.push(line)));
const ask = (what) => new Promise((resolve) => {
  console.log(what);
  if (answers.length) resolve(answers.shift()); else waiting.push(resolve);
});

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const accessibility = [];

// axe on the page as it is, then a screenshot at desktop and at phone width.
async function capture(page, name) {
  const result = await new AxeBuilder({ page }).analyze();
  assert.ok(result.passes.length > 10, `axe ran its rules on ${name}`);
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of bad) {
    accessibility.push(`${name}: ${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')}`);
  }
  const size = page.viewportSize();
  await page.screenshot({ path: path.join(SHOTS, `${name}-desktop.png`), fullPage: true });
  await page.setViewportSize(PHONE);
  await page.screenshot({ path: path.join(SHOTS, `${name}-phone.png`), fullPage: true });
  // Nothing may be wider than a phone's screen.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `${name} scrolls sideways on a phone by ${overflow}px`);
  await page.setViewportSize(size);
}

// Polls `check` (async) every half second until it is truthy.
async function until(what, timeout, check) {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function step(name, fn) {
  const started = Date.now();
  await fn();
  console.log(`ok ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

async function signUp(page, username) {
  await page.goto(`${BASE}/signup`);
  await page.fill('#username', username);
  await page.fill('#password', 'correct horse battery staple');
  await page.click('form[action="/signup"] button[type=submit]');
  await page.waitForURL(`${BASE}/library`);
}

const sha256 = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

// Another origin (localhost, not 127.0.0.1: another site too) with pages that use
// Framehouse's media the way a customer's site would.
function otherOrigin() {
  const hlsJs = fs.readFileSync(path.join(here, 'node_modules/hls.js/dist/hls.min.js'));
  const pages = {
    '/player.html': (q) => `<!doctype html><title>player</title><video id=v muted playsinline></video>
      <script src="/hls.min.js"></script><script>
      window.errors = [];
      const v = document.getElementById('v');
      const hls = new Hls();
      hls.on(Hls.Events.ERROR, (_e, d) => window.errors.push(d.details));
      hls.loadSource(${JSON.stringify(q.get('src'))});
      hls.attachMedia(v);
      hls.on(Hls.Events.MANIFEST_PARSED, () => v.play());
      </script>`,
    '/canvas.html': (q) => `<!doctype html><title>canvas</title><canvas id=c width=64 height=64></canvas><script>
      const img = new Image();
      img.crossOrigin = 'anonymous';
      img.onload = () => {
        const ctx = document.getElementById('c').getContext('2d');
        ctx.drawImage(img, 0, 0, 64, 64);
        try { const d = ctx.getImageData(0, 0, 64, 64).data; window.result = { ok: true, sum: d.reduce((a, b) => a + b, 0) }; }
        catch (e) { window.result = { ok: false, error: String(e) }; }
      };
      img.onerror = () => { window.result = { ok: false, error: 'load failed' }; };
      img.src = ${JSON.stringify(q.get('src'))};
      </script>`,
    '/embed.html': (q) => `<!doctype html><title>embed</title>
      <iframe id=f src=${JSON.stringify(q.get('src'))} width=640 height=360 allow="autoplay; fullscreen" allowfullscreen></iframe>`,
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname === '/hls.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      return res.end(hlsJs);
    }
    const page = pages[url.pathname];
    if (!page) { res.writeHead(404); return res.end(); }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(page(url.searchParams));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, origin: `http://localhost:${server.address().port}` })));
}

// A DataTransfer of the files, dropped on the upload page's drop zone.
async function dropFiles(page, files) {
  const payload = files.map((f) => ({
    name: path.basename(f),
    type: f.endsWith('.png') ? 'image/png' : 'image/jpeg',
    data: fs.readFileSync(f).toString('base64'),
  }));
  await page.evaluate((items) => {
    const dt = new DataTransfer();
    for (const it of items) {
      const bytes = Uint8Array.from(atob(it.data), (c) => c.charCodeAt(0));
      dt.items.add(new File([bytes], it.name, { type: it.type }));
    }
    const zone = document.getElementById('drop');
    zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, payload);
}

const rowOf = (page, name) => page.locator('#queue li', { hasText: name });
const mediaIdOf = async (page, name) => (await rowOf(page, name).locator('a.open').getAttribute('href')).split('/').pop();

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  const fresh = () => browser.newContext({ viewport: DESKTOP });
  const alice = await fresh();
  const page = await alice.newPage();
  page.on('dialog', (d) => d.accept());
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.error(`console ${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  page.on('requestfailed', (r) => console.error(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
  const requests = [];
  page.on('request', (r) => requests.push({ method: r.method(), url: r.url() }));
  const ids = {};
  let bigOne = null;

  await step('sign up and the empty library', async () => {
    await page.goto(`${BASE}/signin`);
    await capture(page, 'signin');
    await page.goto(`${BASE}/signup`);
    await capture(page, 'signup');
    await signUp(page, 'alice');
    await page.waitForSelector('p.empty');
    assert.match(await page.textContent('p.empty'), /Upload/);
    await capture(page, 'library-empty');
  });

  await step('upload three photos by drop, a video and a sound by the file chooser', async () => {
    await page.click('a[href="/upload"]');
    await page.waitForURL(`${BASE}/upload`);
    await capture(page, 'upload-empty');
    await dropFiles(page, [fixture('photo-1.jpg'), fixture('photo-2.jpg'), fixture('photo-3.png')]);
    await page.setInputFiles('#files', [fixture('clip.mp4'), fixture('tone.mp3')]);
    await page.waitForFunction(() => document.querySelectorAll('#queue li').length === 5);
    // Every row turns ready without a reload, told by the event stream.
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#queue li')];
      const failed = rows.find((r) => r.dataset.state === 'failed');
      if (failed) throw new Error(`upload failed: ${failed.textContent}`);
      return rows.every((r) => r.dataset.state === 'ready');
    }, null, { timeout: 240_000, polling: 250 });
    assert.equal(await page.locator('#total').getAttribute('value'), '100');
    for (const row of await page.locator('#queue li progress').all()) {
      assert.equal(await row.getAttribute('value'), '100');
    }
    assert.match(await page.textContent('#total-text'), /100 % · 5 of 5 files/);
    for (const name of ['photo-1.jpg', 'photo-2.jpg', 'photo-3.png', 'clip.mp4', 'tone.mp3']) {
      ids[name] = await mediaIdOf(page, name);
      assert.match(ids[name], /^[A-Za-z0-9_-]+$/);
    }
    await capture(page, 'upload-done');
  });

  await step('the library shows the five items with thumbnails', async () => {
    await page.goto(`${BASE}/library`);
    assert.equal(await page.locator('#grid li.card').count(), 5);
    await page.waitForFunction(() => [...document.querySelectorAll('#grid img')].every((i) => i.complete && i.naturalWidth > 0));
    assert.equal(await page.locator('#grid img').count(), 5, 'every item, sound too, has a picture');
    // Each card has its ThumbHash painted beneath the image.
    await page.waitForFunction(() => [...document.querySelectorAll('#grid .thumb')]
      .every((t) => t.style.backgroundImage.startsWith('url("data:image/png')));
    await capture(page, 'library');
    // Bulk: two photos made public together, then private again.
    const pick = (name) => page.check(`li.card[data-id="${ids[name]}"] input[name=item]`);
    const badge = (name) => page.textContent(`li.card[data-id="${ids[name]}"] .badge[class*="vis-"]`);
    await pick('photo-2.jpg');
    await pick('photo-3.png');
    assert.equal(await page.textContent('#bulk-count'), '2 selected');
    await capture(page, 'library-selected');
    for (const visibility of ['public', 'private']) {
      await page.selectOption('#bulk-visibility', visibility);
      await page.click('#bulk-apply');
      await page.waitForFunction(() => /^Changed 2\.$/.test(document.getElementById('bulk-status').textContent));
      await page.reload();
      assert.equal(await badge('photo-2.jpg'), visibility);
      assert.equal(await badge('photo-3.png'), visibility);
      assert.equal(await badge('photo-1.jpg'), 'private', 'an unselected card is untouched');
      if (visibility === 'public') { await pick('photo-2.jpg'); await pick('photo-3.png'); }
    }
    await page.selectOption('#kind', 'video');
    await page.click('form.filters button');
    await page.waitForURL(/kind=video/);
    assert.equal(await page.locator('#grid li.card').count(), 1);
  });

  await step('the video plays through HLS and resumes where it stopped', async () => {
    await page.goto(`${BASE}/items/${ids['clip.mp4']}`);
    // Ready means playable (the lowest rendition); wait for the rest of the ladder and
    // the storyboard, then load the page again to see them.
    const storyboard = await page.getAttribute('#player', 'data-storyboard');
    const master = await page.getAttribute('#player', 'data-hls');
    await until('the whole ladder and the storyboard', 180_000, () => page.evaluate(async ([board, master]) => {
      const renditions = (await (await fetch(master)).text()).split('#EXT-X-STREAM-INF').length - 1;
      return renditions >= 3 && (await fetch(board)).ok;
    }, [storyboard, master]));
    await page.reload();
    await page.waitForFunction(() => !document.getElementById('quality').disabled);
    const levels = await page.locator('#quality option').count();
    assert.ok(levels >= 3, `Auto and at least two renditions, got ${levels} options`);
    const segmentsBefore = requests.filter((r) => /\/hls\/[^/]+\/[^/]+\.(ts|m4s|mp4)/.test(r.url)).length;
    await page.evaluate(() => { const v = document.getElementById('player'); v.muted = true; return v.play(); });
    await page.waitForFunction(() => document.getElementById('player').currentTime > 3, null, { timeout: 30_000 });
    const segments = requests.filter((r) => /\/hls\/[^/]+\/[^/]+\.(ts|m4s|mp4)/.test(r.url)).length;
    assert.ok(segments > segmentsBefore, 'an HLS segment was fetched');
    // Pausing sends a heartbeat with the position.
    const beat = page.waitForResponse((r) => r.url().endsWith(`/api/v1/media/${ids['clip.mp4']}/playback`) && r.request().method() === 'POST');
    const stoppedAt = await page.evaluate(() => { const v = document.getElementById('player'); v.pause(); return v.currentTime; });
    assert.equal((await beat).status(), 200);
    await capture(page, 'item-video');
    await page.reload();
    await page.waitForFunction(() => /Resuming at/.test(document.getElementById('resume-note').textContent));
    await page.waitForFunction((at) => Math.abs(document.getElementById('player').currentTime - at) < 1, stoppedAt);
    // The storyboard gives the seek bar its previews.
    await page.hover('#seek', { position: { x: 30, y: 5 } });
    await page.waitForSelector('#preview:not([hidden])');
    const tile = await page.$eval('#preview span', (s) => getComputedStyle(s).backgroundImage);
    assert.match(tile, /storyboard\.jpg/);
  });

  await step('the sound plays and shows its waveform', async () => {
    await page.goto(`${BASE}/items/${ids['tone.mp3']}`);
    await page.waitForFunction(() => Number(document.getElementById('waveform').dataset.drawn) > 100, null, { timeout: 20_000 });
    await page.evaluate(() => { const a = document.getElementById('player'); a.muted = true; return a.play(); });
    await page.waitForFunction(() => document.getElementById('player').currentTime > 0.5);
    await capture(page, 'item-audio');
  });

  await step('a photo made public opens in a fresh browser; a private one by its share link', async () => {
    await page.goto(`${BASE}/items/${ids['photo-1.jpg']}`);
    await page.waitForFunction(() => document.getElementById('image').naturalWidth > 0);
    await page.click('#zoom');
    await page.waitForFunction(() => document.getElementById('viewer').classList.contains('zoomed') && document.getElementById('image').naturalWidth === 1600);
    await page.click('#zoom');
    await page.fill('#title', 'Test card, public');
    await page.selectOption('#visibility', 'public');
    await page.click('#edit button[type=submit]');
    await page.waitForFunction(() => document.getElementById('edit-status').textContent === 'Saved.');
    assert.equal(await page.textContent('#visibility-badge'), 'public');
    // The playground builds a transform URL and shows its result.
    await page.fill('#pg-w', '300');
    await page.selectOption('#pg-format', 'jpg');
    await page.click('#playground button');
    await page.waitForFunction(() => document.getElementById('pg-img').naturalWidth === 300);
    assert.match(await page.inputValue('#pg-url'), new RegExp(`/img/${ids['photo-1.jpg']}/w_300,fit_inside,q_80\\.jpg$`));
    await capture(page, 'item-image');

    const stranger = await fresh();
    const anon = await stranger.newPage();
    const res = await anon.goto(`${BASE}/items/${ids['photo-1.jpg']}`);
    assert.equal(res.status(), 200);
    await anon.waitForFunction(() => document.getElementById('image').naturalWidth > 0);
    assert.equal(await anon.textContent('h1'), 'Test card, public');
    assert.equal(await anon.locator('#edit').count(), 0, 'no edit form for a visitor');
    const oembed = await anon.getAttribute('link[type="application/json+oembed"]', 'href');
    const embedded = await (await stranger.request.get(new URL(oembed, BASE).href)).json();
    assert.equal(embedded.type, 'photo');
    await capture(anon, 'item-visitor');

    // photo-2 stays private: 404 to the stranger, open through a share link.
    assert.equal((await anon.goto(`${BASE}/items/${ids['photo-2.jpg']}`)).status(), 404);
    await capture(anon, 'not-found');
    await page.goto(`${BASE}/items/${ids['photo-2.jpg']}`);
    await page.selectOption('#share-ttl', '3600');
    await page.click('#share button[type=submit]');
    await page.waitForSelector('#share-out:not([hidden])');
    const link = await page.inputValue('#share-url');
    assert.match(link, new RegExp(`/items/${ids['photo-2.jpg']}\\?token=`));
    const shared = await anon.goto(link);
    assert.equal(shared.status(), 200);
    await anon.waitForFunction(() => document.getElementById('image').naturalWidth > 0);
    assert.match(await anon.getAttribute('#image', 'src'), /token=/);
    await stranger.close();
  });

  await step('deleting a photo removes it', async () => {
    await page.goto(`${BASE}/items/${ids['photo-1.jpg']}`);
    await page.click('#delete');
    await page.waitForURL(`${BASE}/library`);
    assert.equal(await page.locator('#grid li.card').count(), 4);
    const stranger = await fresh();
    const anon = await stranger.newPage();
    assert.equal((await anon.goto(`${BASE}/items/${ids['photo-1.jpg']}`)).status(), 404);
    await stranger.close();
  });

  await step('a second user sees none of the first one\'s private items', async () => {
    const bobContext = await fresh();
    const bob = await bobContext.newPage();
    await signUp(bob, 'bob');
    assert.equal(await bob.locator('#grid li.card').count(), 0);
    await bob.waitForSelector('p.empty');
    for (const name of ['photo-2.jpg', 'photo-3.png', 'tone.mp3']) {
      assert.equal((await bob.goto(`${BASE}/items/${ids[name]}`)).status(), 404, name);
      assert.equal((await bobContext.request.get(`${BASE}/api/v1/media/${ids[name]}`)).status(), 404);
      assert.equal((await bobContext.request.get(`${BASE}/media/${ids[name]}/original`)).status(), 404);
      assert.equal((await bobContext.request.get(`${BASE}/media/${ids[name]}/thumb.webp`)).status(), 404);
    }
    // A form POST without the CSRF token is refused, and bob stays signed in.
    await bob.goto(`${BASE}/library`);
    const [refused] = await Promise.all([
      bob.waitForNavigation(),
      bob.evaluate(() => {
        const form = document.createElement('form');
        form.method = 'post';
        form.action = '/signout';
        document.body.append(form);
        form.submit();
      }),
    ]);
    assert.equal(refused.status(), 403);
    assert.match(await bob.textContent('p.error'), /CSRF|form/i);
    const api = await bob.evaluate(async (id) => (await fetch(`/api/v1/media/${id}`, { method: 'DELETE' })).status, ids['photo-2.jpg']);
    assert.equal(api, 403, 'an API write by cookie without the CSRF header');
    await bob.goto(`${BASE}/library`);
    assert.equal(new URL(bob.url()).pathname, '/library', 'still signed in');
    await bobContext.close();
  });

  await step('another origin plays the public video with hls.js, draws a public image and embeds the player', async () => {
    // The video made public through its page.
    await page.goto(`${BASE}/items/${ids['clip.mp4']}`);
    await page.selectOption('#visibility', 'public');
    await page.click('#edit button[type=submit]');
    await page.waitForFunction(() => document.getElementById('edit-status').textContent === 'Saved.');
    await page.goto(`${BASE}/items/${ids['photo-3.png']}`);
    await page.selectOption('#visibility', 'unlisted');
    await page.click('#edit button[type=submit]');
    await page.waitForFunction(() => document.getElementById('edit-status').textContent === 'Saved.');

    const { server, origin } = await otherOrigin();
    const site = await fresh();
    const other = await site.newPage();
    const master = `${BASE}/media/${ids['clip.mp4']}/hls/master.m3u8`;
    await other.goto(`${origin}/player.html?src=${encodeURIComponent(master)}`);
    await other.waitForFunction(() => document.getElementById('v').currentTime > 2 || window.errors.length, null, { timeout: 30_000 });
    assert.deepEqual(await other.evaluate(() => window.errors), []);

    await other.goto(`${origin}/canvas.html?src=${encodeURIComponent(`${BASE}/img/${ids['photo-3.png']}/w_64.png`)}`);
    await other.waitForFunction(() => window.result);
    const drawn = await other.evaluate(() => window.result);
    assert.ok(drawn.ok, `the canvas is not tainted: ${drawn.error}`);
    assert.ok(drawn.sum > 0);

    await other.goto(`${origin}/embed.html?src=${encodeURIComponent(`${BASE}/embed/${ids['clip.mp4']}?autoplay=1`)}`);
    const frame = await (await other.waitForSelector('#f')).contentFrame();
    await frame.waitForFunction(() => document.getElementById('player')?.currentTime > 1.5, null, { timeout: 30_000 });
    await site.close();
    const embedPage = await alice.newPage();
    await embedPage.goto(`${BASE}/embed/${ids['clip.mp4']}`);
    await capture(embedPage, 'embed');
    await embedPage.close();
    server.close();
  });

  await step('a tus upload survives a server restart mid-file', async () => {
    const file = fixture('big-1.bmp');
    const cdp = await alice.newCDPSession(page);
    await page.goto(`${BASE}/upload`);
    // About 12 MB/s up, so the restart lands mid-file.
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 12 * 1024 * 1024 });
    await page.setInputFiles('#files', [file]);
    const row = rowOf(page, 'big-1.bmp');
    await page.waitForFunction(() => Number(document.querySelector('#queue li progress').value) >= 25, null, { timeout: 60_000, polling: 50 });
    assert.equal(await ask('restart'), 'restarted');
    await page.waitForFunction(() => ['processing', 'ready'].includes(document.querySelector('#queue li').dataset.state), null, { timeout: 120_000, polling: 250 });
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    assert.equal(await row.locator('progress').getAttribute('value'), '100');
    const id = await mediaIdOf(page, 'big-1.bmp');
    const item = await page.evaluate((id) => window.framehouse.api('GET', `/api/v1/media/${id}`), id);
    assert.equal(item.sha256, sha256(file));
    assert.equal(item.bytes, fs.statSync(file).size);
    bigOne = id;
  });

  await step('an upload continues after the page is reloaded', async () => {
    const file = fixture('big-2.bmp');
    const cdp = await alice.newCDPSession(page);
    await page.goto(`${BASE}/upload`);
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 12 * 1024 * 1024 });
    await page.setInputFiles('#files', [file]);
    await page.waitForFunction(() => Number(document.querySelector('#queue li progress').value) >= 30, null, { timeout: 60_000, polling: 50 });
    await page.reload();
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    await page.waitForSelector('#unfinished:not([hidden])');
    assert.match(await page.textContent('#unfinished'), /big-2\.bmp/);
    const mark = requests.length;
    await page.setInputFiles('#files', [file]);
    await page.waitForFunction(() => ['processing', 'ready'].includes(document.querySelector('#queue li')?.dataset.state), null, { timeout: 120_000, polling: 250 });
    const after = requests.slice(mark).filter((r) => r.url.includes('/api/v1/uploads'));
    assert.ok(after.some((r) => r.method === 'HEAD'), 'it asked the server for the offset');
    assert.ok(!after.some((r) => r.method === 'POST'), 'no new upload was created');
    const id = await mediaIdOf(page, 'big-2.bmp');
    const item = await page.evaluate((id) => window.framehouse.api('GET', `/api/v1/media/${id}`), id);
    assert.equal(item.sha256, sha256(file));
    ids['big-2.bmp'] = id;
    ids['big-1.bmp'] = bigOne;
  });

  await step('bulk delete from the library', async () => {
    await page.goto(`${BASE}/library`);
    const before = await page.locator('#grid li.card').count();
    for (const name of ['big-1.bmp', 'big-2.bmp']) await page.check(`li.card[data-id="${ids[name]}"] input[name=item]`);
    await page.click('#bulk-delete');
    await page.waitForFunction(() => /^Deleted 2\.$/.test(document.getElementById('bulk-status').textContent));
    assert.equal(await page.locator('#grid li.card').count(), before - 2);
    await page.reload();
    assert.equal(await page.locator('#grid li.card').count(), before - 2);
    for (const name of ['big-1.bmp', 'big-2.bmp']) {
      assert.equal((await alice.request.get(`${BASE}/api/v1/media/${ids[name]}`)).status(), 404);
    }
  });

  await step('two people befriend, share an album and a message with a private photo; the badges change live', async () => {
    const carolContext = await fresh();
    const carol = await carolContext.newPage();
    carol.on('pageerror', (e) => console.error(`carol page error: ${e.message}`));
    carol.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.error(`carol console ${m.type()}: ${m.text()}`); });
    await signUp(carol, 'carol');
    const photo = ids['photo-2.jpg'];
    const badge = (p, id) => p.evaluate((id) => {
      const n = document.getElementById(id);
      return n.hidden ? 0 : Number(n.textContent);
    }, id);
    assert.equal(await badge(carol, 'bell-count'), 0);

    // Alice asks from carol's profile; carol's bell rings on the page she has open.
    await page.goto(`${BASE}/u/carol`);
    await page.click('#profile-actions button:has-text("Add friend")');
    await page.waitForSelector('#profile-actions button:has-text("Withdraw request")');
    await capture(page, 'profile');
    await carol.waitForFunction(() => document.getElementById('bell-count').textContent === '1' && !document.getElementById('bell-count').hidden, null, { timeout: 5000 })
      .catch(async (e) => {
        const seen = await carol.evaluate(async () => [document.getElementById('bell-count').outerHTML, await (await fetch('/api/v1/notifications')).text()]);
        throw new Error(`${e.message}; carol's bell and notifications: ${JSON.stringify(seen)}`);
      });
    await carol.click('#bell');
    await carol.waitForSelector('#notification-rows li[data-type="friend.requested"]');
    assert.match(await carol.textContent('#notification-rows'), /alice asked to be friends/);
    await capture(carol, 'notifications');
    await carol.goto(`${BASE}/friends`);
    await carol.click('#incoming button:has-text("Accept")');
    await carol.waitForSelector('#friend-rows a[href="/u/alice"]');
    await capture(carol, 'friends');

    // Alice makes a private album, adds her private photo from the picker, invites carol.
    await page.goto(`${BASE}/albums`);
    await page.fill('#album-form-title', 'Trip');
    await page.selectOption('#album-form-visibility', 'private');
    await page.click('#album-form button[type=submit]');
    await page.waitForURL(/\/albums\/[^/]+$/);
    const album = page.url().split('/').pop();
    await page.check(`#album-pick input[value="${photo}"]`);
    await page.click('#album-pick button:has-text("Add to album")');
    await page.waitForSelector(`.grid li.card[data-id="${photo}"]`);
    await page.fill('#member-form-name', 'carol');
    await page.selectOption('#member-form-role', 'viewer');
    await page.click('#member-form button[type=submit]');
    await page.waitForSelector('#member-rows a[href="/u/carol"]');
    await capture(page, 'album');

    // Carol sees the album and the private photo through it, and its slideshow.
    await carol.goto(`${BASE}/albums`);
    await carol.click(`#album-grid a[href="/albums/${album}"]`);
    await carol.waitForSelector(`.grid li.card[data-id="${photo}"] img`);
    await carol.waitForFunction(() => [...document.querySelectorAll('.grid img')].every((i) => i.complete && i.naturalWidth > 0));
    await carol.click('button:has-text("Slideshow")');
    await carol.waitForFunction(() => { const i = document.querySelector('dialog.slideshow img'); return i && i.complete && i.naturalWidth > 0; });
    await carol.click('dialog.slideshow button:has-text("Close")');
    assert.equal((await carolContext.request.get(`${BASE}/api/v1/media/${photo}`)).status(), 200, 'readable through the album');

    // Alice writes to carol with the photo; carol's inbox count changes without a reload.
    const bellBefore = await badge(carol, 'bell-count');
    await page.goto(`${BASE}/u/carol`);
    await page.click('#profile-actions button:has-text("Message")');
    await page.waitForURL(/\/inbox\/[^/]+$/);
    await page.check(`#message-pick input[value="${photo}"]`);
    await page.fill('#message-form-text', 'Look at this one');
    await page.click('#message-form button[type=submit]');
    await page.waitForSelector('#message-rows li.mine p:has-text("Look at this one")');
    await capture(page, 'conversation');
    await carol.waitForFunction(() => document.getElementById('inbox-count').textContent === '1' && !document.getElementById('inbox-count').hidden, null, { timeout: 5000 });
    await carol.waitForFunction((n) => Number(document.getElementById('bell-count').textContent) > n, bellBefore, { timeout: 5000 });
    await carol.click('a[href="/inbox"]');
    await carol.waitForSelector('#conversation-rows li a');
    await capture(carol, 'inbox');
    await carol.click('#conversation-rows li a');
    await carol.waitForSelector('#message-rows li p:has-text("Look at this one")');
    await carol.waitForFunction((id) => { const i = document.querySelector(`#message-rows li.card[data-id="${id}"] img`); return i && i.complete && i.naturalWidth > 0; }, photo);
    await carol.waitForFunction(() => document.getElementById('inbox-count').hidden, null, { timeout: 5000 });

    // The album's share link opens to a browser with no account.
    await page.goto(`${BASE}/albums/${album}`);
    await page.click('#share-form button[type=submit]');
    const link = await (await page.waitForSelector('#share-link')).inputValue();
    const anon = await (await fresh()).newPage();
    await anon.goto(link);
    await anon.waitForFunction(() => { const i = document.querySelector('#shared-grid img'); return i && i.complete && i.naturalWidth > 0; });
    await capture(anon, 'shared');
    assert.equal((await anon.context().request.get(`${BASE}/api/v1/media/${photo}`)).status(), 404, 'the item itself stays private');
    await anon.context().close();

    // Comments and likes on the item page, and the feed as home.
    await carol.goto(`${BASE}/items/${photo}`);
    await carol.waitForSelector('#comment-rows li');
    await carol.click('#like');
    await carol.waitForFunction(() => document.getElementById('like-count').textContent === '1 like');
    await carol.fill('#comment-body', 'Lovely light');
    await carol.click('#comment-form button[type=submit]');
    await carol.waitForSelector('#comment-rows li:has-text("Lovely light")');
    await capture(carol, 'item-comments');
    await carol.goto(`${BASE}/`);
    await carol.waitForSelector('#social-body p.empty, #social-body .grid');
    await capture(carol, 'feed');
    await carolContext.close();
  });

  await step('the account page: an API key shown once, sessions, a webhook pinged, the watermark, the password', async () => {
    await page.goto(`${BASE}/account`);
    await page.waitForSelector('#session-rows li [class=badge]');
    assert.match(await page.textContent('#session-rows'), /this browser/);
    await page.waitForSelector('#key-rows li.empty');
    await page.waitForSelector('#webhook-rows li.empty');
    await capture(page, 'account');
    // An API key with one more scope: shown once, works for a program, then revoked.
    await page.fill('#key-name', 'backup script');
    await page.check('input[name=scopes][value="media:write"]');
    await page.click('#key-form button[type=submit]');
    await page.waitForSelector('#key-created:not([hidden])');
    const key = await page.inputValue('#key-secret');
    assert.ok(key.length > 20, 'the key is shown');
    await page.waitForSelector('#key-rows li[data-key]');
    assert.match(await page.textContent('#key-rows'), /backup script.*media:read, media:write/s);
    assert.ok(!(await page.textContent('#key-rows')).includes(key), 'the list never shows the key itself');
    const asProgram = () => fetch(`${BASE}/api/v1/media`, { headers: { authorization: `Bearer ${key}` } }).then((r) => r.status);
    assert.equal(await asProgram(), 200);
    await page.click('#key-rows li[data-key] button');
    await page.waitForSelector('#key-rows li.empty');
    assert.equal(await asProgram(), 401, 'a revoked key stops working');
    // A webhook to a receiver on loopback: its secret shown once, a ping delivered and
    // logged with the receiver's status.
    const received = [];
    const receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => { received.push({ headers: req.headers, body }); res.writeHead(204); res.end(); });
    });
    await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
    await page.fill('#wh-url', `http://127.0.0.1:${receiver.address().port}/hook`);
    await page.fill('#wh-description', 'the test receiver');
    await page.check('input[name=events][value="media.ready"]');
    await page.click('#webhook-form button[type=submit]');
    await page.waitForSelector('#webhook-secret:not([hidden])');
    const secret = await page.inputValue('#webhook-secret-value');
    assert.match(secret, /^whsec_/);
    await page.waitForSelector('#webhook-rows li[data-webhook]');
    await page.click('#webhook-rows li[data-webhook] button:text-is("Ping")');
    await until('the ping', 30_000, async () => received.length > 0);
    const ping = received[0];
    assert.equal(JSON.parse(ping.body).type, 'webhook.ping');
    const [, signature] = ping.headers['webhook-signature'].split(' ')[0].split(',');
    const signed = `${ping.headers['webhook-id']}.${ping.headers['webhook-timestamp']}.${ping.body}`;
    const expected = crypto.createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64')).update(signed).digest('base64');
    assert.equal(signature, expected, 'signed with the secret the page showed');
    // The log reloads each time it is opened.
    await until('the delivery log', 30_000, async () => {
      if ((await page.locator('.deliveries li[data-state="succeeded"]').count()) > 0) return true;
      await page.click('#webhook-rows li[data-webhook] summary');
      if (!(await page.locator('#webhook-rows details[open]').count())) await page.click('#webhook-rows li[data-webhook] summary');
      return false;
    });
    assert.match(await page.textContent('.deliveries'), /webhook\.ping.*succeeded.*204/s);
    receiver.close();
    // The default watermark: one of the images, saved and removed.
    await page.waitForSelector('#wm-media option:nth-child(2)', { state: 'attached' });
    const image = await page.locator('#wm-media option').nth(1).getAttribute('value');
    await page.selectOption('#wm-media', image);
    await page.selectOption('#wm-position', 'nw');
    await page.click('#watermark-form button[type=submit]');
    await page.waitForSelector('#watermark [data-done]:not([hidden])');
    const stored = await page.evaluate(() => window.framehouse.api('GET', '/api/v1/account/watermark'));
    assert.deepEqual([stored.media_id, stored.position], [image, 'nw']);
    await page.click('#wm-remove');
    await page.waitForFunction(() => /Removed/.test(document.querySelector('#watermark [data-done]').textContent));
    // A wrong current password shows the API's message; the right one changes it.
    await page.fill('#current-password', 'not my password');
    await page.fill('#new-password', 'a brand new passphrase');
    await page.fill('#repeat-password', 'a brand new passphrase');
    await page.click('#password-form button[type=submit]');
    await page.waitForSelector('#password [data-error]:not([hidden])');
    assert.match(await page.textContent('#password [data-error]'), /current password is wrong/);
    await page.fill('#current-password', 'correct horse battery staple');
    await page.click('#password-form button[type=submit]');
    await page.waitForSelector('#password [data-done]:not([hidden])');
    const other = await fresh();
    const check = await other.newPage();
    await check.goto(`${BASE}/signin`);
    await check.fill('#username', 'alice');
    await check.fill('#password', 'a brand new passphrase');
    await check.click('form[action="/signin"] button[type=submit]');
    await check.waitForURL(`${BASE}/library`);
    await other.close();
  });

  await step('the admin page: figures, a user disabled and enabled, quota, jobs, audit log, nodes', async () => {
    assert.equal((await page.goto(`${BASE}/admin`)).status(), 403, 'not for a user');
    assert.equal(await page.locator('a[href="/admin"]').count(), 0, 'no admin link for a user');
    const rootContext = await fresh();
    const root = await rootContext.newPage();
    root.on('dialog', (d) => d.accept());
    await root.goto(`${BASE}/signin`);
    await root.fill('#username', 'root');
    await root.fill('#password', 'correct horse battery staple');
    await root.click('form[action="/signin"] button[type=submit]');
    await root.waitForURL(`${BASE}/library`);
    await root.click('a[href="/admin"]');
    await root.waitForSelector('[data-figure="items"]');
    const figure = async (name) => Number(await root.getAttribute(`[data-figure="${name}"] td`, 'data-value'));
    const items = await alice.request.get(`${BASE}/api/v1/media?limit=200`).then((r) => r.json());
    assert.equal(await figure('items'), items.items.length, 'every item is counted');
    assert.ok(await figure('bytes.originals') > 1_000_000, 'the originals\' bytes');
    assert.ok(await figure('bytes.renditions') > 0, 'the HLS renditions\' bytes');
    assert.ok(await figure('jobs.succeeded') > 0, 'finished jobs');
    assert.equal(await figure('users'), 4, 'alice, bob, carol and the admin');
    await root.waitForSelector('#user-rows li[data-user="bob"]');
    await root.waitForSelector('#node-rows li[data-node]');
    assert.match(await root.textContent('#node-rows'), /this node/);
    await root.waitForSelector('#job-rows li');
    await capture(root, 'admin');
    // Disabling bob signs him out everywhere; enabling lets him sign in again.
    const bobContext = await fresh();
    const bob = await bobContext.newPage();
    await bob.goto(`${BASE}/signin`);
    await bob.fill('#username', 'bob');
    await bob.fill('#password', 'correct horse battery staple');
    await bob.click('form[action="/signin"] button[type=submit]');
    await bob.waitForURL(`${BASE}/library`);
    const row = (u) => `#user-rows li[data-user="${u}"]`;
    await root.check(`${row('bob')} input[type=checkbox]`);
    await root.click(`${row('bob')} button`);
    await root.waitForFunction(() => document.querySelector('#users [data-done]').textContent === 'Saved bob.');
    assert.match(await root.textContent(row('bob')), /disabled/);
    assert.equal((await bobContext.request.get(`${BASE}/api/v1/account`)).status(), 401, 'bob is signed out');
    await root.uncheck(`${row('bob')} input[type=checkbox]`);
    await root.click(`${row('bob')} button`);
    await root.waitForFunction(() => !/disabled/.test(document.querySelector('#user-rows li[data-user="bob"]').textContent));
    // A quota for alice: her account page shows it.
    await root.fill(`${row('alice')} input[type=number]`, '500');
    await root.click(`${row('alice')} button`);
    await root.waitForFunction(() => document.querySelector('#users [data-done]').textContent === 'Saved alice.');
    await page.goto(`${BASE}/account`);
    assert.match(await page.textContent('#profile-storage'), /of 500\.0 MB/);
    // Jobs: the dead letters (none) say so; the succeeded ones are listed.
    await root.selectOption('#job-state', 'dead');
    await root.waitForSelector('#job-rows li.empty');
    await root.selectOption('#job-state', 'succeeded');
    await root.waitForSelector('#job-rows li[data-state="succeeded"]');
    // The audit log has what just happened, filtered by kind.
    await root.fill('#audit-kind', 'user_disabled');
    await root.click('#audit-form button[type=submit]');
    await root.waitForSelector('#audit-rows li[data-audit="user_disabled"]');
    assert.equal(await root.locator('#audit-rows li').count(), 1);
    await rootContext.close();
    await bobContext.close();
  });

  await step('sign in through the OpenID provider, and reset a forgotten password by its link', async () => {
    const carolContext = await fresh();
    const carol = await carolContext.newPage();
    await carol.goto(`${BASE}/signin`);
    const button = carol.locator('a.button', { hasText: 'Sign in with Test ID' });
    // The test provider signs in the account its login_hint names, without a form.
    const href = await button.getAttribute('href');
    await carol.goto(`${BASE}${href}&login_hint=carol`);
    await carol.waitForURL(`${BASE}/library`);
    assert.equal(new URL(carol.url()).hash, '', 'no code left in the address');
    const me = await carol.evaluate(() => window.framehouse.api('GET', '/api/v1/account'));
    assert.ok(!me.has_password, 'an account of the provider');
    await carol.goto(`${BASE}/signin/oidc#code=fhc_not-a-real-code`);
    await carol.waitForSelector('p.error');
    assert.match(await carol.textContent('p.error'), /invalid, used or expired/);
    await carolContext.close();
    // bob forgot his password: the link arrives through the notifier (a log file here).
    const bobContext = await fresh();
    const bob = await bobContext.newPage();
    await bob.goto(`${BASE}/signin`);
    await bob.click('a[href="/reset-password"]');
    await bob.fill('#reset-login', 'bob');
    await bob.click('#reset-request button[type=submit]');
    await bob.waitForSelector('#reset [data-done]:not([hidden])');
    await capture(bob, 'reset');
    let link = null;
    await until('the reset notice', 30_000, async () => {
      const lines = fs.existsSync(process.env.NOTIFICATIONS) ? fs.readFileSync(process.env.NOTIFICATIONS, 'utf8').trim().split('\n') : [];
      link = lines.map((l) => JSON.parse(l)).find((n) => n.username === 'bob')?.link;
      return link;
    });
    await bob.goto(link);
    await bob.waitForSelector('#reset-confirm:not([hidden])');
    assert.equal(new URL(bob.url()).hash, '', 'the token left the address');
    await bob.fill('#reset-new', 'bob has a new passphrase');
    await bob.fill('#reset-repeat', 'bob has a new passphrase');
    await bob.click('#reset-confirm button[type=submit]');
    await bob.waitForFunction(() => /password is set/.test(document.querySelector('#reset [data-done]').textContent));
    await bob.goto(`${BASE}/signin`);
    await bob.fill('#username', 'bob');
    await bob.fill('#password', 'bob has a new passphrase');
    await bob.click('form[action="/signin"] button[type=submit]');
    await bob.waitForURL(`${BASE}/library`);
    await bobContext.close();
  });

  await step('accessibility: no serious or critical axe violations on any page', async () => {
    assert.deepEqual(accessibility, []);
  });
  await browser.close();
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
