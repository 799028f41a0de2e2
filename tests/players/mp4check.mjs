// Parses MP4 files with mp4box.js (a JavaScript port of GPAC's MP4Box), an MP4 parser
// independent of Reel, and prints one JSON line per file: top-level boxes, the track codecs
// it found, and any parse error.
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
  console.log(JSON.stringify({ file, boxes: [...new Set(boxes)], codecs, fragments, errors }));
  failed ||= errors.length > 0;
}
process.exit(failed ? 1 : 0);
