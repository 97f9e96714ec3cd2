// Uploads one file with the official tus-js-client, unmodified, as an application would:
// node upload.mjs ENDPOINT TOKEN PATH CHUNK_BYTES PARALLEL
// Prints "progress N" as the percentage sent grows and "done MEDIA_ID" at the end (the id
// from the last answer's Framehouse-Media-Id header); exits 1 on failure.
import fs from 'node:fs';
import path from 'node:path';
import * as tus from 'tus-js-client';

const [endpoint, token, file, chunk, parallel] = process.argv.slice(2);
let media = null;
let shown = -1;
const upload = new tus.Upload(fs.createReadStream(file), {
  endpoint,
  chunkSize: Number(chunk),
  parallelUploads: Number(parallel),
  // A path-backed stream knows its size; tus-js-client refuses the option when parallel.
  ...(Number(parallel) > 1 ? {} : { uploadSize: fs.statSync(file).size }),
  headers: { Authorization: `Bearer ${token}` },
  metadata: { filename: path.basename(file), filetype: 'image/bmp' },
  // The test kills the server: keep retrying while it comes back.
  retryDelays: Array(120).fill(500),
  onProgress(sent, total) {
    const pct = Math.floor((sent * 100) / total);
    if (pct !== shown) {
      shown = pct;
      console.log(`progress ${pct}`);
    }
  },
  onAfterResponse(_req, res) {
    const id = res.getHeader('Framehouse-Media-Id');
    if (id) media = id;
  },
  onSuccess() {
    console.log(`done ${media}`);
    process.exit(media ? 0 : 3);
  },
  onError(err) {
    console.error(`failed: ${err}`);
    process.exit(1);
  },
});
upload.start();
