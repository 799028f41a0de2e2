// Parses MP4 files with mp4box.js (a JavaScript port of GPAC's MP4Box), an MP4 parser
// independent of Reel, and prints one JSON line per file: top-level boxes, the track codecs
// it found, every box type at any depth, the encryption boxes' fields (`tenc`, `schm`, `pssh`
// system IDs, `senc` sample counts), and any parse error.
//
//   node mp4check.mjs FILE...
import fs from 'node:fs';
import { createFile, MP4BoxBuffer, Log } from 'mp4box';

Log.setLogLevel(Log.error);
let failed = false;
for (const file of process.argv.slice(2)) {
  const errors = [];
  const origError = Log.error;
  Log.error = (module, msg) => errors.push(`${module}: ${msg}`);
  const bytes = fs.readFileSync(file);
  const mp4 = createFile();
  mp4.onError = (module, msg) => errors.push(`${module}: ${msg}`);
  let info = null;
  mp4.onReady = (i) => { info = i; };
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  try {
    mp4.appendBuffer(MP4BoxBuffer.fromArrayBuffer(ab, 0));
    mp4.flush();
  } catch (e) {
    errors.push('exception: ' + e.message);
  }
  Log.error = origError;
  const boxes = mp4.boxes.map((b) => b.type);
  const parsed = mp4.boxes.reduce((n, b) => n + (b.size || 0), 0);
  if (parsed !== bytes.length) errors.push(`boxes cover ${parsed} of ${bytes.length} bytes`);
  const codecs = info ? info.tracks.map((t) => t.codec) : [];
  const fragments = mp4.boxes.filter((b) => b.type === 'moof').length;
  const all = new Set();
  const found = { tenc: [], schm: [], pssh: [], senc: [] };
  const hex = (a) => {
    if (a == null) return null;
    if (typeof a === 'string') return a.replace(/-/g, '').toLowerCase();
    return Array.from(a, (x) => x.toString(16).padStart(2, '0')).join('');
  };
  const seen = new Set();
  const walk = (b) => {
    if (seen.has(b)) return;
    seen.add(b);
    all.add(b.type);
    if (b.type === 'tenc') {
      found.tenc.push({
        version: b.version, kid: hex(b.default_KID), protected: b.default_isProtected,
        ivSize: b.default_Per_Sample_IV_Size, crypt: b.default_crypt_byte_block,
        skip: b.default_skip_byte_block, constantIvSize: b.default_constant_IV_size,
      });
    }
    if (b.type === 'schm') found.schm.push(b.scheme_type);
    if (b.type === 'pssh') found.pssh.push({ systemId: hex(b.system_id), kids: (b.kid || []).map(hex) });
    if (b.type === 'senc') found.senc.push(b.sample_count ?? null);
    for (const key of ['boxes', 'entries', 'traks', 'trafs', 'psshs']) {
      for (const c of b[key] || []) walk(c);
    }
  };
  mp4.boxes.forEach(walk);
  console.log(JSON.stringify({ file, boxes: [...new Set(boxes)], all: [...all], codecs, fragments, encryption: found, errors }));
  failed ||= errors.length > 0;
}
process.exit(failed ? 1 : 0);
