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
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { eachInPage, launchChromium, serveFolder } from './chromium.mjs';

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

// Requests after the page marks the call to trickPlay (null before).
let requests = null;
const { base, close: stop } = await serveFolder(root, {
  '/page': (req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(page),
  '/shaka.js': (req, res) => res.writeHead(200, { 'content-type': 'text/javascript' }).end(fs.readFileSync(shakaJs)),
  '/mark': (req, res) => { requests = []; res.writeHead(204).end(); },
}, (url, req) => {
  if (requests) requests.push(url.pathname + (req.headers.range ? ' ' + req.headers.range : ''));
});
const { browser, close } = await launchChromium();
let failed = false;
try {
  failed = await eachInPage(browser, opt('manifest'), {
    pageUrl: () => `${base}/page`,
    evaluate: async (tab, manifest) => {
      requests = null;
      const result = await tab.evaluate(([a, b, c]) => window.run(a, b, c), [`${base}/${manifest}`, rate, clearKeys]);
      return { ...result, requests: requests || [] };
    },
    label: (manifest) => ({ manifest }),
  });
} finally {
  await close();
  stop();
}
process.exit(failed ? 1 : 0);
