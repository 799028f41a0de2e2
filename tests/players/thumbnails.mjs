// Thumbnail tracks as shaka-player reads them, in headless Chromium.
//
//   node thumbnails.mjs --root DIR --manifest M [--manifest ...] [--vtt PATH] --at SECONDS [--at ...]
//
// For each manifest: loads it, lists the image tracks shaka-player offers, and asks
// `getThumbnails(track, SECONDS)` for every --at. With --vtt, the WebVTT thumbnail track at
// PATH is added to the first manifest's presentation (`addThumbnailsTrack`) and asked the same.
// One JSON line per source: {source, tracks: [{id, width, height, tilesLayout}], thumbnails:
// [{at, uri, startTime, duration, positionX, positionY, width, height}], errors}.
// REEL_PLAY_DEBUG=1 prints the page's console to stderr.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './chromium.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name) => args.flatMap((a, i) => (a === `--${name}` ? [args[i + 1]] : []));
const root = path.resolve(opt('root')[0]);
const times = opt('at').map(Number);
const shakaJs = path.join(here, 'node_modules/shaka-player/dist/shaka-player.compiled.js');

const page = `<!doctype html><html><body><video id="v" muted width="640"></video>
<script src="/shaka.js"></script>
<script>
window.run = async (src, vtt, times) => {
  const errors = [];
  shaka.polyfill.installAll();
  const p = new shaka.Player();
  await p.attach(document.getElementById('v'));
  p.addEventListener('error', (e) => errors.push('shaka ' + e.detail.code));
  await p.load(src);
  let tracks = p.getImageTracks();
  if (vtt) tracks = [await p.addThumbnailsTrack(vtt, 'text/vtt')];
  const thumbnails = [];
  for (const at of times) {
    const t = await p.getThumbnails(tracks[0] ? tracks[0].id : null, at);
    thumbnails.push(t ? { at, uri: t.uris[0], startTime: t.startTime, duration: t.duration,
      positionX: t.positionX, positionY: t.positionY, width: t.width, height: t.height } : { at });
  }
  await p.destroy();
  return { tracks: tracks.map((t) => ({ id: t.id, width: t.width, height: t.height, tilesLayout: t.tilesLayout })), thumbnails, errors };
};
</script></body></html>`;

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname === '/page') { res.writeHead(200, { 'content-type': 'text/html' }).end(page); return; }
  if (url.pathname === '/shaka.js') { res.writeHead(200, { 'content-type': 'text/javascript' }).end(fs.readFileSync(shakaJs)); return; }
  const file = path.join(root, decodeURIComponent(url.pathname));
  if (!file.startsWith(root + path.sep) || !fs.existsSync(file)) { res.writeHead(404).end(); return; }
  const types = { '.mpd': 'application/dash+xml', '.m3u8': 'application/vnd.apple.mpegurl', '.vtt': 'text/vtt', '.jpg': 'image/jpeg' };
  res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream' }).end(fs.readFileSync(file));
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;
const sources = opt('manifest').map((m) => ({ source: m, src: `${base}/${m}`, vtt: null }));
if (opt('vtt').length) sources.push({ source: opt('vtt')[0], src: sources[0].src, vtt: `${base}/${opt('vtt')[0]}` });
const { browser, close } = await launchChromium();
let failed = false;
try {
  for (const s of sources) {
    const tab = await browser.newPage();
    const pageErrors = [];
    tab.on('pageerror', (e) => pageErrors.push('page error: ' + e.message));
    if (process.env.REEL_PLAY_DEBUG) tab.on('console', (m) => process.stderr.write(m.text() + '\n'));
    let result;
    try {
      await tab.goto(`${base}/page`);
      let timer;
      const limit = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('no result within 60 s')), 60000); });
      result = await Promise.race([tab.evaluate(([a, b, c]) => window.run(a, b, c), [s.src, s.vtt, times]), limit]).finally(() => clearTimeout(timer));
    } catch (e) {
      result = { errors: ['harness: ' + e.message] };
    }
    result.source = s.source;
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
