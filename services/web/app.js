// Reel's player page: plain DOM, the service's JSON API, and shaka-player with the W3C
// ClearKey licence server. `window.reel` exposes playback state for end-to-end tests.
'use strict';
const $ = (id) => document.getElementById(id);
const reel = (window.reel = { errors: [], heights: [], ended: false, playing: null, session: null });
let auth = JSON.parse(sessionStorage.getItem('reel-auth') || 'null');
let page = 1;
let player = null;
let heartbeat = null;

function show(section) {
  for (const s of ['auth', 'browse', 'detail']) $(s).hidden = s !== section;
}
function message(text) {
  $('message').textContent = text || '';
  $('message').hidden = !text;
}
function setAuth(a) {
  auth = a;
  if (a) sessionStorage.setItem('reel-auth', JSON.stringify(a));
  else sessionStorage.removeItem('reel-auth');
  $('who').textContent = a ? `${a.account.email} · ${a.account.plan}` : '';
  $('signout').hidden = !a;
}

async function api(method, path, body, retried) {
  const headers = { 'content-type': 'application/json' };
  if (auth) headers.authorization = 'Bearer ' + auth.access_token;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401 && auth && !retried && !path.startsWith('/v1/auth/')) {
    // The access token expired: rotate the refresh token once and try again.
    const r = await fetch('/v1/auth/refresh', { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: auth.refresh_token }) });
    if (r.ok) { setAuth(await r.json()); return api(method, path, body, true); }
    setAuth(null); show('auth');
  }
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) {
    const err = new Error((data && data.message) || `${res.status} ${res.statusText}`);
    err.status = res.status; err.code = data && data.error;
    throw err;
  }
  return data;
}

function card(t) {
  const b = document.createElement('button');
  b.className = 'title';
  b.dataset.id = t.id;
  const pic = t.poster ? Object.assign(document.createElement('img'), { src: t.poster, alt: '' })
    : Object.assign(document.createElement('div'), { className: 'noposter' });
  const name = document.createElement('span');
  name.textContent = `${t.name}${t.year ? ' (' + t.year + ')' : ''}`;
  b.append(pic, name);
  b.onclick = () => openTitle(t.id);
  return b;
}

async function browse() {
  show('browse');
  const q = new URLSearchParams({ page, per_page: 24 });
  for (const f of ['q', 'genre', 'year']) if ($(f).value) q.set(f, $(f).value);
  try {
    const [list, cont] = await Promise.all([api('GET', '/v1/titles?' + q), api('GET', '/v1/me/continue-watching')]);
    $('titles').replaceChildren(...list.titles.map(card));
    $('continue').replaceChildren(...cont.titles.map(card));
    $('continue-heading').hidden = cont.titles.length === 0;
    const pages = Math.max(1, Math.ceil(list.total / list.per_page));
    $('page').textContent = `page ${list.page} of ${pages}`;
    $('prev').disabled = page <= 1;
    $('next').disabled = page >= pages;
  } catch (e) { message(e.message); }
}

async function openTitle(id) {
  await stopPlayback();
  message('');
  try {
    const t = await api('GET', '/v1/titles/' + encodeURIComponent(id));
    reel.title = t;
    $('detail-name').textContent = t.name;
    $('detail-meta').textContent = [t.year, t.maturity, t.genres.join(', '), `${Math.round(t.duration)} s`, `${t.min_height}p–${t.max_height}p`].filter(Boolean).join(' · ');
    $('detail-description').textContent = t.description;
    $('player').hidden = true;
    show('detail');
    const sim = await api('GET', `/v1/titles/${encodeURIComponent(id)}/similar`);
    $('similar').replaceChildren(...sim.titles.map(card));
  } catch (e) { message(e.message); }
}

function event(kind, detail) {
  if (!reel.session) return;
  const video = $('video');
  api('POST', `/v1/playback/sessions/${reel.session}/events`, { kind, position: video.currentTime || 0, detail: detail || {} })
    .catch(() => {});
}

function showStats() {
  if (!player) return;
  const v = player.getVariantTracks().find((t) => t.active);
  const video = $('video');
  const stats = player.getStats();
  const text = v ? `${video.videoHeight || v.height}p · ${Math.round(v.bandwidth / 1000)} kb/s · ${v.videoCodec || ''}` : '—';
  $('stats').textContent = `${text} · estimated ${Math.round((stats.estimatedBandwidth || 0) / 1000)} kb/s`;
  if (video.videoHeight && reel.heights[reel.heights.length - 1] !== video.videoHeight) reel.heights.push(video.videoHeight);
}

// The title's audio tracks (the package names each by language and role) as a menu.
function showAudioChoices() {
  const menu = $('audio');
  const tracks = player.getAudioTracks();
  menu.replaceChildren(...tracks.map((t, i) => {
    const o = document.createElement('option');
    o.value = String(i);
    o.textContent = t.label || t.language;
    o.lang = t.language;
    o.selected = t.active;
    return o;
  }));
  menu.onchange = () => {
    const t = tracks[Number(menu.value)];
    if (t) player.selectAudioTrack(t);
    event('audio', { language: t ? t.language : null, role: t ? (t.roles || [])[0] || null : null });
  };
}

// The title's text tracks (language, kind, name) as a menu; Off hides text.
function showSubtitleChoices() {
  const menu = $('subtitles');
  const tracks = player.getTextTracks();
  // The package names each track (language, kind); a track without a name shows its language.
  const label = (t) => t.label || t.language + (t.kind === 'caption' ? ' (captions)' : '') + (t.forced ? ' (forced)' : '');
  const off = document.createElement('option');
  off.value = '';
  off.textContent = 'Off';
  menu.replaceChildren(off, ...tracks.map((t) => {
    const o = document.createElement('option');
    o.value = String(t.id);
    o.textContent = label(t);
    o.lang = t.language;
    return o;
  }));
  menu.onchange = () => {
    const t = tracks.find((x) => String(x.id) === menu.value);
    const displayer = player.getTextDisplayer && player.getTextDisplayer();
    if (t) player.selectTextTrack(t);
    if (displayer) displayer.setTextVisibility(Boolean(t));
    event('subtitles', { language: t ? t.language : null });
  };
}

// Scrubbing: dragging the seek bar shows the thumbnail of the time under it (shaka-player reads
// the title's thumbnail track from the manifest: a tile of a JPEG sprite); letting go seeks.
async function showPreview(time) {
  const preview = $('preview');
  const t = player ? await player.getThumbnails(null, time).catch(() => null) : null;
  if (!t || !t.uris.length) {
    preview.hidden = true;
    return;
  }
  preview.style.width = t.width + 'px';
  preview.style.height = t.height + 'px';
  preview.style.backgroundImage = `url("${t.uris[0]}")`;
  preview.style.backgroundPosition = `-${t.positionX}px -${t.positionY}px`;
  preview.dataset.start = String(t.startTime);
  preview.hidden = false;
}

function setUpScrubbing(video) {
  const seek = $('seek');
  let dragging = false;
  seek.max = String(video.duration || 0);
  video.ondurationchange = () => { seek.max = String(video.duration || 0); };
  video.ontimeupdate = () => { if (!dragging) seek.value = String(video.currentTime); };
  seek.oninput = () => { dragging = true; showPreview(Number(seek.value)); };
  seek.onchange = () => {
    dragging = false;
    video.currentTime = Number(seek.value);
    $('preview').hidden = true;
    event('seek', { position: video.currentTime });
  };
}

async function play() {
  message('');
  const t = reel.title;
  let grant;
  try {
    grant = await api('POST', '/v1/playback/' + encodeURIComponent(t.id), { device: 'web-' + (sessionStorage.getItem('reel-device') || newDevice()) });
  } catch (e) {
    reel.errors.push(e.code || 'error');
    message(e.message);
    return;
  }
  reel.session = grant.session;
  reel.ended = false;
  $('player').hidden = false;
  const video = $('video');
  shaka.polyfill.installAll();
  player = new shaka.Player();
  await player.attach(video);
  player.configure({
    drm: { servers: { 'org.w3.clearkey': new URL(grant.licence, location.href).href } },
    restrictions: { maxHeight: grant.max_height },
  });
  player.addEventListener('error', (e) => { reel.errors.push('shaka ' + e.detail.code); message('Playback error ' + e.detail.code); event('error', { code: e.detail.code }); });
  player.addEventListener('variantchanged', () => { showStats(); const v = player.getVariantTracks().find((x) => x.active); event('switch', v ? { height: v.height, bandwidth: v.bandwidth } : {}); });
  player.addEventListener('adaptation', showStats);
  player.addEventListener('buffering', (e) => { if (e.buffering && video.currentTime > 0) event('rebuffer'); });
  video.onresize = showStats;
  video.onended = async () => {
    reel.ended = true;
    event('ended');
    await stopPlayback();
  };
  try {
    await player.load(new URL(grant.dash, location.href).href);
    showAudioChoices();
    showSubtitleChoices();
    setUpScrubbing(video);
    reel.playing = t.id;
    event('start');
    showStats();
    heartbeat = setInterval(() => {
      api('POST', `/v1/playback/sessions/${reel.session}/heartbeat`, { position: video.currentTime }).catch(() => {});
      showStats();
    }, grant.heartbeat_interval * 1000);
    await video.play().catch((e) => reel.errors.push('play(): ' + e.message));
  } catch (e) {
    reel.errors.push('load ' + (e.code || e.message));
    message('Could not play this title (' + (e.code || e.message) + ')');
  }
}

function newDevice() {
  const d = Math.random().toString(36).slice(2);
  sessionStorage.setItem('reel-device', d);
  return d;
}

async function stopPlayback() {
  clearInterval(heartbeat);
  heartbeat = null;
  const session = reel.session;
  const position = $('video').currentTime || 0;
  if (player) { const p = player; player = null; await p.destroy().catch(() => {}); }
  if (session) {
    reel.session = null;
    await api('POST', `/v1/playback/sessions/${session}/stop`, { position }).catch(() => {});
  }
}

$('auth-form').onsubmit = async (ev) => {
  ev.preventDefault();
  message('');
  try {
    setAuth(await api('POST', '/v1/auth/signin', { email: $('email').value, password: $('password').value }));
    page = 1;
    browse();
  } catch (e) { message(e.message); }
};
$('signup').onclick = async () => {
  message('');
  try {
    await api('POST', '/v1/auth/signup', { email: $('email').value, password: $('password').value });
    message('Account created: sign in.');
  } catch (e) { message(e.message); }
};
$('signout').onclick = async () => {
  await stopPlayback();
  if (auth) await api('POST', '/v1/auth/signout', { refresh_token: auth.refresh_token }).catch(() => {});
  setAuth(null);
  message('');
  show('auth');
};
$('search').onsubmit = (ev) => { ev.preventDefault(); page = 1; browse(); };
$('prev').onclick = () => { page -= 1; browse(); };
$('next').onclick = () => { page += 1; browse(); };
$('back').onclick = async () => { await stopPlayback(); browse(); };
$('play').onclick = play;

(async () => {
  const plans = await fetch('/v1/plans').then((r) => r.json()).catch(() => ({ plans: [] }));
  const basic = plans.plans.find((p) => p.id === 'basic');
  if (basic) $('default-plan').textContent = `${basic.name} (up to ${basic.max_height}p)`;
  setAuth(auth);
  if (auth) browse(); else show('auth');
})();
