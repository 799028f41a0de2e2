// HDR and SDR variants in shaka-player, in headless Chromium (an SDR display).
//
//   node hdr.mjs --root DIR --manifest M [--manifest ...] [--type MIME ...]
//
// Prints one JSON line {types: {MIME: MediaSource.isTypeSupported(MIME)}} for the --type
// arguments, then one per manifest: {manifest, variants: [{height, hdr (shaka's video range:
// SDR, PQ or HLG), codecs}], played: the variant playing after a second of play, time,
// errors}. REEL_PLAY_DEBUG=1 prints the page's console to stderr.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './chromium.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name) => args.flatMap((a, i) => (a === `--${name}` ? [args[i + 1]] : []));
const root = path.resolve(opt('root')[0]);
const shakaJs = path.join(here, 'node_modules/shaka-player/dist/shaka-player.compiled.js');

const page = `<!doctype html><html><body><video id="v" muted width="640"></video>
<script src="/shaka.js"></script>
<script>
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const describe = (t) => t && { height: t.height, hdr: t.hdr, codecs: t.videoCodec };
window.run = async (src) => {
  const errors = [];
  const video = document.getElementById('v');
  shaka.polyfill.installAll();
  const p = new shaka.Player();
  await p.attach(video);
  p.addEventListener('error', (e) => errors.push('shaka ' + e.detail.code + ' ' + JSON.stringify(e.detail.data).slice(0, 200)));
  await p.load(src);
  await video.play();
  const end = Date.now() + 15000;
  while (video.currentTime < 1 && Date.now() < end) await sleep(50);
  const variants = p.getVariantTracks().map(describe);
  const played = describe(p.getVariantTracks().find((t) => t.active));
  const time = video.currentTime;
  await p.destroy();
  return { variants, played, time, errors };
};
</script></body></html>`;

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname === '/page') { res.writeHead(200, { 'content-type': 'text/html' }).end(page); return; }
  if (url.pathname === '/shaka.js') { res.writeHead(200, { 'content-type': 'text/javascript' }).end(fs.readFileSync(shakaJs)); return; }
  const file = path.join(root, decodeURIComponent(url.pathname));
  if (!file.startsWith(root + path.sep) || !fs.existsSync(file)) { res.writeHead(404).end(); return; }
  const types = { '.mpd': 'application/dash+xml', '.m3u8': 'application/vnd.apple.mpegurl' };
  res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream' }).end(fs.readFileSync(file));
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;
const { browser, close } = await launchChromium();
let failed = false;
try {
  const tab = await browser.newPage();
  await tab.goto(`${base}/page`);
  const types = await tab.evaluate((list) => Object.fromEntries(list.map((t) => [t, MediaSource.isTypeSupported(t)])), opt('type'));
  console.log(JSON.stringify({ types }));
  await tab.close();
  for (const manifest of opt('manifest')) {
    const page = await browser.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push('page error: ' + e.message));
    if (process.env.REEL_PLAY_DEBUG) page.on('console', (m) => process.stderr.write(m.text() + '\n'));
    let result;
    try {
      await page.goto(`${base}/page`);
      let timer;
      const limit = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('no result within 60 s')), 60000); });
      result = await Promise.race([page.evaluate((s) => window.run(s), `${base}/${manifest}`), limit]).finally(() => clearTimeout(timer));
    } catch (e) {
      result = { errors: ['harness: ' + e.message] };
    }
    result.manifest = manifest;
    result.errors = [...(result.errors || []), ...pageErrors];
    console.log(JSON.stringify(result));
    failed ||= result.errors.length > 0;
    await page.close();
  }
} finally {
  await close();
  server.close();
}
process.exit(failed ? 1 : 0);
