// Plays a packaged title in Debian's headless Chromium with real players, driven by
// playwright-core, and prints one JSON result per player run.
//
//   node play.mjs --root DIR --manifest manifest.mpd --player shaka [--player dashjs ...]
//        [--clearkey KIDHEX:KEYHEX ...] [--drm keys|license] [--audio-channels N]
//        [--audio-label LABEL]
//
// With --clearkey the title is encrypted: `--drm keys` hands the keys to the player (EME
// ClearKey), `--drm license` makes the player fetch them from a W3C ClearKey licence server
// this harness serves at /license (and raw keys at /keys/KIDHEX for HLS `identity` key URIs).
// The result then says how many licence and key requests were served. With --audio-channels
// (shaka-player and hls.js) the player is asked for the audio rendition of that many channels;
// the result's audioChannels says what it played. Every result lists the audio tracks the
// player offers (audioTracks: language, role, label, accessibility, as the player reads them);
// with --audio-label the track of that label (DASH Label, HLS NAME) is selected before playing,
// and audioPlayed says which track was active at the end.
//
// Each run: load the manifest, turn ABR off, select every video rendition in turn and wait
// until the picture has that height, then play from the start to the end. Reported: whether
// playback ended, the video heights seen, decoded and dropped frames, and every player error.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './chromium.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name) => args.flatMap((a, i) => (a === `--${name}` ? [args[i + 1]] : []));
const root = path.resolve(opt('root')[0]);
const manifest = opt('manifest')[0];
const players = opt('player');
const timeoutMs = Number(opt('timeout')[0] ?? 90000);
const clearKeys = Object.fromEntries(opt('clearkey').map((p) => p.split(':')));
const drmMode = opt('drm')[0] ?? (Object.keys(clearKeys).length ? 'keys' : 'none');
const audioChannels = Number(opt('audio-channels')[0] ?? 0);
const audioLabel = opt('audio-label')[0] ?? '';
const served = { licenses: 0, keys: 0 };
const hexToB64url = (h) => Buffer.from(h, 'hex').toString('base64url');

const libs = {
  shaka: 'node_modules/shaka-player/dist/shaka-player.compiled.js',
  dashjs: 'node_modules/dashjs/dist/modern/umd/dash.all.min.js',
  hlsjs: 'node_modules/hls.js/dist/hls.min.js',
};
const types = {
  '.mpd': 'application/dash+xml', '.m3u8': 'application/vnd.apple.mpegurl',
  '.mp4': 'video/mp4', '.m4s': 'video/iso.segment', '.js': 'text/javascript', '.html': 'text/html',
};

const page = (player) => `<!doctype html><html><body>
<video id="v" muted playsinline width="640"></video>
<script src="/lib/${player}.js"></script>
<script>
const video = document.getElementById('v');
const errors = [];
const heights = new Set();
video.addEventListener('resize', () => heights.add(video.videoHeight));
video.addEventListener('error', () => errors.push('video element: ' + (video.error && video.error.message)));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(cond, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (cond()) return true; await sleep(50); }
  return false;
}
window.run = async (src, budget, visit, drm, channels, audioLabel) => {
  const t0 = Date.now();
  const license = location.origin + '/license';
  let renditions = [];   // [{height, select()}]
  let playedChannels = () => null;
  // The audio tracks in one form: {language, role, label, accessibility, active, select()}.
  let audioTracks = () => [];
  if ('${player}' === 'shaka') {
    shaka.polyfill.installAll();
    const p = new shaka.Player();
    await p.attach(video);
    p.addEventListener('error', (e) => errors.push('shaka ' + e.detail.code + ' ' + JSON.stringify(e.detail.data).slice(0, 300)));
    p.configure({ abr: { enabled: false } });
    if (drm.mode === 'keys') p.configure({ drm: { clearKeys: drm.hex } });
    if (drm.mode === 'license') p.configure({ drm: { servers: { 'org.w3.clearkey': license } } });
    if (channels) p.configure({ preferredAudioChannelCount: channels });
    await p.load(src);
    playedChannels = () => (p.getVariantTracks().find((t) => t.active) || {}).channelsCount;
    audioTracks = () => p.getAudioTracks().map((t) => ({
      language: t.language, role: (t.roles || [])[0] || null, label: t.label,
      accessibility: t.accessibilityPurpose || null, active: t.active, select: () => p.selectAudioTrack(t),
    }));
    // Each height with the audio playing now: a variant of another audio track would switch
    // the audio as well.
    const playing = p.getVariantTracks().find((t) => t.active);
    const tracks = p.getVariantTracks().filter((t) => t.height && (!playing || t.audioId === playing.audioId));
    const byHeight = new Map(tracks.map((t) => [t.height, t]));
    renditions = [...byHeight.values()].map((t) => ({ height: t.height, select: () => p.selectVariantTrack(t, true) }));
  } else if ('${player}' === 'dashjs') {
    const p = dashjs.MediaPlayer().create();
    p.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: false, audio: false } } }, debug: { logLevel: 1 } });
    p.on(dashjs.MediaPlayer.events.ERROR, (e) => errors.push('dash.js ' + JSON.stringify(e.error || e).slice(0, 300)));
    p.on(dashjs.MediaPlayer.events.PLAYBACK_ERROR, (e) => errors.push('dash.js playback ' + JSON.stringify(e.error || e).slice(0, 300)));
    if (drm.mode === 'keys') p.setProtectionData({ 'org.w3.clearkey': { clearkeys: drm.b64 } });
    if (drm.mode === 'license') p.setProtectionData({ 'org.w3.clearkey': { serverURL: license } });
    p.initialize(video, src, false);
    await new Promise((r) => p.on(dashjs.MediaPlayer.events.STREAM_INITIALIZED, r));
    renditions = p.getRepresentationsByType('video').map((r) => ({ height: r.height, select: () => p.setRepresentationForTypeById('video', r.id, true) }));
    const value = (d) => (typeof d === 'string' ? d : d && d.value) || null;
    audioTracks = () => {
      const current = p.getCurrentTrackFor('audio');
      return p.getTracksFor('audio').map((t) => ({
        language: t.lang, role: value((t.roles || [])[0]), label: ((t.labels || [])[0] || {}).text || null,
        accessibility: value((t.accessibility || [])[0]), active: current === t || (current && current.id === t.id),
        select: () => p.setCurrentTrack(t),
      }));
    };
  } else {
    const cfg = { capLevelToPlayerSize: false, startLevel: 0 };
    if (drm.mode !== 'none') {
      // hls.js has no way to take raw keys: it always asks a licence server.
      cfg.emeEnabled = true;
      cfg.drmSystems = { 'org.w3.clearkey': { licenseUrl: license } };
    }
    const h = new Hls(cfg);
    h.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) errors.push('hls.js ' + d.type + ' ' + d.details); });
    h.loadSource(src);
    h.attachMedia(video);
    await new Promise((r) => h.on(Hls.Events.MANIFEST_PARSED, r));
    if (channels) {
      const i = h.allAudioTracks.findIndex((t) => parseInt(t.channels, 10) === channels);
      if (i < 0) errors.push('no ' + channels + '-channel audio in ' + JSON.stringify(h.allAudioTracks.map((t) => t.channels)));
      else h.setAudioOption(h.allAudioTracks[i]);
    }
    playedChannels = () => { const t = h.audioTracks[h.audioTrack]; return t ? parseInt(t.channels || '2', 10) : null; };
    renditions = h.levels.map((l, i) => ({ height: l.height, select: () => { h.currentLevel = i; } }));
    // HLS has no roles: description is a characteristic; the main track is the default.
    audioTracks = () => h.audioTracks.map((t, i) => ({
      language: t.lang, label: t.name, accessibility: t.characteristics || null,
      role: (t.characteristics || '').includes('describes-video') ? 'description' : (t.default ? 'main' : null),
      active: h.audioTrack === i, select: () => { h.audioTrack = i; },
    }));
  }
  const listed = audioTracks().map(({ select, active, ...t }) => t);
  if (audioLabel && !visit) {
    const t = audioTracks().find((x) => x.label === audioLabel);
    if (t) t.select();
    else errors.push('no audio track labelled ' + audioLabel + ' in ' + JSON.stringify(listed.map((x) => x.label)));
  }
  // Visit each rendition paused: select it, then seek somewhere new so that the player
  // fetches and decodes a frame of it.
  const visited = [];
  await waitFor(() => video.readyState >= 1 && video.duration > 0, 15000);
  for (const [i, r] of (visit ? renditions : []).entries()) {
    // Players may keep already-buffered media of the previous rendition around the seek
    // target, so try a few positions before giving up.
    let shown = false;
    for (let attempt = 0; attempt < 3 && !shown; attempt++) {
      r.select();
      const at = ((i + 1) / (renditions.length + 1) + 0.37 * attempt) % 1;
      video.currentTime = at * video.duration;
      shown = await waitFor(() => video.videoHeight === r.height && video.readyState >= 2 && !video.seeking, 6000);
    }
    if (shown) visited.push(r.height);
    else errors.push('never showed the ' + r.height + 'p rendition (height ' + video.videoHeight + ')');
  }
  if (visit) return { visited, renditions: renditions.map((r) => r.height), audioTracks: listed, errors };
  // A fresh player plays the whole title from the start to the end.
  video.playbackRate = 2;
  await video.play().catch((e) => errors.push('play(): ' + e.message));
  const ended = await waitFor(() => video.ended, Math.max(5000, budget - (Date.now() - t0)));
  const q = video.getVideoPlaybackQuality();
  return {
    ended, visited, renditions: renditions.map((r) => r.height), heights: [...heights],
    decodedFrames: q.totalVideoFrames, droppedFrames: q.droppedVideoFrames,
    currentTime: video.currentTime, duration: video.duration, audioChannels: playedChannels(),
    audioTracks: listed,
    audioPlayed: (({ select, active, ...t }) => t)(audioTracks().find((t) => t.active) || { select: 0, active: 0 }),
    errors,
  };
};
</script></body></html>`;

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  let file;
  if (url.pathname.startsWith('/lib/')) {
    const name = path.basename(url.pathname, '.js');
    if (!libs[name]) { res.writeHead(404).end(); return; }
    file = path.join(here, libs[name]);
  } else if (url.pathname === '/license') {
    // W3C ClearKey licence: {"kids": [base64url], "type": ...} -> a JSON Web Key set.
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      served.licenses += 1;
      let kids = [];
      try { kids = JSON.parse(body).kids || []; } catch { /* answered empty */ }
      const keys = kids.flatMap((kid) => {
        const hex = Buffer.from(kid, 'base64url').toString('hex');
        return clearKeys[hex] ? [{ kty: 'oct', kid, k: hexToB64url(clearKeys[hex]) }] : [];
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys, type: 'temporary' }));
    });
    return;
  } else if (url.pathname.startsWith('/keys/')) {
    const hex = path.basename(url.pathname).toLowerCase();
    if (!clearKeys[hex]) { res.writeHead(404).end(); return; }
    served.keys += 1;
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(Buffer.from(clearKeys[hex], 'hex'));
    return;
  } else if (url.pathname.startsWith('/page/')) {
    res.writeHead(200, { 'content-type': 'text/html' }).end(page(path.basename(url.pathname)));
    return;
  } else {
    file = path.join(root, decodeURIComponent(url.pathname));
    if (!file.startsWith(root + path.sep)) { res.writeHead(403).end(); return; }
  }
  fs.stat(file, (err, st) => {
    if (err || !st.isFile()) { res.writeHead(404).end(); return; }
    const type = types[path.extname(file)] || 'application/octet-stream';
    const range = /bytes=(\d+)-(\d*)/.exec(req.headers.range || '');
    if (range) {
      const start = Number(range[1]);
      const end = range[2] ? Math.min(Number(range[2]), st.size - 1) : st.size - 1;
      res.writeHead(206, { 'content-type': type, 'content-range': `bytes ${start}-${end}/${st.size}`, 'content-length': end - start + 1, 'accept-ranges': 'bytes' });
      fs.createReadStream(file, { start, end }).pipe(res);
    } else {
      res.writeHead(200, { 'content-type': type, 'content-length': st.size, 'accept-ranges': 'bytes' });
      fs.createReadStream(file).pipe(res);
    }
  });
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const port = server.address().port;

const { browser, close: closeBrowser } = await launchChromium();
let failed = false;
try {
  for (const player of players) {
    const tab = await browser.newPage();
    const console_ = [];
    tab.on('pageerror', (e) => console_.push('page error: ' + e.message));
    tab.on('crash', () => console_.push('page crashed'));
    if (process.env.REEL_PLAY_DEBUG) tab.on('console', (m) => process.stderr.write(m.text() + '\n'));
    // Two loads: one visits every rendition (ABR off, seeking), one plays start to end.
    const src = `http://127.0.0.1:${port}/${manifest}`;
    const drm = {
      mode: drmMode,
      hex: clearKeys,
      b64: Object.fromEntries(Object.entries(clearKeys).map(([k, v]) => [hexToB64url(k), hexToB64url(v)])),
    };
    served.licenses = 0;
    served.keys = 0;
    let result;
    // Nothing in the page may wait forever (a player waiting for a key never resolves
    // play()): each run gets the budget and a margin, then fails naming the phase.
    const bounded = (phase, work) => {
      let timer;
      const limit = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${phase}: no result within ${(timeoutMs + 30000) / 1000} s`)), timeoutMs + 30000);
      });
      return Promise.race([work, limit]).finally(() => clearTimeout(timer));
    };
    try {
      await tab.goto(`http://127.0.0.1:${port}/page/${player}`);
      const visits = await bounded('visiting the renditions', tab.evaluate(([s, b, d, c, a]) => window.run(s, b, true, d, c, a), [src, timeoutMs, drm, audioChannels, audioLabel]));
      await tab.goto(`http://127.0.0.1:${port}/page/${player}`);
      result = await bounded('playing to the end', tab.evaluate(([s, b, d, c, a]) => window.run(s, b, false, d, c, a), [src, timeoutMs, drm, audioChannels, audioLabel]));
      result.visited = visits.visited;
      result.errors = [...visits.errors, ...result.errors];
    } catch (e) {
      result = { ended: false, errors: ['harness: ' + e.message] };
    }
    result.player = player;
    result.manifest = manifest;
    result.drm = drmMode;
    result.licenses = served.licenses;
    result.keyRequests = served.keys;
    result.errors = [...(result.errors || []), ...console_];
    console.log(JSON.stringify(result));
    failed ||= !result.ended || result.errors.length > 0;
    await tab.close();
  }
} finally {
  await closeBrowser();
  server.close();
}
process.exit(failed ? 1 : 0);
