// Fast forward in shaka-player (`trickPlay`), in headless Chromium.
//
//   node trickplay.mjs --root DIR --manifest M [--manifest ...] [--rate R] [--clearkey KIDHEX:KEYHEX ...]
//
// For each manifest: plays from the start, calls `trickPlay(R)` (default 8) once playing, and
// watches for 4 s. One JSON line per manifest: {manifest, before, after (the playhead's
// seconds at the call and 4 s later), frames (video frames the browser presented meanwhile),
// requests (paths fetched after the call, with their Range header when they had one), errors}. REEL_PLAY_DEBUG=1 prints the page's
// console to stderr.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './chromium.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name) => args.flatMap((a, i) => (a === `--${name}` ? [args[i + 1]] : []));
const root = path.resolve(opt('root')[0]);
const rate = Number(opt('rate')[0] || 8);
// ClearKey pairs for an encrypted title, handed to the player (EME with org.w3.clearkey).
const clearKeys = Object.fromEntries(opt('clearkey').map((p) => p.split(':')));
const shakaJs = path.join(here, 'node_modules/shaka-player/dist/shaka-player.compiled.js');

const page = `<!doctype html><html><body><video id="v" muted width="640"></video>
<script src="/shaka.js"></script>
<script>
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
window.run = async (src, rate, clearKeys) => {
  const errors = [];
  const video = document.getElementById('v');
  shaka.polyfill.installAll();
  const p = new shaka.Player();
  await p.attach(video);
  p.addEventListener('error', (e) => errors.push('shaka ' + e.detail.code));
  if (Object.keys(clearKeys).length) p.configure({ drm: { clearKeys } });
  await p.load(src);
  await video.play();
  const end = Date.now() + 15000;
  while (video.currentTime < 0.5 && Date.now() < end) await sleep(50);
  const before = video.currentTime;
  const framesBefore = video.getVideoPlaybackQuality().totalVideoFrames;
  await fetch('/mark');
  p.trickPlay(rate);
  await sleep(4000);
  const after = video.currentTime;
  const frames = video.getVideoPlaybackQuality().totalVideoFrames - framesBefore;
  await p.destroy();
  return { before, after, frames, errors };
};
</script></body></html>`;

let requests = null;
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname === '/page') { res.writeHead(200, { 'content-type': 'text/html' }).end(page); return; }
  if (url.pathname === '/shaka.js') { res.writeHead(200, { 'content-type': 'text/javascript' }).end(fs.readFileSync(shakaJs)); return; }
  if (url.pathname === '/mark') { requests = []; res.writeHead(204).end(); return; }
  if (requests) requests.push(url.pathname + (req.headers.range ? ' ' + req.headers.range : ''));
  const file = path.join(root, decodeURIComponent(url.pathname));
  if (!file.startsWith(root + path.sep) || !fs.existsSync(file)) { res.writeHead(404).end(); return; }
  const types = { '.mpd': 'application/dash+xml', '.m3u8': 'application/vnd.apple.mpegurl' };
  const type = types[path.extname(file)] || 'application/octet-stream';
  const bytes = fs.readFileSync(file);
  const range = /bytes=(\d+)-(\d*)/.exec(req.headers.range || '');
  if (range) {
    const start = Number(range[1]);
    const last = range[2] ? Math.min(Number(range[2]), bytes.length - 1) : bytes.length - 1;
    res.writeHead(206, { 'content-type': type, 'content-range': `bytes ${start}-${last}/${bytes.length}` }).end(bytes.subarray(start, last + 1));
    return;
  }
  res.writeHead(200, { 'content-type': type }).end(bytes);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;
const { browser, close } = await launchChromium();
let failed = false;
try {
  for (const manifest of opt('manifest')) {
    requests = null;
    const tab = await browser.newPage();
    const pageErrors = [];
    tab.on('pageerror', (e) => pageErrors.push('page error: ' + e.message));
    if (process.env.REEL_PLAY_DEBUG) tab.on('console', (m) => process.stderr.write(m.text() + '\n'));
    let result;
    try {
      await tab.goto(`${base}/page`);
      let timer;
      const limit = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('no result within 60 s')), 60000); });
      result = await Promise.race([tab.evaluate(([a, b, c]) => window.run(a, b, c), [`${base}/${manifest}`, rate, clearKeys]), limit]).finally(() => clearTimeout(timer));
    } catch (e) {
      result = { errors: ['harness: ' + e.message] };
    }
    result.manifest = manifest;
    result.requests = requests || [];
    result.errors = [...(result.errors || []), ...pageErrors];
    console.log(JSON.stringify(result));
    failed ||= result.errors.length > 0;
    await tab.close();
  }
} finally {
  await close();
  server.close();
}
process.exit(failed ? 1 : 0);
