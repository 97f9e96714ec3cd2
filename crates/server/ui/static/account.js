// Framehouse web UI, the account page: sessions, API keys, password, default watermark,
// webhooks with their delivery log, and account deletion, all through the JSON API
// (window.framehouse.api sends the session cookie and the CSRF token). Text from the
// server is always set as text, never parsed as HTML.
"use strict";
(function () {
  const { api, el, when, section } = window.framehouse;
  const root = document.getElementById("account");
  if (!root) return;

  // Sessions: each with where and how it signed in; revoking this browser's own session
  // signs it out.
  const sessions = section("sessions");
  async function loadSessions() {
    const list = await api("GET", "/api/v1/auth/sessions");
    const rows = document.getElementById("session-rows");
    rows.replaceChildren(...list.map((s) => {
      const revoke = el("button", { type: "button", class: "secondary" }, s.current ? "Sign out here" : "Revoke");
      revoke.addEventListener("click", () => sessions.run(async () => {
        await api("DELETE", `/api/v1/auth/sessions/${encodeURIComponent(s.id)}`);
        if (s.current) location.assign("/signin");
        else await loadSessions();
      }));
      return el("li", { "data-session": s.id },
        el("span", { class: "grow" },
          el("strong", {}, s.user_agent || "unknown client"),
          s.current ? el("span", { class: "badge" }, "this browser") : "",
          el("br"),
          el("span", { class: "muted" }, `${s.method}${s.ip ? " from " + s.ip : ""} · signed in ${when(s.created_at)} · last used ${when(s.last_used_at)}`)),
        revoke);
    }));
  }

  // API keys: created with the ticked scopes and shown once; listed by name and hint.
  const keys = section("keys");
  async function loadKeys() {
    const list = await api("GET", "/api/v1/api-keys");
    const rows = document.getElementById("key-rows");
    if (!list.length) {
      rows.replaceChildren(el("li", { class: "empty" }, "No API keys yet. Create one above for a script or the framehouse CLI."));
      return;
    }
    rows.replaceChildren(...list.map((k) => {
      const revoke = el("button", { type: "button", class: "secondary" }, "Revoke");
      revoke.setAttribute("aria-label", `Revoke ${k.name}`);
      revoke.addEventListener("click", () => keys.run(async () => {
        if (!confirm(`Revoke the key "${k.name}"? Programs using it stop working.`)) return;
        await api("DELETE", `/api/v1/api-keys/${encodeURIComponent(k.id)}`);
        await loadKeys();
      }));
      return el("li", { "data-key": k.id },
        el("span", { class: "grow" },
          el("strong", {}, k.name), " ", el("code", {}, `${k.hint}…`), el("br"),
          el("span", { class: "muted" }, `${k.scopes.join(", ")} · made ${when(k.created_at)}` +
            (k.expires_at ? ` · expires ${when(k.expires_at)}` : "") +
            (k.last_used_at ? ` · last used ${when(k.last_used_at)}` : " · never used"))),
        revoke);
    }));
  }
  document.getElementById("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const form = e.target;
    keys.run(async () => {
      const scopes = [...form.querySelectorAll('input[name="scopes"]:checked')].map((c) => c.value);
      if (!scopes.length) throw new Error("tick at least one scope");
      const days = form.elements.expires_in_days.value;
      const created = await api("POST", "/api/v1/api-keys", {
        name: form.elements.name.value.trim(),
        scopes,
        expires_in_days: days ? Number(days) : null,
      });
      document.getElementById("key-secret").value = created.key;
      document.getElementById("key-created").hidden = false;
      form.reset();
      await loadKeys();
    });
  });

  // Password: the current one confirms it is you; other sessions are signed out.
  const password = section("password");
  document.getElementById("password-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const form = e.target;
    password.run(async () => {
      const next = form.elements.new_password.value;
      if (next !== form.elements.repeat_password.value) throw new Error("the two new passwords differ");
      await api("POST", "/api/v1/account/password", {
        current_password: form.elements.current_password?.value || null,
        new_password: next,
      });
      form.reset();
      password.done();
      await loadSessions();
    });
  });

  // Default watermark: one of the user's images, placed and scaled.
  const watermark = section("watermark");
  const wm = document.getElementById("watermark-form");
  const remove = document.getElementById("wm-remove");
  async function loadWatermark() {
    const [images, current] = await Promise.all([
      api("GET", "/api/v1/media?limit=200"),
      api("GET", "/api/v1/account/watermark").catch((err) => (err.status === 404 ? null : Promise.reject(err))),
    ]);
    const select = wm.elements.media_id;
    const options = images.items.filter((i) => i.kind === "image" && i.status === "ready").map((i) => el("option", { value: i.id }, i.title || `Untitled image ${i.id.slice(0, 8)}`));
    if (!options.length) options.push(el("option", { value: "" }, "Upload an image (a PNG logo works best) to use it here"));
    else options.unshift(el("option", { value: "" }, "Choose an image"));
    select.replaceChildren(...options);
    remove.hidden = !current;
    if (current) {
      for (const name of ["media_id", "position", "margin", "opacity", "scale"]) wm.elements[name].value = current[name];
    }
  }
  wm.addEventListener("submit", (e) => {
    e.preventDefault();
    watermark.run(async () => {
      await api("PUT", "/api/v1/account/watermark", {
        media_id: wm.elements.media_id.value,
        position: wm.elements.position.value,
        margin: Number(wm.elements.margin.value),
        opacity: Number(wm.elements.opacity.value),
        scale: Number(wm.elements.scale.value),
      });
      remove.hidden = false;
      watermark.done("Saved: new videos get this watermark.");
    });
  });
  remove.addEventListener("click", () => watermark.run(async () => {
    await api("DELETE", "/api/v1/account/watermark");
    wm.reset();
    remove.hidden = true;
    watermark.done("Removed: new videos have no watermark.");
  }));

  // Webhooks: each endpoint with its state, actions and the log of its deliveries.
  const webhooks = section("webhooks");
  function showSecret(secret) {
    document.getElementById("webhook-secret-value").value = secret;
    document.getElementById("webhook-secret").hidden = false;
  }
  async function loadWebhooks() {
    const { webhooks: list } = await api("GET", "/api/v1/webhooks");
    const rows = document.getElementById("webhook-rows");
    if (!list.length) {
      rows.replaceChildren(el("li", { class: "empty" }, "No webhooks yet. Add a URL above to have events sent to it."));
      return;
    }
    rows.replaceChildren(...list.map(webhookRow));
  }
  function webhookRow(w) {
    const base = `/api/v1/webhooks/${encodeURIComponent(w.id)}`;
    const log = el("ol", { class: "deliveries", "aria-label": `Deliveries to ${w.url}` });
    const action = (label, fn) => {
      const b = el("button", { type: "button", class: "secondary" }, label);
      b.addEventListener("click", () => webhooks.run(fn));
      return b;
    };
    const state = w.enabled ? (w.failing_since ? `failing since ${when(w.failing_since)}` : "enabled")
      : `disabled${w.disabled_reason ? ": " + w.disabled_reason : ""}`;
    async function loadLog() {
      const page = await api("GET", `${base}/deliveries?limit=20`);
      if (!page.deliveries.length) {
        log.replaceChildren(el("li", { class: "muted" }, "Nothing delivered yet. Send a ping to try the receiver."));
        return;
      }
      log.replaceChildren(...page.deliveries.map((d) => {
        const last = d.attempts[d.attempts.length - 1];
        const retry = d.state === "succeeded" ? "" : action("Send again", async () => {
          await api("POST", `${base}/deliveries/${encodeURIComponent(d.id)}/retry`);
          await loadLog();
        });
        return el("li", { "data-delivery": d.id, "data-state": d.state },
          el("span", { class: "grow" },
            el("code", {}, d.type), " ", el("span", { class: `badge state-${d.state}` }, d.state),
            el("br"),
            el("span", { class: "muted" }, `${d.attempts.length} attempt(s)` +
              (last ? ` · last ${when(last.attempted_at)}: ${last.status_code ?? last.error ?? "no answer"} in ${last.latency_ms} ms` : "") +
              (d.next_attempt_at ? ` · next ${when(d.next_attempt_at)}` : ""))),
          retry);
      }));
    }
    const details = el("details", {}, el("summary", {}, "Delivery log"), log);
    details.addEventListener("toggle", () => { if (details.open) webhooks.run(loadLog); });
    return el("li", { class: "webhook", "data-webhook": w.id },
      el("div", { class: "grow" },
        el("strong", {}, w.url), w.description ? el("span", { class: "muted" }, ` — ${w.description}`) : "",
        el("br"),
        el("span", { class: "muted" }, `${state} · ${w.events.length ? w.events.join(", ") : "all events"}`),
        details),
      el("span", { class: "actions" },
        action("Ping", async () => {
          await api("POST", `${base}/ping`);
          details.open = true;
          await loadLog();
        }),
        action(w.enabled ? "Disable" : "Enable", async () => {
          await api("PATCH", base, { enabled: !w.enabled });
          await loadWebhooks();
        }),
        action("New secret", async () => {
          if (!confirm("Make a new signing secret? The old one keeps working for a day.")) return;
          showSecret((await api("POST", `${base}/rotate-secret`)).secret);
        }),
        action("Delete", async () => {
          if (!confirm(`Delete the webhook to ${w.url}?`)) return;
          await api("DELETE", base);
          await loadWebhooks();
        })));
  }
  document.getElementById("webhook-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const form = e.target;
    webhooks.run(async () => {
      const created = await api("POST", "/api/v1/webhooks", {
        url: form.elements.url.value.trim(),
        description: form.elements.description.value.trim() || null,
        events: [...form.querySelectorAll('input[name="events"]:checked')].map((c) => c.value),
      });
      showSecret(created.secret);
      form.reset();
      await loadWebhooks();
    });
  });

  // Deleting the account, confirmed by the password (or a recent sign-in).
  const removal = section("delete");
  document.getElementById("delete-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const form = e.target;
    removal.run(async () => {
      await api("DELETE", "/api/v1/account", { password: form.elements.password?.value || null });
      location.assign("/signin");
    });
  });

  sessions.run(loadSessions);
  keys.run(loadKeys);
  watermark.run(loadWatermark);
  webhooks.run(loadWebhooks);
})();
