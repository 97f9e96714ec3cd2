// Framehouse web UI, the item page (and the embed page): zoom for images; for video
// hls.js (or the browser's own HLS) with quality choice, storyboard previews on a seek
// bar and resume with position heartbeats; for audio a drawn waveform; for the owner
// the edit, share, delete and transform-playground panels, all through the JSON API.
"use strict";
(function () {
  const root = document.getElementById("item");
  if (!root) return;
  const id = root.dataset.id;
  const token = root.dataset.token;
  const signedIn = root.dataset.signedIn === "true";
  const api = (...args) => window.framehouse.api(...args);
  const say = (el, text, bad) => {
    if (!el) return;
    el.textContent = text;
    el.classList.toggle("bad", !!bad);
  };

  // --- Image zoom: full size in a scrollable frame, toggled by the button or Escape.
  const zoom = document.getElementById("zoom");
  const image = document.getElementById("image");
  const viewer = document.getElementById("viewer");
  if (zoom && image && viewer) {
    const fitted = { src: image.src, srcset: image.srcset };
    const set = (on) => {
      zoom.setAttribute("aria-pressed", String(on));
      zoom.textContent = on ? "Fit to screen" : "Zoom to full size";
      viewer.classList.toggle("zoomed", on);
      if (on) {
        image.srcset = "";
        image.src = zoom.dataset.full;
        viewer.tabIndex = 0;
      } else {
        image.srcset = fitted.srcset;
        image.src = fitted.src;
        viewer.removeAttribute("tabindex");
      }
    };
    zoom.addEventListener("click", () => set(zoom.getAttribute("aria-pressed") !== "true"));
    image.addEventListener("click", () => set(zoom.getAttribute("aria-pressed") !== "true"));
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && viewer.classList.contains("zoomed")) set(false);
    });
  }

  // --- Players: resume and heartbeats are the same for video and audio.
  const player = document.getElementById("player");
  if (player) {
    const params = new URLSearchParams(location.search);
    const startAt = parseFloat(params.get("t") || "");
    const note = document.getElementById("resume-note");
    let lastSent = -1;
    const beat = () => {
      const position = Math.round(player.currentTime * 10) / 10;
      if (position === lastSent || !isFinite(position)) return;
      lastSent = position;
      api("POST", `/api/v1/media/${id}/playback`, { position }).catch(() => {});
    };
    // A share link's visitor has no position to keep and the API would not know the item.
    if (!token) {
      setInterval(() => { if (!player.paused) beat(); }, 5000);
      player.addEventListener("pause", beat);
      player.addEventListener("seeked", beat);
      player.addEventListener("ended", beat);
    }
    const resume = (position) => {
      const go = () => { player.currentTime = position; };
      if (player.readyState >= 1) go(); else player.addEventListener("loadedmetadata", go, { once: true });
    };
    if (isFinite(startAt) && startAt > 0) {
      resume(startAt);
    } else if (signedIn && !token) {
      api("GET", `/api/v1/media/${id}/playback`).then((state) => {
        if (state && state.position > 0) {
          resume(state.position);
          const m = Math.floor(state.position / 60), s = Math.floor(state.position % 60);
          say(note, `Resuming at ${m}:${String(s).padStart(2, "0")}`);
          player.dataset.resumedAt = String(state.position);
        }
      }).catch(() => {});
    }
    if (params.get("autoplay") === "1") {
      player.muted = true;
      player.autoplay = true;
    }
  }

  const video = player && player.tagName === "VIDEO" ? player : null;
  if (video) {
    const src = video.dataset.hls;
    const quality = document.getElementById("quality");
    if (window.Hls && window.Hls.isSupported()) {
      const hls = new window.Hls({ capLevelToPlayerSize: true });
      window.framehouse.hls = hls;
      hls.loadSource(src);
      hls.attachMedia(video);
      hls.on(window.Hls.Events.MANIFEST_PARSED, (_e, data) => {
        if (!quality) return;
        data.levels.forEach((level, i) => {
          const opt = document.createElement("option");
          opt.value = String(i);
          opt.textContent = `${level.height}p`;
          quality.append(opt);
        });
        quality.disabled = data.levels.length === 0;
      });
      quality?.addEventListener("change", () => { hls.currentLevel = parseInt(quality.value, 10); });
      // A few recoveries from fatal errors, then give up (an expired link, a deleted item).
      let recoveries = 0;
      hls.on(window.Hls.Events.ERROR, (_e, data) => {
        if (!data.fatal) return;
        if (recoveries++ >= 3) {
          hls.destroy();
          say(document.getElementById("resume-note"), "This video cannot be played now; reload the page to try again.", true);
        } else if (data.type === window.Hls.ErrorTypes.NETWORK_ERROR) hls.startLoad();
        else if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
        else hls.destroy();
      });
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = src; // Safari plays HLS itself and picks the quality.
    } else {
      video.src = video.dataset.progressive;
    }
    storyboard(video);
  }

  // A seek bar under the video whose hover shows the storyboard tile for that moment.
  async function storyboard(video) {
    const wrap = document.getElementById("seek-wrap");
    const seek = document.getElementById("seek");
    const preview = document.getElementById("preview");
    if (!wrap || !seek) return;
    wrap.hidden = false;
    video.addEventListener("timeupdate", () => { if (!seek.matches(":active")) seek.value = String(video.currentTime); });
    video.addEventListener("durationchange", () => { if (isFinite(video.duration)) seek.max = String(video.duration); });
    seek.addEventListener("input", () => { video.currentTime = parseFloat(seek.value); });
    const url = video.dataset.storyboard;
    if (!url || !preview) return;
    let cues = [];
    try {
      const res = await fetch(url);
      if (!res.ok) return;
      cues = parseVtt(await res.text(), new URL(url, location.href));
    } catch (e) {
      return;
    }
    if (!cues.length) return;
    const tile = preview.querySelector("span");
    const show = (time, x) => {
      const cue = cues.find((c) => time >= c.start && time < c.end) || cues[cues.length - 1];
      tile.style.width = `${cue.w}px`;
      tile.style.height = `${cue.h}px`;
      tile.style.backgroundImage = `url("${cue.src}")`;
      tile.style.backgroundPosition = `-${cue.x}px -${cue.y}px`;
      preview.style.left = `${Math.max(0, Math.min(x - cue.w / 2, seek.clientWidth - cue.w))}px`;
      preview.hidden = false;
    };
    seek.addEventListener("pointermove", (e) => {
      const rect = seek.getBoundingClientRect();
      const frac = Math.min(1, Math.max(0, (e.clientX - rect.left) / rect.width));
      show(frac * parseFloat(seek.max || "0"), e.clientX - rect.left);
    });
    seek.addEventListener("pointerleave", () => { preview.hidden = true; });
    seek.addEventListener("input", () => {
      const frac = parseFloat(seek.value) / parseFloat(seek.max || "1");
      show(parseFloat(seek.value), frac * seek.clientWidth);
    });
    seek.addEventListener("blur", () => { preview.hidden = true; });
  }

  // WebVTT thumbnail cues: `start --> end` then `sprite.jpg#xywh=x,y,w,h`.
  function parseVtt(text, base) {
    const time = (t) => t.split(":").reduce((acc, part) => acc * 60 + parseFloat(part), 0);
    const out = [];
    const lines = text.split(/\r?\n/);
    for (let i = 0; i < lines.length; i++) {
      const m = lines[i].match(/^([\d:.]+)\s+-->\s+([\d:.]+)/);
      if (!m || !lines[i + 1]) continue;
      const target = new URL(lines[i + 1].trim(), base);
      const xywh = (target.hash.match(/xywh=(\d+),(\d+),(\d+),(\d+)/) || []).slice(1).map(Number);
      if (xywh.length !== 4) continue;
      target.hash = "";
      out.push({ start: time(m[1]), end: time(m[2]), src: target.href, x: xywh[0], y: xywh[1], w: xywh[2], h: xywh[3] });
    }
    return out;
  }

  // --- Audio: the waveform, drawn from the decoded file; a click seeks.
  const canvas = document.getElementById("waveform");
  if (canvas && player) {
    waveform(canvas, player).catch((e) => console.warn("waveform", e));
  }
  async function waveform(canvas, audio) {
    const ctx = canvas.getContext("2d");
    const res = await fetch(audio.dataset.progressive);
    const size = Number(res.headers.get("content-length") || "0");
    if (!res.ok || size > 64 * 1024 * 1024) return;
    const buffer = await res.arrayBuffer();
    const decoded = await new (window.AudioContext || window.webkitAudioContext)().decodeAudioData(buffer);
    const data = decoded.getChannelData(0);
    const bars = canvas.width / 3;
    const step = Math.max(1, Math.floor(data.length / bars));
    const peaks = [];
    for (let i = 0; i < bars; i++) {
      let peak = 0;
      for (let j = i * step; j < Math.min(data.length, (i + 1) * step); j++) peak = Math.max(peak, Math.abs(data[j]));
      peaks.push(peak);
    }
    const color = getComputedStyle(canvas).color;
    const accent = getComputedStyle(document.documentElement).getPropertyValue("--accent") || color;
    const draw = () => {
      const played = audio.duration ? audio.currentTime / audio.duration : 0;
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      peaks.forEach((p, i) => {
        const h = Math.max(2, p * canvas.height);
        ctx.fillStyle = i / peaks.length < played ? accent : color;
        ctx.fillRect(i * 3, (canvas.height - h) / 2, 2, h);
      });
    };
    draw();
    canvas.dataset.drawn = String(peaks.length);
    audio.addEventListener("timeupdate", draw);
    canvas.addEventListener("click", (e) => {
      const rect = canvas.getBoundingClientRect();
      if (audio.duration) audio.currentTime = ((e.clientX - rect.left) / rect.width) * audio.duration;
    });
  }

  // --- Owner panels.
  const edit = document.getElementById("edit");
  edit?.addEventListener("submit", async (e) => {
    e.preventDefault();
    const status = document.getElementById("edit-status");
    const tags = edit.tags.value.split(",").map((t) => t.trim()).filter(Boolean);
    try {
      const item = await api("PATCH", `/api/v1/media/${id}`, {
        title: edit.title.value, description: edit.description.value, tags, visibility: edit.visibility.value,
      });
      document.getElementById("item-title").textContent = item.title || `Untitled ${item.kind}`;
      const badge = document.getElementById("visibility-badge");
      badge.textContent = item.visibility;
      badge.className = `badge vis-${item.visibility}`;
      say(status, "Saved.");
    } catch (err) {
      say(status, err.message, true);
    }
  });

  const share = document.getElementById("share");
  share?.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const ttl = parseInt(document.getElementById("share-ttl").value, 10);
      const link = await api("POST", `/api/v1/media/${id}/share-link`, { ttl_secs: ttl });
      document.getElementById("share-out").hidden = false;
      const input = document.getElementById("share-url");
      input.value = link.url;
      input.select();
      say(document.getElementById("share-expiry"), `Opens the item to anyone with the link until ${new Date(link.expires_at).toLocaleString()}.`);
      document.getElementById("embed-code").value =
        `<iframe src="${link.embed_url}" width="640" height="360" allow="autoplay; fullscreen" allowfullscreen></iframe>`;
    } catch (err) {
      say(document.getElementById("share-expiry"), err.message, true);
      document.getElementById("share-out").hidden = false;
    }
  });
  document.getElementById("share-copy")?.addEventListener("click", async () => {
    const input = document.getElementById("share-url");
    try {
      await navigator.clipboard.writeText(input.value);
      say(document.getElementById("share-expiry"), "Copied.");
    } catch (e) {
      input.select();
      document.execCommand?.("copy");
    }
  });

  document.getElementById("delete")?.addEventListener("click", async () => {
    if (!confirm("Delete this item for good? Its renditions and streams go with it.")) return;
    try {
      await api("DELETE", `/api/v1/media/${id}`);
      location.assign("/library");
    } catch (err) {
      say(document.getElementById("manage-status"), err.message, true);
    }
  });

  const playground = document.getElementById("playground");
  if (playground) {
    const field = (name) => document.getElementById(`pg-${name}`);
    const options = () => {
      const ops = [];
      if (field("w").value) ops.push(`w_${parseInt(field("w").value, 10)}`);
      if (field("h").value) ops.push(`h_${parseInt(field("h").value, 10)}`);
      ops.push(`fit_${field("fit").value}`);
      if (field("q").value) ops.push(`q_${parseInt(field("q").value, 10)}`);
      return ops.join(",");
    };
    const build = () => `/img/${id}/${options()}.${field("format").value}`;
    const show = async (e) => {
      e?.preventDefault();
      let url = build();
      // A deployment that requires signed transform URLs answers 403: sign it then.
      const probe = await fetch(url, { method: "HEAD" }).catch(() => null);
      if (probe && probe.status === 403) {
        try {
          const signed = await api("POST", `/api/v1/media/${id}/signed-url`, { ops: options(), format: field("format").value });
          url = signed.url;
        } catch (err) { /* show the unsigned URL and its refusal */ }
      }
      field("url").value = new URL(url, location.href).href;
      const img = field("img");
      img.hidden = false;
      img.src = url;
    };
    playground.addEventListener("submit", show);
    playground.addEventListener("change", () => { field("url").value = new URL(build(), location.href).href; });
    field("url").value = new URL(build(), location.href).href;
  }
})();
