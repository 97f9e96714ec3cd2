// Framehouse web UI, the upload page: files and folders by drop or picker, each sent by
// tus-js-client (resumable, retried, resumed after a reload from its stored fingerprint),
// then followed on the event stream until the item is ready or failed.
"use strict";
(function () {
  const root = document.getElementById("uploader");
  if (!root || !window.tus) return;
  const csrf = window.framehouse.csrf;
  const maxBytes = Number(root.dataset.maxBytes);
  const chunkSize = Number(root.dataset.chunkBytes);
  const queue = document.getElementById("queue");
  const visibility = document.getElementById("upload-visibility");
  const PARALLEL = 3;
  const rows = []; // every file of this visit
  const byMedia = new Map(); // media id -> row

  // Live processing status. Opened before any upload starts, so no event is missed; a
  // dropped stream reconnects by itself (EventSource), resuming after the last id.
  const events = new EventSource("/api/v1/events/stream?types=media.ready,media.failed,media.deleted");
  const onEvent = (status) => (e) => {
    const row = byMedia.get(JSON.parse(e.data).aggregate_id);
    if (row) settle(row, status);
  };
  events.addEventListener("media.ready", onEvent("ready"));
  events.addEventListener("media.failed", onEvent("failed"));
  events.addEventListener("media.deleted", onEvent("deleted"));
  window.addEventListener("beforeunload", () => events.close());

  // Uploads a previous visit left unfinished, named from tus-js-client's storage.
  window.tus.defaultOptions.urlStorage?.findAllUploads?.().then((stored) => {
    const names = stored.map((u) => u.metadata?.filename).filter(Boolean);
    if (!names.length) return;
    const note = document.getElementById("unfinished");
    note.hidden = false;
    note.textContent = `${names.length} unfinished upload${names.length > 1 ? "s" : ""} (${names.slice(0, 5).join(", ")}${names.length > 5 ? ", …" : ""}): choose the same files again and they continue where they stopped.`;
  }).catch(() => {});

  const pick = (input) => input.addEventListener("change", () => {
    add([...input.files]);
    input.value = "";
  });
  pick(document.getElementById("files"));
  pick(document.getElementById("folder"));

  const drop = document.getElementById("drop");
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault();
    drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    const entries = [...(e.dataTransfer.items || [])].map((i) => i.webkitGetAsEntry?.()).filter(Boolean);
    if (!entries.length) return add([...e.dataTransfer.files]);
    const files = [];
    for (const entry of entries) await walk(entry, files);
    add(files);
  });

  // The files of a dropped entry, folders read recursively.
  async function walk(entry, out) {
    if (entry.isFile) {
      out.push(await new Promise((ok, bad) => entry.file(ok, bad)));
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((ok, bad) => reader.readEntries(ok, bad));
        if (!batch.length) break;
        for (const child of batch) await walk(child, out);
      }
    }
  }

  function add(files) {
    // Untyped files may be media the browser cannot name (HEIC, MKV); the server decides.
    // Folder litter is skipped.
    const junk = /(^|\/)(\.DS_Store|Thumbs\.db|desktop\.ini|\._[^/]*)$/i;
    const media = files.filter((f) => (/^(image|video|audio)\//.test(f.type) || !f.type)
      && !junk.test(f.webkitRelativePath || f.name));
    for (const file of media) {
      const row = view(file);
      rows.push(row);
      if (file.size > maxBytes) {
        status(row, `Too large: the limit is ${human(maxBytes)}`, "failed");
        row.done = true;
        continue;
      }
      row.upload = new window.tus.Upload(file, {
        endpoint: "/api/v1/uploads",
        chunkSize,
        retryDelays: [0, 1000, 2000, 4000, 8000, 15000, 30000],
        headers: { "X-CSRF-Token": csrf },
        metadata: {
          filename: file.webkitRelativePath || file.name,
          filetype: file.type || "application/octet-stream",
          visibility: visibility.value,
        },
        storeFingerprintForResuming: true,
        removeFingerprintOnSuccess: true,
        onProgress: (sent, total) => progress(row, sent, total),
        onAfterResponse: (_req, res) => {
          const mediaId = res.getHeader("Framehouse-Media-Id");
          if (mediaId) row.mediaId = mediaId;
        },
        onSuccess: () => uploaded(row),
        onError: (err) => {
          row.running = false;
          row.failed = true;
          status(row, `Stopped: ${message(err)}`, "failed");
          row.retry.hidden = false;
          row.pause.hidden = true;
          next();
        },
      });
    }
    document.getElementById("total-wrap").hidden = rows.length === 0;
    next();
    total();
  }

  // Starts waiting uploads while fewer than PARALLEL run.
  function next() {
    for (const row of rows) {
      if (rows.filter((r) => r.running).length >= PARALLEL) return;
      if (row.done || row.running || row.paused || row.failed || !row.upload) continue;
      start(row);
    }
  }

  async function start(row) {
    const generation = (row.generation = (row.generation || 0) + 1);
    row.running = true;
    row.failed = false;
    status(row, "Uploading", "uploading");
    row.pause.hidden = false;
    row.resume.hidden = true;
    row.retry.hidden = true;
    try {
      const previous = await row.upload.findPreviousUploads();
      if (previous.length) {
        row.upload.resumeFromPreviousUpload(previous[0]);
        status(row, "Resuming", "uploading");
      }
    } catch (e) { /* no stored state: a fresh upload */ }
    // Paused (or started again) while the stored state was read: this start is void.
    if (row.paused || row.generation !== generation) return;
    row.upload.start();
  }

  function pause(row, quiet) {
    if (!row.upload || row.done) return;
    row.paused = true;
    row.running = false;
    row.generation = (row.generation || 0) + 1;
    row.upload.abort();
    status(row, "Paused", "paused");
    row.pause.hidden = true;
    row.resume.hidden = false;
    if (!quiet) next();
  }

  function resume(row) {
    if (row.done) return;
    row.paused = false;
    row.resume.hidden = true;
    if (rows.filter((r) => r.running).length < PARALLEL) start(row);
    else status(row, "Waiting", "waiting");
  }

  async function uploaded(row) {
    row.running = false;
    row.done = true;
    row.pause.hidden = true;
    progress(row, row.file.size, row.file.size);
    next();
    if (!row.mediaId) {
      status(row, "Uploaded", "processing");
      return;
    }
    byMedia.set(row.mediaId, row);
    row.link.href = `/items/${row.mediaId}`;
    row.link.hidden = false;
    if (!row.settled) status(row, "Processing", "processing");
    // It may have become ready before its id was known here (the same bytes uploaded
    // before): ask once.
    try {
      const item = await window.framehouse.api("GET", `/api/v1/media/${row.mediaId}`);
      if (item.status === "ready" || item.status === "failed") settle(row, item.status);
    } catch (e) { /* the stream will tell */ }
  }

  function settle(row, state) {
    row.settled = true;
    const words = { ready: "Ready", failed: "Processing failed", deleted: "Deleted" };
    status(row, words[state] || state, state);
  }

  function progress(row, sent, size) {
    row.sent = sent;
    const pct = size ? Math.floor((sent / size) * 100) : 100;
    row.bar.value = pct;
    row.pct.textContent = `${pct} %`;
    total();
  }

  function total() {
    // Files refused before sending (too large) do not count.
    const counted = rows.filter((r) => r.upload);
    const size = counted.reduce((n, r) => n + r.file.size, 0);
    const sent = counted.reduce((n, r) => n + Math.min(r.sent, r.file.size), 0);
    const pct = size ? Math.floor((sent / size) * 100) : 0;
    document.getElementById("total").value = pct;
    const done = counted.filter((r) => r.done).length;
    document.getElementById("total-text").textContent = `${pct} % · ${done} of ${counted.length} files · ${human(sent)} of ${human(size)}`;
  }

  function status(row, text, state) {
    row.status.textContent = text;
    row.li.dataset.state = state;
  }

  function view(file) {
    const li = document.createElement("li");
    li.className = "upload";
    li.innerHTML = `<span class="name"></span><span class="size"></span>
      <progress max="100" value="0"></progress><span class="pct">0 %</span>
      <span class="state" role="status"></span>
      <span class="actions"><button type="button" class="secondary pause">Pause</button>
      <button type="button" class="secondary resume" hidden>Resume</button>
      <button type="button" class="secondary retry" hidden>Retry</button>
      <a class="open" hidden>Open</a></span>`;
    const name = file.webkitRelativePath || file.name;
    li.querySelector(".name").textContent = name;
    li.querySelector(".size").textContent = human(file.size);
    const bar = li.querySelector("progress");
    bar.setAttribute("aria-label", `Upload of ${name}`);
    const row = {
      file, li, bar, sent: 0,
      pct: li.querySelector(".pct"),
      status: li.querySelector(".state"),
      pause: li.querySelector(".pause"),
      resume: li.querySelector(".resume"),
      retry: li.querySelector(".retry"),
      link: li.querySelector(".open"),
    };
    row.pause.addEventListener("click", () => pause(row));
    row.resume.addEventListener("click", () => resume(row));
    row.retry.addEventListener("click", () => {
      row.failed = false;
      row.retry.hidden = true;
      status(row, "Waiting", "waiting");
      next();
    });
    row.link.textContent = `Open ${name}`;
    status(row, "Waiting", "waiting");
    queue.append(li);
    return row;
  }

  document.getElementById("pause-all").addEventListener("click", () => {
    rows.forEach((r) => pause(r, true));
    document.getElementById("pause-all").hidden = true;
    document.getElementById("resume-all").hidden = false;
  });
  document.getElementById("resume-all").addEventListener("click", () => {
    rows.filter((r) => r.paused).forEach((r) => { r.paused = false; r.resume.hidden = true; status(r, "Waiting", "waiting"); });
    document.getElementById("pause-all").hidden = false;
    document.getElementById("resume-all").hidden = true;
    next();
  });
  // Back online: uploads that gave up try again at once.
  window.addEventListener("online", () => {
    rows.filter((r) => r.failed && !r.done).forEach((r) => { r.failed = false; r.retry.hidden = true; });
    next();
  });

  function message(err) {
    const body = err?.originalResponse?.getBody?.();
    try {
      const parsed = JSON.parse(body);
      if (parsed?.error?.message) return parsed.error.message;
    } catch (e) { /* not JSON */ }
    return navigator.onLine ? "the connection to the server failed" : "offline";
  }

  function human(n) {
    if (n >= 1e9) return `${(n / 1e9).toFixed(1)} GB`;
    if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
    if (n >= 1e3) return `${Math.round(n / 1e3)} kB`;
    return `${n} B`;
  }
})();
