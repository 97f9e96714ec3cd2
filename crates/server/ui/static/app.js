// Framehouse web UI, every page: the CSRF token for script requests, and the library's
// infinite scroll (the "More" link keeps working without this file) and bulk actions on
// the selected cards.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

  // fetch() for the JSON API with the session cookie and the CSRF token; resolves to the
  // parsed body, rejects with the API's own message.
  async function api(method, url, body) {
    const init = { method, headers: { "X-CSRF-Token": csrf, Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(url, init);
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) {
      const err = new Error(data?.error?.message || `${res.status} ${res.statusText}`);
      err.status = res.status;
      err.code = data?.error?.code;
      throw err;
    }
    return data;
  }

  // An element with attributes and children (strings become text nodes, never HTML).
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    node.append(...children.filter((c) => c !== "" && c != null));
    return node;
  }

  // A timestamp as the reader's locale writes it.
  function when(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
  }

  // A page section whose actions show the API's message in its `[data-error]` and a
  // confirmation in its `[data-done]`; a button is disabled while its action runs.
  function section(id) {
    const root = document.getElementById(id);
    const error = root?.querySelector("[data-error]");
    const done = root?.querySelector("[data-done]");
    return {
      async run(action) {
        if (error) error.hidden = true;
        if (done) done.hidden = true;
        const button = document.activeElement instanceof HTMLButtonElement ? document.activeElement : null;
        if (button) button.disabled = true;
        try {
          await action();
        } catch (e) {
          if (error) {
            error.textContent = e.message;
            error.hidden = false;
          } else {
            console.warn(id, e);
          }
        } finally {
          if (button) button.disabled = false;
        }
      },
      done(message) {
        if (!done) return;
        if (message) done.textContent = message;
        done.hidden = false;
      },
    };
  }
  window.framehouse = { api, csrf, el, when, section };

  // The header's counts: unread notifications and messages, kept live by the event
  // stream, and announced to the page (`framehouse:event`) for views that follow it.
  const bell = document.getElementById("bell-count");
  const inbox = document.getElementById("inbox-count");
  if (bell) {
    const me = document.querySelector(".who .username")?.textContent || "";
    const show = (node, n) => {
      node.textContent = String(n);
      node.hidden = n <= 0;
      node.setAttribute("aria-label", `${n} unread`);
    };
    let unread = 0, messages = 0;
    const counts = async () => {
      try {
        unread = (await api("GET", "/api/v1/notifications?unread=true&limit=1")).unread;
        messages = (await api("GET", "/api/v1/conversations?limit=1")).unread;
        show(bell, unread);
        show(inbox, messages);
      } catch (e) {
        console.warn("counts", e);
      }
    };
    window.framehouse.recount = counts;
    counts().then(() => {
      if (!("EventSource" in window)) return;
      const stream = new EventSource("/api/v1/events/stream?types=notification.created,message.created");
      const relay = (e) => {
        let data = null;
        try { data = JSON.parse(e.data).data; } catch { return; }
        if (e.type === "notification.created") show(bell, ++unread);
        if (e.type === "message.created" && data?.sender?.username !== me) show(inbox, ++messages);
        document.dispatchEvent(new CustomEvent("framehouse:event", { detail: { type: e.type, data } }));
      };
      // (Re)connected: what happened before the stream started counts too.
      stream.addEventListener("open", counts);
      stream.addEventListener("notification.created", relay);
      stream.addEventListener("message.created", relay);
      window.addEventListener("pagehide", () => stream.close());
    });
  }

  // "Copy" buttons: `data-copy` names the input whose value they copy.
  document.addEventListener("click", async (e) => {
    const button = e.target.closest?.("button[data-copy]");
    if (!button) return;
    const input = document.getElementById(button.dataset.copy);
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
      button.textContent = "Copied";
    } catch {
      document.execCommand?.("copy");
    }
  });

  // Library: each card's ThumbHash painted under its image until the image arrives, so
  // the grid shows the pictures' colours at once (thumbhash.js, loaded on first use).
  const grid = document.getElementById("grid");
  async function paint(root) {
    const cards = [...root.querySelectorAll("[data-thumbhash]:not([data-painted])")];
    if (!cards.length || !grid?.dataset.thumbhashJs) return;
    try {
      const { thumbHashToDataURL } = await import(grid.dataset.thumbhashJs);
      for (const el of cards) {
        el.dataset.painted = "1";
        const bytes = Uint8Array.from(atob(el.dataset.thumbhash), (c) => c.charCodeAt(0));
        el.style.backgroundImage = `url(${thumbHashToDataURL(bytes)})`;
      }
    } catch (e) {
      console.warn("placeholders", e);
    }
  }
  if (grid) paint(grid);

  // Library: fetch the next page's cards when the "More" link nears the viewport.
  if (grid && "IntersectionObserver" in window) {
    let loading = false;
    const observer = new IntersectionObserver(async (entries) => {
      const more = grid.querySelector("a[data-more]");
      if (!more || loading || !entries.some((e) => e.isIntersecting)) return;
      loading = true;
      try {
        const url = new URL(more.href);
        url.searchParams.set("fragment", "1");
        const res = await fetch(url, { headers: { Accept: "text/html" } });
        if (!res.ok) throw new Error(res.statusText);
        const html = await res.text();
        more.closest("li").remove();
        grid.insertAdjacentHTML("beforeend", html);
        paint(grid);
        const next = grid.querySelector("li.more");
        if (next) observer.observe(next);
      } catch (e) {
        console.warn("loading more items failed", e);
      } finally {
        loading = false;
      }
    }, { rootMargin: "800px" });
    const first = grid.querySelector("li.more");
    if (first) observer.observe(first);
  }

  // Library: with cards selected, change their visibility or delete them, a few requests
  // at a time through the JSON API.
  const bulk = document.getElementById("bulk");
  if (grid && bulk) {
    const picked = () => [...grid.querySelectorAll('input[name="item"]:checked')];
    const status = document.getElementById("bulk-status");
    const refresh = () => {
      const n = picked().length;
      bulk.hidden = n === 0;
      document.getElementById("bulk-count").textContent = `${n} selected`;
      grid.querySelectorAll("li.card").forEach((li) => {
        li.classList.toggle("picked", !!li.querySelector('input[name="item"]:checked'));
      });
    };
    grid.addEventListener("change", (e) => { if (e.target.name === "item") refresh(); });
    document.getElementById("bulk-all").addEventListener("click", () => {
      grid.querySelectorAll('input[name="item"]').forEach((c) => { c.checked = true; });
      refresh();
    });
    document.getElementById("bulk-none").addEventListener("click", () => {
      picked().forEach((c) => { c.checked = false; });
      refresh();
    });
    // Runs `each` on every picked id, four at a time; reports how many failed.
    const run = async (verb, each) => {
      const ids = picked().map((c) => c.value);
      let failed = 0, done = 0;
      const queue = [...ids];
      const worker = async () => {
        while (queue.length) {
          const id = queue.shift();
          try { await each(id); } catch (e) { failed += 1; status.textContent = e.message; }
          done += 1;
          status.textContent = `${verb} ${done} of ${ids.length}…`;
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
      status.textContent = failed ? `${failed} of ${ids.length} could not be changed` : `${verb} ${ids.length}.`;
      refresh();
    };
    document.getElementById("bulk-apply").addEventListener("click", () => {
      const visibility = document.getElementById("bulk-visibility").value;
      run("Changed", async (id) => {
        await api("PATCH", `/api/v1/media/${id}`, { visibility });
        const badge = grid.querySelector(`li[data-id="${CSS.escape(id)}"] .badge[class*="vis-"]`);
        if (badge) { badge.textContent = visibility; badge.className = `badge vis-${visibility}`; }
      });
    });
    // Add the picked items to one of the caller's albums, in one request.
    const albumSelect = document.getElementById("bulk-album");
    api("GET", "/api/v1/albums?limit=200").then((page) => {
      for (const a of page.albums.filter((a) => a.role !== "viewer" && a.role !== "reader")) {
        albumSelect.append(el("option", { value: a.id }, a.title));
      }
    }).catch((e) => console.warn("albums", e));
    document.getElementById("bulk-add-album").addEventListener("click", async () => {
      const album = albumSelect.value;
      const ids = picked().map((c) => c.value);
      if (!album || !ids.length) return;
      try {
        await api("POST", `/api/v1/albums/${encodeURIComponent(album)}/items`, { media_ids: ids });
        status.textContent = `Added ${ids.length} to the album.`;
      } catch (e) {
        status.textContent = e.message;
      }
    });
    document.getElementById("bulk-delete").addEventListener("click", () => {
      const n = picked().length;
      if (!confirm(`Delete ${n} item${n > 1 ? "s" : ""} for good?`)) return;
      run("Deleted", async (id) => {
        await api("DELETE", `/api/v1/media/${id}`);
        grid.querySelector(`li[data-id="${CSS.escape(id)}"]`)?.remove();
      });
    });
  }
})();
