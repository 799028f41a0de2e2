// Text tracks, read by tools independent of Reel.
//
//   node text.mjs --samples DIR|FILE
//     Parses a CMAF text track (DIR/init.mp4 + DIR/N.m4s in order, or one single-file track
//     with its sidx) with mp4box.js; prints one
//     JSON line per sample (times in seconds): WebVTT (`wvtt`, read with its 14496-30 sample
//     parser) {codec, t, d, cues: [{id, settings, text}]}; TTML (`stpp`) {codec, t, d, xml}.
//
//   node text.mjs --root DIR --manifest M --player shaka|dashjs|hlsjs [--player ...]
//        --probe LANG:SECONDS [--probe ...]
//     Loads the manifest in headless Chromium, lists the text tracks the player offers
//     (language, kind, roles, label, forced), then for each probe selects that language's
//     first track, seeks to SECONDS (paused) and reads the cues the browser shows there (the
//     video element's active cues). One JSON line per player: {player, tracks, probes, errors}.
//     REEL_PLAY_DEBUG=1 prints the page's console and the requests to stderr.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createFile, MP4BoxBuffer, VTTin4Parser } from 'mp4box';
import { eachInPage, launchChromium, serveFolder } from './chromium.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name) => args.flatMap((a, i) => (a === `--${name}` ? [args[i + 1]] : []));

if (opt('samples').length) {
  const dir = opt('samples')[0];
  let bytes;
  if (fs.statSync(dir).isFile()) {
    bytes = fs.readFileSync(dir);
  } else {
    const numbers = fs.readdirSync(dir).filter((f) => /^\d+\.m4s$/.test(f)).map((f) => parseInt(f, 10)).sort((a, b) => a - b);
    bytes = Buffer.concat([fs.readFileSync(path.join(dir, 'init.mp4')), ...numbers.map((n) => fs.readFileSync(path.join(dir, `${n}.m4s`)))]);
  }
  const mp4 = createFile();
  const errors = [];
  mp4.onError = (m, e) => errors.push(`${m}: ${e}`);
  const samples = [];
  let codec = '';
  mp4.onReady = (info) => {
    const track = info.tracks[0];
    codec = track.codec;
    if (codec !== 'wvtt' && !codec.startsWith('stpp')) errors.push('codec ' + codec);
    mp4.setExtractionOptions(track.id, null, { nbSamples: 1 << 20 });
    mp4.start();
  };
  mp4.onSamples = (_, __, list) => samples.push(...list);
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  mp4.appendBuffer(MP4BoxBuffer.fromArrayBuffer(ab, 0));
  mp4.flush();
  const parser = new VTTin4Parser();
  for (const s of samples) {
    if (codec.startsWith('stpp')) {
      const xml = new TextDecoder('utf-8', { fatal: true }).decode(s.data);
      console.log(JSON.stringify({ codec, t: s.cts / s.timescale, d: s.duration / s.timescale, xml }));
      continue;
    }
    // mp4box.js parses `payl`; `iden` and `sttg` it keeps as unknown boxes with their bytes.
    const child = (c, type) => {
      const b = (c.boxes || []).find((x) => x.type === type);
      return b && b.data ? new TextDecoder().decode(b.data) : '';
    };
    const cues = parser.parseSample(s.data).map((c) => ({
      id: child(c, 'iden'), settings: child(c, 'sttg'), text: c.payl ? c.payl.text : '',
    }));
    console.log(JSON.stringify({ codec, t: s.cts / s.timescale, d: s.duration / s.timescale, cues }));
  }
  if (!samples.length) errors.push('no samples');
  if (errors.length) console.log(JSON.stringify({ errors }));
  process.exit(errors.length ? 1 : 0);
}

const root = path.resolve(opt('root')[0]);
const manifest = opt('manifest')[0];
const probes = opt('probe').map((p) => { const i = p.lastIndexOf(':'); return { lang: p.slice(0, i), at: Number(p.slice(i + 1)) }; });
const libs = {
  shaka: 'node_modules/shaka-player/dist/shaka-player.compiled.js',
  dashjs: 'node_modules/dashjs/dist/modern/umd/dash.all.min.js',
  hlsjs: 'node_modules/hls.js/dist/hls.min.js',
};
const page = (player) => `<!doctype html><html><body>
<video id="v" muted playsinline width="640"></video>
<div id="ttml" style="position:absolute;left:0;top:0;width:640px;height:360px;pointer-events:none"></div>
<script src="/lib/${player}.js"></script>
<script>
const video = document.getElementById('v');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(cond, ms) { const end = Date.now() + ms; while (Date.now() < end) { if (cond()) return true; await sleep(50); } return false; }
const describe = () => [...video.textTracks].map((t) => t.label + '/' + t.language + '/' + t.mode + '/' + (t.cues ? t.cues.length : '-')).join(' | ');
// The cues on show from tracks of \`lang\` (or of no language: shaka-player's one display track);
// none while a track of another language is still showing (a switch in progress).
const shown = (lang) => {
  const showing = [...video.textTracks].filter((t) => t.mode === 'showing');
  if (showing.some((t) => t.language && t.language.toLowerCase() !== lang.toLowerCase())) return [];
  // A cue rendered as HTML (dash.js's IMSC1 cues) has no text of its own: its text is what
  // the rendering div shows while it is active.
  const rendered = () => document.getElementById('ttml').innerText.trim();
  return showing.flatMap((t) => [...(t.activeCues || [])])
    .map((c) => ({ text: c.text || rendered(), start: c.startTime, end: c.endTime }))
    .filter((c) => c.text);
};
window.run = async (src, probes) => {
  const errors = [];
  let tracks = [], select;
  if ('${player}' === 'shaka') {
    shaka.polyfill.installAll();
    const p = new shaka.Player();
    await p.attach(video);
    p.addEventListener('error', (e) => errors.push('shaka ' + e.detail.code));
    // HLS: text streams from the start, in the first probe's language. shaka-player holds HLS
    // text back until a video segment is appended after its text engine exists; turned on
    // only once a short clip's video is all buffered, its text never showed (about half the
    // runs). Not for DASH, where this made the first probe miss its cue.
    if (src.endsWith('.m3u8')) {
      p.configure({ streaming: { alwaysStreamText: true }, preferredTextLanguage: probes[0] ? probes[0].lang : '' });
    }
    await p.load(src);
    const list = p.getTextTracks();
    tracks = list.map((t) => ({ language: t.language, kind: t.kind, roles: t.roles, label: t.label, forced: t.forced }));
    // shaka-player 5 has no visibility switch of its own: its one native track is shown here.
    select = async (i) => {
      // A track shaka-player starts with is "active" but not streamed while text is hidden,
      // and choosing it again changes nothing: choose another first, as a viewer going
      // through the menu would (the first probe found no cue in some runs without this).
      const now = p.getTextTracks().find((t) => t.id === list[i].id);
      const other = list.find((t) => t.id !== list[i].id);
      if (now && now.active && other) {
        p.selectTextTrack(other);
        await sleep(200);
      }
      p.selectTextTrack(list[i]);
      // shaka-player 5 keeps text hidden until its displayer is told to show it.
      const displayer = p.getTextDisplayer && p.getTextDisplayer();
      if (displayer) displayer.setTextVisibility(true);
      await waitFor(() => [...video.textTracks].some((t) => t.language === list[i].language), 2000);
      for (const t of video.textTracks) if (t.language === list[i].language) t.mode = 'showing';
    };
  } else if ('${player}' === 'dashjs') {
    const p = dashjs.MediaPlayer().create();
    p.updateSettings({ debug: { logLevel: 1 } });
    p.on(dashjs.MediaPlayer.events.ERROR, (e) => errors.push('dash.js ' + JSON.stringify(e.error || e).slice(0, 200)));
    p.initialize(video, src, false);
    // dash.js renders IMSC1 (TTML) cues into a div of the page, as a page that shows them does.
    p.attachTTMLRenderingDiv(document.getElementById('ttml'));
    await new Promise((r) => p.on(dashjs.MediaPlayer.events.STREAM_INITIALIZED, r));
    const list = p.getTracksFor('text');
    tracks = list.map((t) => ({ language: t.lang, roles: (t.roles || []).map((r) => r.value || r), label: (t.labels || [])[0]?.text, accessibility: (t.accessibility || []).map((a) => a.value || a) }));
    // dash.js switches text by the index of its native track (the order it added them).
    select = async (i) => {
      p.enableText(true);
      p.setTextTrack([...video.textTracks].findIndex((t) => t.language === list[i].lang && t.kind !== 'metadata'));
    };
  } else {
    const h = new Hls({ renderTextTracksNatively: true });
    h.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) errors.push('hls.js ' + d.details); });
    h.loadSource(src);
    h.attachMedia(video);
    await new Promise((r) => h.on(Hls.Events.MANIFEST_PARSED, r));
    tracks = h.allSubtitleTracks.map((t) => ({ language: t.lang, label: t.name, forced: t.forced, characteristics: t.attrs.CHARACTERISTICS || null }));
    select = async (i) => { h.subtitleDisplay = true; h.subtitleTrack = i; };
  }
  await waitFor(() => video.readyState >= 1 && video.duration > 0, 15000);
  const results = [];
  for (const probe of probes) {
    const i = tracks.findIndex((t) => t.language === probe.lang);
    if (i < 0) { errors.push('no text track in ' + probe.lang); continue; }
    await select(i);
    // A paused player fetches text on a seek, and not always on the first after a switch:
    // seek again (away and back) a few times before giving up.
    for (let attempt = 0; attempt < 4 && (attempt === 0 || !shown(probe.lang).length); attempt++) {
      if (attempt) {
        // Choose the track again (as a viewer would) and seek away and back.
        if (attempt === 2) await select(i);
        video.currentTime = Math.max(0, probe.at - 0.5);
        await waitFor(() => !video.seeking, 5000);
      }
      video.currentTime = probe.at;
      await waitFor(() => !video.seeking && video.readyState >= 2, 10000);
      await waitFor(() => shown(probe.lang).length > 0, 4000);
    }
    results.push({ lang: probe.lang, at: probe.at, currentTime: video.currentTime, cues: shown(probe.lang) });
    if (!results[results.length - 1].cues.length) console.log('no cue shown; text tracks: ' + describe());
  }
  return { tracks, probes: results, errors };
};
</script></body></html>`;

// Each player's page and library; the manifest's files from the root.
const routes = {};
for (const [player, lib] of Object.entries(libs)) {
  routes[`/page/${player}`] = (req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(page(player));
  routes[`/lib/${player}.js`] = (req, res) => res.writeHead(200, { 'content-type': 'text/javascript' }).end(fs.readFileSync(path.join(here, lib)));
}
const { base, close: stop } = await serveFolder(root, routes, (url) => {
  if (process.env.REEL_PLAY_DEBUG) process.stderr.write('GET ' + url.pathname + '\n');
});
const { browser, close } = await launchChromium();
let failed = false;
try {
  failed = await eachInPage(browser, opt('player'), {
    pageUrl: (player) => `${base}/page/${player}`,
    evaluate: (tab, player) => tab.evaluate(([s, p]) => window.run(s, p), [`${base}/${manifest}`, probes]),
    label: (player) => ({ player }),
    seconds: 90,
  });
} finally {
  await close();
  stop();
}
process.exit(failed ? 1 : 0);
