// HDR and SDR variants in shaka-player, in headless Chromium (an SDR display).
//
//   node hdr.mjs --root DIR --manifest M [--manifest ...] [--type MIME ...]
//
// Prints one JSON line {types: {MIME: MediaSource.isTypeSupported(MIME)}} for the --type
// arguments, then one per manifest: {manifest, variants: [{height, hdr (shaka's video range:
// SDR, PQ or HLG), codecs}], played: the variant playing after a second of play, time,
// errors}. REEL_PLAY_DEBUG=1 prints the page's console to stderr.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { eachInPage, launchChromium, serveFolder } from './chromium.mjs';

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

const { base, close: stop } = await serveFolder(root, {
  '/page': (req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(page),
  '/shaka.js': (req, res) => res.writeHead(200, { 'content-type': 'text/javascript' }).end(fs.readFileSync(shakaJs)),
});
const { browser, close } = await launchChromium();
let failed = false;
try {
  const tab = await browser.newPage();
  await tab.goto(`${base}/page`);
  const types = await tab.evaluate((list) => Object.fromEntries(list.map((t) => [t, MediaSource.isTypeSupported(t)])), opt('type'));
  console.log(JSON.stringify({ types }));
  await tab.close();
  failed = await eachInPage(browser, opt('manifest'), {
    pageUrl: () => `${base}/page`,
    evaluate: (tab, manifest) => tab.evaluate((s) => window.run(s), `${base}/${manifest}`),
    label: (manifest) => ({ manifest }),
  });
} finally {
  await close();
  stop();
}
process.exit(failed ? 1 : 0);
