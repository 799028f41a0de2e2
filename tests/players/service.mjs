// Drives Reel's player page (served by `reel serve`) in Debian's headless Chromium, as a
// viewer would: sign up, sign in, browse, open a title, play it to the end through the
// licence server; then a second account on a plan that does not allow the title tries.
//
//   node service.mjs --url http://127.0.0.1:PORT --title ID --admin EMAIL:PASSWORD [--timeout MS]
//
// Accounts start on the basic plan; after each sign-up the admin moves the account to the plan
// the run needs (through PATCH /v1/admin/accounts/ID, as a billing system would), before the
// viewer signs in on the page.
// Prints one JSON object: what each account saw.
import { launchChromium } from './chromium.mjs';

const args = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : undefined; };
const base = opt('url');
const title = opt('title');
const timeout = Number(opt('timeout') ?? 90000);
const [adminEmail, adminPassword] = (opt('admin') ?? ':').split(':');

async function apiCall(method, path, body, token) {
  const r = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// The admin moves `email` (password `password`) to `plan`.
async function setPlan(email, password, plan) {
  const admin = await apiCall('POST', '/v1/auth/signin', { email: adminEmail, password: adminPassword });
  const viewer = await apiCall('POST', '/v1/auth/signin', { email, password });
  await apiCall('PATCH', `/v1/admin/accounts/${viewer.account.id}`, { plan }, admin.access_token);
}

const { browser, close: closeBrowser } = await launchChromium();
const result = {};
try {
  const page = await browser.newPage();
  const console_ = [];
  page.on('console', (m) => { if (m.type() === 'error') console_.push(m.text()); });
  const licenceRequests = [];
  page.on('request', (r) => { if (r.url().includes('/v1/licence/')) licenceRequests.push(r.url().split('/v1/licence/')[0]); });

  async function signUpAndIn(email, plan) {
    await page.fill('#email', email);
    await page.fill('#password', 'a long passphrase');
    await page.click('#signup');
    await page.waitForFunction(() => document.getElementById('message').textContent.includes('Account created'), null, { timeout: 10000 });
    await setPlan(email, 'a long passphrase', plan);
    await page.click('#signin');
    await page.waitForSelector(`#titles .title[data-id="${title}"]`, { timeout: 10000 });
  }

  // Account A: a plan that allows the title. Browse, open, play to the end.
  await page.goto(base + '/');
  await signUpAndIn('ann@example.com', 'standard');
  const browse = await page.$$eval('#titles .title', (els) => els.map((e) => e.dataset.id));
  // The poster frame, fetched by the page like any image.
  await page.waitForFunction((id) => { const i = document.querySelector(`#titles .title[data-id="${id}"] img`); return !i || i.complete; }, title, { timeout: 10000 });
  const posterWidth = await page.evaluate((id) => { const i = document.querySelector(`#titles .title[data-id="${id}"] img`); return i ? i.naturalWidth : 0; }, title);
  await page.click(`#titles .title[data-id="${title}"]`);
  await page.waitForSelector('#detail:not([hidden])');
  await page.click('#play');
  await page.waitForFunction(() => window.reel.playing || window.reel.errors.length || !document.getElementById('message').hidden, null, { timeout: 30000 });
  // Scrubbing: dragging the seek bar to 2 s shows that time's tile of the title's thumbnails.
  const preview = await page.evaluate(async () => {
    const seek = document.getElementById('seek');
    seek.value = '2';
    seek.dispatchEvent(new Event('input'));
    const p = document.getElementById('preview');
    for (let i = 0; i < 100 && p.hidden; i++) await new Promise((r) => setTimeout(r, 50));
    return { shown: !p.hidden, image: p.style.backgroundImage, position: p.style.backgroundPosition, width: p.style.width, start: p.dataset.start };
  });
  await page.evaluate(() => { document.getElementById('video').playbackRate = 2; });
  // Sample the stats line while it plays.
  const stats = new Set();
  const end = Date.now() + timeout;
  while (Date.now() < end) {
    const s = await page.evaluate(() => ({ ended: window.reel.ended, errors: window.reel.errors.length, stats: document.getElementById('stats').textContent }));
    stats.add(s.stats);
    if (s.ended || s.errors) break;
    await page.waitForTimeout(250);
  }
  const a = await page.evaluate(() => ({ ended: window.reel.ended, errors: window.reel.errors, heights: window.reel.heights,
    message: document.getElementById('message').hidden ? '' : document.getElementById('message').textContent }));
  const subtitles = await page.$$eval('#subtitles option', (os) => os.map((o) => ({ text: o.textContent, lang: o.lang })));
  const audio = await page.$$eval('#audio option', (os) => os.map((o) => ({ text: o.textContent, lang: o.lang, selected: o.selected })));
  result.a = { ...a, browse, posterWidth, stats: [...stats], subtitles, audio, preview, licenceRequests: licenceRequests.length };

  // Account B: a plan below the title's lowest rendition.
  await page.click('#signout');
  await page.waitForSelector('#auth:not([hidden])');
  const before = licenceRequests.length;
  await signUpAndIn('bob@example.com', 'mobile');
  await page.click(`#titles .title[data-id="${title}"]`);
  await page.waitForSelector('#detail:not([hidden])');
  await page.click('#play');
  await page.waitForFunction(() => !document.getElementById('message').hidden, null, { timeout: 10000 });
  result.b = await page.evaluate(() => ({ message: document.getElementById('message').textContent, playerShown: !document.getElementById('player').hidden, errors: window.reel.errors }));
  result.b.licenceRequests = licenceRequests.length - before;
  result.consoleErrors = console_;
} catch (e) {
  result.failure = String(e && e.stack || e);
} finally {
  await closeBrowser();
}
console.log(JSON.stringify(result));
