// Debian's headless Chromium, launched the same way by every harness here: a fresh profile,
// no sandbox (CI runs as root), no network chatter, media allowed to play without a gesture.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

// Returns the browser and `close()`, which closes it and removes its profile.
export async function launchChromium() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'reel-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required'],
  });
  const close = async () => {
    await browser.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { browser, close };
}

const TYPES = {
  '.mpd': 'application/dash+xml', '.m3u8': 'application/vnd.apple.mpegurl', '.vtt': 'text/vtt',
  '.js': 'text/javascript', '.jpg': 'image/jpeg', '.html': 'text/html',
};

// Serves the files under `root` (with byte ranges, as single-file tracks and I-frame
// playlists are read) on a port of its own; `routes` maps a path to a handler (req, res, url)
// that answers it instead, and `onRequest(url, req)` sees every file request. Returns the
// base URL and `close()`.
export async function serveFolder(root, routes = {}, onRequest = () => {}) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    const route = routes[url.pathname];
    if (route) { route(req, res, url); return; }
    onRequest(url, req);
    const file = path.join(root, decodeURIComponent(url.pathname));
    if (!file.startsWith(root + path.sep) || !fs.existsSync(file)) { res.writeHead(404).end(); return; }
    const type = TYPES[path.extname(file)] || 'application/octet-stream';
    const bytes = fs.readFileSync(file);
    const range = /bytes=(\d+)-(\d*)/.exec(req.headers.range || '');
    if (range) {
      const start = Number(range[1]);
      const end = range[2] ? Math.min(Number(range[2]), bytes.length - 1) : bytes.length - 1;
      res.writeHead(206, { 'content-type': type, 'content-range': `bytes ${start}-${end}/${bytes.length}`, 'accept-ranges': 'bytes' })
        .end(bytes.subarray(start, end + 1));
      return;
    }
    res.writeHead(200, { 'content-type': type, 'accept-ranges': 'bytes' }).end(bytes);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { base: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

// For each of `items`: opens `pageUrl(item)` in a fresh tab of `browser`, runs
// `evaluate(tab, item)` (bounded by `seconds`), and prints its result as one JSON line with
// `label(item)`'s fields and every error (the page's uncaught ones included). Returns whether
// any item had an error. REEL_PLAY_DEBUG=1 prints the pages' console to stderr.
export async function eachInPage(browser, items, { pageUrl, evaluate, label, seconds = 60 }) {
  let failed = false;
  for (const item of items) {
    const tab = await browser.newPage();
    const pageErrors = [];
    tab.on('pageerror', (e) => pageErrors.push('page error: ' + e.message));
    if (process.env.REEL_PLAY_DEBUG) tab.on('console', (m) => process.stderr.write(m.text() + '\n'));
    let result;
    try {
      await tab.goto(pageUrl(item));
      let timer;
      const limit = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no result within ${seconds} s`)), seconds * 1000); });
      result = await Promise.race([evaluate(tab, item), limit]).finally(() => clearTimeout(timer));
    } catch (e) {
      result = { errors: ['harness: ' + e.message] };
    }
    result = { ...result, ...label(item) };
    result.errors = [...(result.errors || []), ...pageErrors];
    console.log(JSON.stringify(result));
    failed ||= result.errors.length > 0;
    await tab.close();
  }
  return failed;
}
