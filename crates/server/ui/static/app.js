// Framehouse web UI, every page: the CSRF token for script requests, and the library's
// infinite scroll (the "More" link keeps working without this file).
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
    if (!res.ok) throw new Error(data?.error?.message || `${res.status} ${res.statusText}`);
    return data;
  }
  window.framehouse = { api, csrf };

  // Library: fetch the next page's cards when the "More" link nears the viewport.
  const grid = document.getElementById("grid");
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
})();
