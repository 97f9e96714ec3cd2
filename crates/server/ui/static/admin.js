// Framehouse web UI, the admin page: storage and queue figures, users (role, disable,
// quota), jobs and dead letters (retry, cancel), the audit log and the nodes, through
// the admin JSON API. Server text is always set as text.
"use strict";
(function () {
  const { api, el, when, section } = window.framehouse;
  if (!document.getElementById("admin")) return;

  const size = (n) => {
    for (const [unit, scale] of [["GB", 1e9], ["MB", 1e6], ["kB", 1e3]]) {
      if (n >= scale) return `${(n / scale).toFixed(1)} ${unit}`;
    }
    return `${n} bytes`;
  };
  const shown = (f) => (f.unit === "bytes" ? size(f.value) : f.unit === "seconds" ? `${f.value} s` : String(f.value));

  // Figures, one table per domain that reports them.
  const overview = section("overview");
  async function loadOverview() {
    const o = await api("GET", "/api/v1/admin/overview");
    document.getElementById("engines").textContent =
      `Database ${o.database} · object store ${o.object_store} (${o.object_store_up ? "up" : "DOWN"}) · Redis ${o.redis}`;
    const groups = new Map();
    for (const f of o.figures) {
      if (!groups.has(f.domain)) groups.set(f.domain, []);
      groups.get(f.domain).push(f);
    }
    document.getElementById("figures").replaceChildren(...[...groups].map(([domain, figures]) =>
      el("table", {},
        el("caption", {}, domain),
        el("tbody", {}, ...figures.map((f) =>
          el("tr", { "data-figure": f.name },
            el("th", { scope: "row" }, f.label),
            el("td", { "data-value": String(f.value) }, shown(f))))))));
  }
  document.getElementById("overview-refresh").addEventListener("click", () => overview.run(loadOverview));

  // Users: each row edits role, disabled and quota, saved with one PATCH.
  const users = section("users");
  let usersCursor = null;
  async function loadUsers(more) {
    const page = await api("GET", `/api/v1/admin/users?limit=50${more && usersCursor ? "&cursor=" + encodeURIComponent(usersCursor) : ""}`);
    usersCursor = page.next_cursor;
    document.getElementById("users-more").hidden = !usersCursor;
    const rows = document.getElementById("user-rows");
    const items = page.users.map(userRow);
    if (more) rows.append(...items);
    else rows.replaceChildren(...items);
  }
  function userRow(u) {
    const id = `user-${u.id}`;
    const role = el("select", { id: `${id}-role` },
      el("option", { value: "user" }, "user"), el("option", { value: "admin" }, "admin"));
    role.value = u.role;
    const disabled = el("input", { type: "checkbox", id: `${id}-disabled` });
    disabled.checked = u.disabled;
    const quota = el("input", { type: "number", id: `${id}-quota`, min: "0", step: "1", inputmode: "numeric", placeholder: "no limit", size: "8" });
    if (u.quota_bytes != null) quota.value = String(Math.round(u.quota_bytes / 1e6));
    const save = el("button", { type: "button", class: "secondary" }, "Save");
    save.setAttribute("aria-label", `Save ${u.username}`);
    save.addEventListener("click", () => users.run(async () => {
      const updated = await api("PATCH", `/api/v1/admin/users/${encodeURIComponent(u.id)}`, {
        role: role.value,
        disabled: disabled.checked,
        quota_bytes: quota.value === "" ? null : Math.round(Number(quota.value) * 1e6),
      });
      li.replaceWith(userRow(updated));
      users.done(`Saved ${updated.username}.`);
    }));
    const li = el("li", { "data-user": u.username },
      el("span", { class: "grow" },
        el("strong", {}, u.username), u.disabled ? el("span", { class: "badge status-failed" }, "disabled") : "",
        u.locked ? el("span", { class: "badge" }, "locked") : "", el("br"),
        el("span", { class: "muted" }, `${u.email || "no email"} · ${u.items} items · ${size(u.used_bytes)} · since ${when(u.created_at)}`)),
      el("span", { class: "actions" },
        el("label", { for: role.id }, "Role"), role,
        el("label", { class: "check", for: disabled.id }, disabled, " Disabled"),
        el("label", { for: quota.id }, "Quota (MB)"), quota,
        save));
    return li;
  }
  document.getElementById("users-more").addEventListener("click", () => users.run(() => loadUsers(true)));

  // Jobs by state; dead letters can be queued again, live jobs cancelled.
  const jobs = section("jobs");
  const jobState = document.getElementById("job-state");
  let jobsCursor = null;
  async function loadJobs(more) {
    const cursor = more && jobsCursor ? `&cursor=${encodeURIComponent(jobsCursor)}` : "";
    const page = await api("GET", `/api/v1/jobs?state=${encodeURIComponent(jobState.value)}&limit=50${cursor}`);
    jobsCursor = page.next_cursor;
    document.getElementById("jobs-more").hidden = !jobsCursor;
    const rows = document.getElementById("job-rows");
    const items = page.jobs.map(jobRow);
    if (!more && !items.length) {
      rows.replaceChildren(el("li", { class: "empty" }, jobState.value === "dead"
        ? "No dead letters: every job that ran out of attempts would be listed here."
        : `No ${jobState.value} jobs.`));
      return;
    }
    if (more) rows.append(...items);
    else rows.replaceChildren(...items);
  }
  function jobRow(j) {
    const act = (label, path) => {
      const b = el("button", { type: "button", class: "secondary" }, label);
      b.setAttribute("aria-label", `${label} job ${j.id}`);
      b.addEventListener("click", () => jobs.run(async () => {
        await api("POST", `/api/v1/jobs/${encodeURIComponent(j.id)}/${path}`);
        await loadJobs(false);
      }));
      return b;
    };
    const live = j.state === "queued" || j.state === "running";
    return el("li", { "data-job": j.id, "data-state": j.state },
      el("span", { class: "grow" },
        el("strong", {}, j.kind), " ", el("span", { class: `badge state-${j.state}` }, j.state),
        j.progress != null && live ? el("span", { class: "muted" }, ` ${j.progress}%`) : "",
        el("br"),
        el("span", { class: "muted" }, `${j.id} · attempt ${j.attempts} of ${j.max_attempts} · updated ${when(j.updated_at)}`),
        j.last_error ? el("span", { class: "bad block" }, j.last_error) : ""),
      el("span", { class: "actions" },
        j.state === "dead" ? act("Retry", "retry") : "",
        live ? act("Cancel", "cancel") : ""));
  }
  jobState.addEventListener("change", () => jobs.run(() => loadJobs(false)));
  document.getElementById("jobs-more").addEventListener("click", () => jobs.run(() => loadJobs(true)));

  // The audit log, newest first, filtered by kind and user.
  const audit = section("audit");
  const auditForm = document.getElementById("audit-form");
  let auditCursor = null;
  async function loadAudit(more) {
    const q = new URLSearchParams({ limit: "50" });
    for (const name of ["kind", "user_id"]) {
      const v = auditForm.elements[name].value.trim();
      if (v) q.set(name, v);
    }
    if (more && auditCursor) q.set("cursor", auditCursor);
    const page = await api("GET", `/api/v1/admin/audit?${q}`);
    auditCursor = page.next_cursor;
    document.getElementById("audit-more").hidden = !auditCursor;
    const rows = document.getElementById("audit-rows");
    const items = page.events.map((a) => el("li", { "data-audit": a.kind },
      el("span", { class: "grow" },
        el("strong", {}, a.kind), " ", el("time", { datetime: a.at }, when(a.at)), el("br"),
        el("span", { class: "muted" }, [a.user_id && `user ${a.user_id}`, a.actor_id && a.actor_id !== a.user_id && `by ${a.actor_id}`, a.ip && `from ${a.ip}`].filter(Boolean).join(" · ")),
        Object.keys(a.detail || {}).length ? el("code", { class: "block" }, JSON.stringify(a.detail)) : "")));
    if (!more && !items.length) {
      rows.replaceChildren(el("li", { class: "empty" }, "No audit events match."));
      return;
    }
    if (more) rows.append(...items);
    else rows.replaceChildren(...items);
  }
  auditForm.addEventListener("submit", (e) => {
    e.preventDefault();
    audit.run(() => loadAudit(false));
  });
  document.getElementById("audit-more").addEventListener("click", () => audit.run(() => loadAudit(true)));

  // The service registry.
  const nodes = section("nodes");
  async function loadNodes() {
    const { nodes: list } = await api("GET", "/api/v1/admin/nodes");
    document.getElementById("node-rows").replaceChildren(...list.map((n) => el("li", { "data-node": n.id, "data-status": n.status },
      el("span", { class: "grow" },
        el("strong", {}, n.id), n.this_node ? el("span", { class: "badge" }, "this node") : "",
        " ", el("span", { class: `badge state-${n.status}` }, n.status), el("br"),
        el("span", { class: "muted" }, `${n.roles.join(", ")} · ${n.version} · ${n.address} · up since ${when(n.started_at)} · heartbeat ${when(n.last_heartbeat_at)}`),
        el("span", { class: "block" }, n.running_jobs
          ? `running ${Object.entries(n.running_by_kind).map(([k, c]) => `${c} ${k}`).join(", ")}`
          : "no jobs running")))));
  }

  overview.run(loadOverview);
  users.run(() => loadUsers(false));
  jobs.run(() => loadJobs(false));
  audit.run(() => loadAudit(false));
  nodes.run(loadNodes);
})();
