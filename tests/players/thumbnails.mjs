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
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { eachInPage, launchChromium, serveFolder } from './chromium.mjs';

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

const { base, close: stop } = await serveFolder(root, {
  '/page': (req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(page),
  '/shaka.js': (req, res) => res.writeHead(200, { 'content-type': 'text/javascript' }).end(fs.readFileSync(shakaJs)),
});
const sources = opt('manifest').map((m) => ({ source: m, src: `${base}/${m}`, vtt: null }));
if (opt('vtt').length) sources.push({ source: opt('vtt')[0], src: sources[0].src, vtt: `${base}/${opt('vtt')[0]}` });
const { browser, close } = await launchChromium();
let failed = false;
try {
  failed = await eachInPage(browser, sources, {
    pageUrl: () => `${base}/page`,
    evaluate: (tab, s) => tab.evaluate(([a, b, c]) => window.run(a, b, c), [s.src, s.vtt, times]),
    label: (s) => ({ source: s.source }),
  });
} finally {
  await close();
  stop();
}
process.exit(failed ? 1 : 0);
