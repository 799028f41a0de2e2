// Debian's headless Chromium, launched the same way by every harness here: a fresh profile,
// no sandbox (CI runs as root), no network chatter, media allowed to play without a gesture.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
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
