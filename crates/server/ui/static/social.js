// Framehouse web UI, the social pages: the feed, friends and requests, profiles, albums
// (grid, slideshow, members, share links), the inbox, notifications, the share-link page,
// and comments and likes on an item page — all drawn from the JSON API through
// window.framehouse.api. Text from the server is always set as text, never as HTML.
"use strict";
(function () {
  const { api, el, when, section } = window.framehouse || {};
  const enc = encodeURIComponent;

  // The thumbnail URL of an item (its `thumb` webp, else its first rendition).
  const thumbOf = (item) => (item.variants || []).find((v) => v.preset === "thumb" && v.format === "webp")?.url
    || item.variants?.[0]?.url || item.cover_url || "";
  const largestOf = (item) => [...(item.variants || [])].filter((v) => v.format === "webp")
    .sort((a, b) => b.width - a.width)[0]?.url || thumbOf(item);
  const label = (item) => item.title || `${item.kind} ${item.id.slice(0, 8)}`;
  const who = (card) => card?.display_name ? `${card.display_name} (@${card.username})` : `@${card?.username ?? "someone"}`;
  const userLink = (card) => el("a", { href: `/u/${enc(card.username)}` }, who(card));

  // A grid of item cards linking to their pages (`href` may open them elsewhere).
  function grid(items, href = (i) => `/items/${enc(i.id)}`) {
    if (!items.length) return el("p", { class: "empty" }, "Nothing to show yet.");
    return el("ul", { class: "grid" }, ...items.map((i) => el("li", { class: "card", "data-id": i.id },
      el("a", { href: href(i), class: "thumb" },
        thumbOf(i) ? el("img", { src: thumbOf(i), alt: label(i), loading: "lazy", width: "240", height: "180" }) : el("span", { class: "pending" }, i.kind)),
      el("span", { class: "meta" }, el("span", { class: "name" }, label(i))))));
  }

  function button(text, action, cls = "secondary") {
    const b = el("button", { type: "button", class: cls }, text);
    b.addEventListener("click", action);
    return b;
  }

  // A form of labelled fields; `submit` gets the values by name.
  function form(id, fields, submitText, submit) {
    const f = el("form", { id, class: "stack" });
    for (const [name, text, attrs = {}] of fields) {
      const input = attrs.tag === "select"
        ? el("select", { id: `${id}-${name}`, name }, ...attrs.options.map(([v, t]) => el("option", { value: v }, t)))
        : el(attrs.tag || "input", { id: `${id}-${name}`, name, ...Object.fromEntries(Object.entries(attrs).filter(([k]) => k !== "tag")) });
      f.append(el("label", { for: `${id}-${name}` }, text), input);
    }
    f.append(el("button", { type: "submit" }, submitText));
    f.addEventListener("submit", (e) => {
      e.preventDefault();
      submit(Object.fromEntries(new FormData(f)), f);
    });
    return f;
  }

  const panel = (title, ...children) => {
    const id = `h-${title.toLowerCase().replace(/[^a-z]+/g, "-")}`;
    return el("section", { class: "panel", "aria-labelledby": id }, el("h2", { id }, title), ...children);
  };

  const root = document.getElementById("social");
  const body = document.getElementById("social-body");
  const page = root ? section("social") : null;
  const draw = (...nodes) => body.replaceChildren(...nodes);
  const heading = (text) => { document.getElementById("social-h").textContent = text; document.title = `${text} · Framehouse`; };

  const views = {
    async feed() {
      const load = async (cursor) => {
        const data = await api("GET", `/api/v1/feed?limit=48${cursor ? `&cursor=${enc(cursor)}` : ""}`);
        return data;
      };
      const first = await load();
      if (!first.items.length) {
        draw(el("p", { class: "empty" }, "Your feed shows what friends and the people you follow share. ",
          el("a", { href: "/friends" }, "Find friends"), " or go to your ", el("a", { href: "/library" }, "library"), "."));
        return;
      }
      const list = grid(first.items);
      draw(list);
      let next = first.next_cursor;
      if (next) {
        const more = button("More", () => page.run(async () => {
          const data = await load(next);
          list.append(...grid(data.items).children);
          next = data.next_cursor;
          if (!next) more.remove();
        }));
        body.append(more);
      }
    },

    async friends() {
      const [friends, incoming, outgoing] = await Promise.all([
        api("GET", "/api/v1/friends?limit=200"),
        api("GET", "/api/v1/friends/requests?direction=incoming"),
        api("GET", "/api/v1/friends/requests?direction=outgoing"),
      ]);
      const again = () => views.friends();
      const results = el("ul", { class: "rows", id: "user-results" });
      const search = form("find", [["prefix", "Find people by username", { required: "", maxlength: "64", autocomplete: "off" }]], "Search",
        (v) => page.run(async () => {
          const found = await api("GET", `/api/v1/users?prefix=${enc(v.prefix)}&limit=20`);
          results.replaceChildren(...(found.users.length ? found.users.map((u) => el("li", {}, el("span", { class: "grow" }, userLink(u)),
            button("Add friend", () => page.run(async () => {
              await api("POST", "/api/v1/friends/requests", { user: u.username });
              page.done(`Asked ${u.username} to be friends.`);
              await again();
            })))) : [el("li", { class: "empty" }, "Nobody by that name.")]));
        }));
      const requestRow = (r, incomingOne) => el("li", { "data-request": r.id },
        el("span", { class: "grow" }, userLink(incomingOne ? r.from : r.to), r.message ? ` — ${r.message}` : "", el("br"),
          el("span", { class: "muted" }, when(r.created_at))),
        ...(incomingOne ? [
          button("Accept", () => page.run(async () => { await api("POST", `/api/v1/friends/requests/${enc(r.id)}/accept`); await again(); }), ""),
          button("Decline", () => page.run(async () => { await api("POST", `/api/v1/friends/requests/${enc(r.id)}/decline`); await again(); })),
        ] : [button("Withdraw", () => page.run(async () => { await api("DELETE", `/api/v1/friends/requests/${enc(r.id)}`); await again(); }))]));
      draw(
        panel("Requests to you", el("ul", { class: "rows", id: "incoming" }, ...(incoming.requests.length
          ? incoming.requests.map((r) => requestRow(r, true)) : [el("li", { class: "empty" }, "No requests.")]))),
        panel("Your friends", el("ul", { class: "rows", id: "friend-rows" }, ...(friends.friends.length ? friends.friends.map((f) => el("li", {},
          el("span", { class: "grow" }, userLink(f), el("br"), el("span", { class: "muted" }, `friends since ${when(f.since)}`)),
          button("Message", () => page.run(async () => {
            const c = await api("POST", "/api/v1/conversations", { members: [f.username] });
            location.assign(`/inbox/${enc(c.id)}`);
          })),
          button("Unfriend", () => page.run(async () => {
            if (!confirm(`Unfriend ${f.username}?`)) return;
            await api("DELETE", `/api/v1/friends/${enc(f.username)}`);
            await again();
          })))) : [el("li", { class: "empty" }, "No friends yet: search below.")]))),
        panel("Find people", search, results),
        panel("Your requests", el("ul", { class: "rows", id: "outgoing" }, ...(outgoing.requests.length
          ? outgoing.requests.map((r) => requestRow(r, false)) : [el("li", { class: "empty" }, "None pending.")]))));
    },

    async profile(name) {
      const p = await api("GET", `/api/v1/users/${enc(name)}`);
      heading(p.display_name || p.username);
      const s = p.standing;
      const again = () => views.profile(name);
      const act = (text, method, url, bodyOf) => button(text, () => page.run(async () => { await api(method, url, bodyOf); await again(); }));
      const actions = el("p", { class: "inline", id: "profile-actions" });
      if (s) {
        if (s.friends) actions.append(act("Unfriend", "DELETE", `/api/v1/friends/${enc(name)}`));
        else if (s.incoming_request) actions.append(act("Accept friend request", "POST", `/api/v1/friends/requests/${enc(s.incoming_request)}/accept`));
        else if (s.outgoing_request) actions.append(act("Withdraw request", "DELETE", `/api/v1/friends/requests/${enc(s.outgoing_request)}`));
        else if (!s.blocking) actions.append(act("Add friend", "POST", "/api/v1/friends/requests", { user: name }));
        if (!s.blocking) {
          actions.append(s.following ? act("Unfollow", "DELETE", `/api/v1/users/${enc(name)}/follow`) : act("Follow", "POST", `/api/v1/users/${enc(name)}/follow`));
          if (s.friends || p.messages_from === "anyone") {
            actions.append(button("Message", () => page.run(async () => {
              const c = await api("POST", "/api/v1/conversations", { members: [name] });
              location.assign(`/inbox/${enc(c.id)}`);
            })));
          }
          actions.append(button("Block", () => page.run(async () => {
            if (!confirm(`Block ${name}? Friendship and follows end, and neither of you sees the other.`)) return;
            await api("POST", "/api/v1/blocks", { user: name });
            location.assign("/friends");
          }), "danger"));
        } else {
          actions.append(act("Unblock", "DELETE", `/api/v1/blocks/${enc(name)}`));
        }
      }
      const facts = el("dl", { class: "facts" },
        el("dt", {}, "Friends"), el("dd", {}, String(p.friends)),
        el("dt", {}, "Followers"), el("dd", {}, String(p.followers)),
        el("dt", {}, "Following"), el("dd", {}, String(p.following)),
        ...(p.member_since ? [el("dt", {}, "Member since"), el("dd", {}, when(p.member_since))] : []),
        ...(s?.followed_by ? [el("dt", {}, "Follows you"), el("dd", {}, "yes")] : []));
      const nodes = [];
      if (p.avatar_url) nodes.push(el("img", { src: p.avatar_url, alt: `${p.username}'s avatar`, class: "avatar", width: "96", height: "96" }));
      nodes.push(el("p", { class: "muted" }, `@${p.username}`));
      if (p.bio) nodes.push(el("p", { class: "description" }, p.bio));
      nodes.push(facts, actions);
      if (!s) {
        // One's own profile: what others see, and how to change it.
        nodes.push(panel("Edit your profile", form("profile-form", [
          ["display_name", "Display name", { maxlength: "100", value: p.display_name || "" }],
          ["bio", "About you", { tag: "textarea", maxlength: "1000", rows: "3" }],
          ["messages_from", "Who may message you", { tag: "select", options: [["friends", "Friends only"], ["anyone", "Anyone"]] }],
        ], "Save", (v) => page.run(async () => {
          await api("PATCH", "/api/v1/profile", { display_name: v.display_name || null, bio: v.bio || null, messages_from: v.messages_from });
          page.done("Saved.");
          await again();
        }))));
        setTimeout(() => {
          const bio = document.getElementById("profile-form-bio");
          if (bio) bio.value = p.bio || "";
          const from = document.getElementById("profile-form-messages_from");
          if (from) from.value = p.messages_from;
        });
      }
      draw(...nodes);
    },

    async albums() {
      const list = await api("GET", "/api/v1/albums?limit=200");
      const create = form("album-form", [
        ["title", "Title", { required: "", maxlength: "200" }],
        ["description", "Description", { maxlength: "2000" }],
        ["visibility", "Who sees it", { tag: "select", options: [["private", "Members only"], ["friends", "Your friends and members"], ["unlisted", "Anyone with the link"], ["public", "Everyone"]] }],
      ], "Create album", (v) => page.run(async () => {
        const a = await api("POST", "/api/v1/albums", { title: v.title, description: v.description || null, visibility: v.visibility });
        location.assign(`/albums/${enc(a.id)}`);
      }));
      draw(
        list.albums.length ? el("ul", { class: "grid", id: "album-grid" }, ...list.albums.map((a) => el("li", { class: "card" },
          el("a", { href: `/albums/${enc(a.id)}`, class: "thumb" }, a.cover_url ? el("img", { src: a.cover_url, alt: a.title, width: "240", height: "180" }) : el("span", { class: "pending" }, "album")),
          el("span", { class: "meta" }, el("span", { class: "name" }, a.title), el("span", { class: "badge" }, `${a.items} · ${a.role}`)))))
          : el("p", { class: "empty" }, "No albums yet."),
        panel("New album", create));
    },

    async album(id) {
      const [a, items] = await Promise.all([
        api("GET", `/api/v1/albums/${enc(id)}`),
        api("GET", `/api/v1/albums/${enc(id)}/items?limit=200`),
      ]);
      heading(a.title);
      const again = () => views.album(id);
      const mine = a.role === "owner";
      const canAdd = ["owner", "editor", "contributor"].includes(a.role);
      const nodes = [el("p", { class: "muted" }, `by `, userLink(a.owner), ` · ${a.visibility} · ${a.items} item${a.items === 1 ? "" : "s"} · you: ${a.role}`)];
      if (a.description) nodes.push(el("p", { class: "description" }, a.description));
      if (items.items.length) nodes.push(el("p", { class: "inline" }, button("Slideshow", () => slideshow(items.items), "")));
      nodes.push(grid(items.items));
      if (canAdd) {
        nodes.push(panel("Add from your library", el("p", { class: "muted" }, "Pick items and add them; they keep their own visibility."),
          await picker("album-pick", async (ids) => {
            await api("POST", `/api/v1/albums/${enc(id)}/items`, { media_ids: ids });
            await again();
          }, "Add to album")));
      }
      if (mine || a.role === "editor") {
        const roles = [["viewer", "Viewer"], ["contributor", "Contributor (adds own items)"], ["editor", "Editor"]];
        nodes.push(panel("Members",
          el("ul", { class: "rows", id: "member-rows" }, ...(a.members.length ? a.members.map((m) => el("li", {},
            el("span", { class: "grow" }, userLink(m), ` · ${m.role}`),
            button("Remove", () => page.run(async () => { await api("DELETE", `/api/v1/albums/${enc(id)}/members/${enc(m.username)}`); await again(); })))) : [el("li", { class: "empty" }, "Only you.")])),
          form("member-form", [["name", "Username", { required: "", maxlength: "64" }], ["role", "Role", { tag: "select", options: roles }]], "Invite",
            (v) => page.run(async () => { await api("PUT", `/api/v1/albums/${enc(id)}/members/${enc(v.name)}`, { role: v.role }); await again(); }))));
      }
      if (mine) {
        const out = el("p", { class: "inline", id: "share-out" });
        nodes.push(panel("Share link",
          el("p", { class: "muted" }, "Anyone with the link sees your items in this album, without an account."),
          form("share-form", [
            ["expires", "Expires after (days, empty for never)", { type: "number", min: "1", max: "365", inputmode: "numeric" }],
            ["password", "Password (optional)", { type: "password", autocomplete: "new-password", minlength: "6" }],
          ], "Create link", (v) => page.run(async () => {
            const link = await api("POST", "/api/v1/share-links", {
              album_id: id, expires_in_secs: v.expires ? Number(v.expires) * 86400 : null, password: v.password || null,
            });
            const url = `${location.origin}/s/${link.slug}`;
            out.replaceChildren(el("input", { id: "share-link", readonly: "", value: url, "aria-label": "Share link" }),
              el("button", { type: "button", class: "secondary", "data-copy": "share-link" }, "Copy"));
          })), out));
      }
      if (a.role !== "owner" && a.role !== "reader") {
        nodes.push(el("p", {}, button("Leave album", () => page.run(async () => {
          await api("DELETE", `/api/v1/albums/${enc(id)}/members/${enc(root.dataset.me)}`);
          location.assign("/albums");
        }))));
      }
      draw(...nodes);
    },

    async inbox() {
      const list = await api("GET", "/api/v1/conversations?limit=100");
      const me = root.dataset.me;
      const start = form("conversation-form", [
        ["members", "To (usernames, separated by commas)", { required: "", maxlength: "1000" }],
        ["title", "Title (for a group, optional)", { maxlength: "200" }],
        ["text", "Message", { tag: "textarea", maxlength: "5000", rows: "3" }],
      ], "Start", (v) => page.run(async () => {
        const members = v.members.split(",").map((s) => s.trim()).filter(Boolean);
        const c = await api("POST", "/api/v1/conversations", { members, title: v.title || null, text: v.text || null });
        location.assign(`/inbox/${enc(c.id)}`);
      }));
      draw(
        el("ul", { class: "rows", id: "conversation-rows" }, ...(list.conversations.length ? list.conversations.map((c) => {
          const others = c.members.filter((m) => m.username !== me);
          return el("li", { "data-conversation": c.id },
            el("span", { class: "grow" }, el("a", { href: `/inbox/${enc(c.id)}` }, c.title || others.map(who).join(", ") || "just you"), el("br"),
              el("span", { class: "muted" }, `last ${when(c.last_message_at)}${c.muted ? " · muted" : ""}`)),
            c.unread ? el("span", { class: "count" }, String(c.unread)) : "");
        }) : [el("li", { class: "empty" }, "No conversations yet.")])),
        panel("New conversation", start));
    },

    async conversation(id) {
      const me = root.dataset.me;
      const c = await api("GET", `/api/v1/conversations/${enc(id)}`);
      const others = c.members.filter((m) => m.username !== me);
      heading(c.title || others.map(who).join(", ") || "Conversation");
      const list = el("ol", { class: "messages", id: "message-rows" });
      const load = async () => {
        const page1 = await api("GET", `/api/v1/conversations/${enc(id)}/messages?limit=100`);
        list.replaceChildren(...page1.messages.reverse().map((m) => el("li", { class: m.mine ? "message mine" : "message", "data-message": m.id },
          el("span", { class: "muted" }, `${m.sender ? who(m.sender) : "someone"} · ${when(m.created_at)}`),
          m.text ? el("p", {}, m.text) : "",
          m.items.length ? grid(m.items) : "",
          m.mine ? button("Delete", () => page.run(async () => {
            await api("DELETE", `/api/v1/conversations/${enc(id)}/messages/${enc(m.id)}`);
            await load();
          })) : "")));
        if (page1.messages.length) await api("POST", `/api/v1/conversations/${enc(id)}/read`, {});
        window.framehouse.recount?.();
      };
      const attach = await picker("message-pick", null, null);
      const send = form("message-form", [["text", "Message", { tag: "textarea", maxlength: "5000", rows: "3" }]], "Send",
        (v, f) => page.run(async () => {
          await api("POST", `/api/v1/conversations/${enc(id)}/messages`, { text: v.text || "", media_ids: attach.picked() });
          f.reset();
          attach.clear();
          await load();
        }));
      const controls = el("p", { class: "inline" },
        button(c.muted ? "Unmute" : "Mute", () => page.run(async () => { await api("PATCH", `/api/v1/conversations/${enc(id)}`, { muted: !c.muted }); await views.conversation(id); })),
        button("Leave", () => page.run(async () => {
          if (!confirm("Leave this conversation? Its messages and shared items close to you.")) return;
          await api("POST", `/api/v1/conversations/${enc(id)}/leave`);
          location.assign("/inbox");
        })));
      draw(el("p", { class: "muted" }, "With ", ...others.flatMap((m, i) => (i ? [", ", userLink(m)] : [userLink(m)]))), list, send,
        panel("Attach from your library", attach), controls);
      await load();
      document.addEventListener("framehouse:event", (e) => {
        if (e.detail.type === "message.created" && e.detail.data?.conversation_id === id) load();
      });
    },

    async notifications() {
      const list = await api("GET", "/api/v1/notifications?limit=100");
      const text = (n) => {
        const d = n.data || {};
        const by = d.from || d.follower || d.by || d.sender || d.owner || d.author || d.comment?.author;
        const name = by?.username ? who(by) : "Someone";
        switch (n.type) {
          case "friend.requested": return [`${name} asked to be friends.`, "/friends"];
          case "friend.accepted": return [`${name} accepted your friend request.`, "/friends"];
          case "user.followed": return [`${name} follows you now.`, by?.username ? `/u/${enc(by.username)}` : "/friends"];
          case "album.invited": return [`You were invited to an album.`, d.album_id ? `/albums/${enc(d.album_id)}` : "/albums"];
          case "album.items_added": return [`New items in an album.`, d.album_id ? `/albums/${enc(d.album_id)}` : "/albums"];
          case "friend.uploaded": return [`A friend shared ${d.title || "a new item"}.`, d.item_id ? `/items/${enc(d.item_id)}` : "/"];
          case "comment.created": return [`${name} commented.`, d.target === "album" ? `/albums/${enc(d.target_id)}` : `/items/${enc(d.target_id)}`];
          case "like.created": return [`${name} liked something of yours.`, d.target === "album" ? `/albums/${enc(d.target_id)}` : `/items/${enc(d.target_id)}`];
          case "message.created": return [`${name} sent you a message${d.preview ? `: ${d.preview}` : "."}`, `/inbox/${enc(d.conversation_id)}`];
          default: return [n.type, "/"];
        }
      };
      draw(
        el("p", { class: "inline" }, button("Mark all read", () => page.run(async () => {
          await api("POST", "/api/v1/notifications/read", { all: true });
          window.framehouse.recount?.();
          await views.notifications();
        }))),
        el("ul", { class: "rows", id: "notification-rows" }, ...(list.notifications.length ? list.notifications.map((n) => {
          const [words, href] = text(n);
          return el("li", { class: n.read_at ? "" : "unread", "data-type": n.type },
            el("span", { class: "grow" }, el("a", { href }, words), el("br"), el("span", { class: "muted" }, when(n.created_at))),
            n.read_at ? "" : el("span", { class: "badge" }, "new"));
        }) : [el("li", { class: "empty" }, "Nothing yet.")])));
    },

    async shared(slug) {
      const key = sessionStorage.getItem(`share-key:${slug}`);
      let data;
      try {
        data = await api("GET", `/api/v1/shared/${enc(slug)}${key ? `?key=${enc(key)}` : ""}`);
      } catch (e) {
        if (e.status !== 401) throw e;
        draw(form("unlock-form", [["password", "This link asks for a password", { type: "password", required: "", autocomplete: "current-password" }]], "Open",
          (v) => page.run(async () => {
            const got = await api("POST", `/api/v1/shared/${enc(slug)}/unlock`, { password: v.password });
            sessionStorage.setItem(`share-key:${slug}`, got.key);
            await views.shared(slug);
          })));
        return;
      }
      heading(data.title || (data.kind === "album" ? "A shared album" : "A shared item"));
      const nodes = [el("p", { class: "muted" }, "Shared by ", who(data.owner), data.expires_at ? ` · until ${when(data.expires_at)}` : "")];
      if (data.description) nodes.push(el("p", { class: "description" }, data.description));
      if (data.items.length > 1) nodes.push(el("p", { class: "inline" }, button("Slideshow", () => slideshow(data.items), "")));
      nodes.push(el("ul", { class: "grid", id: "shared-grid" }, ...data.items.map((i) => el("li", { class: "card" },
        el("button", { type: "button", class: "thumb link", "aria-label": `Show ${i.title || "item"}` },
          el("img", { src: thumbOf(i), alt: i.title || `${i.kind} ${i.id.slice(0, 8)}`, width: "240", height: "180" })),
        el("span", { class: "meta" }, i.title ? el("span", { class: "name" }, i.title) : "",
          i.download_url ? el("a", { href: i.download_url, download: "" }, "Download") : "")))));
      draw(...nodes);
      body.querySelectorAll("#shared-grid button.thumb").forEach((b, n) => b.addEventListener("click", () => slideshow(data.items, n)));
    },
  };

  // Items of the caller's library to pick: `act(ids)` under a button, or, without one,
  // a picker whose `picked()` a form reads.
  async function picker(id, act, actText) {
    const lib = await api("GET", "/api/v1/media?limit=100");
    const box = el("div", { class: "picker", id });
    const items = lib.items.filter((i) => i.status === "ready");
    const list = el("ul", { class: "grid small" }, ...items.map((i) => el("li", { class: "card" },
      el("label", { class: "thumb" },
        el("input", { type: "checkbox", name: "pick", value: i.id, "aria-label": `Pick ${label(i)}` }),
        el("img", { src: thumbOf(i), alt: label(i), width: "120", height: "90", loading: "lazy" })))));
    box.append(items.length ? list : el("p", { class: "empty" }, "Nothing in your library yet."));
    box.picked = () => [...box.querySelectorAll('input[name="pick"]:checked')].map((c) => c.value);
    box.clear = () => box.querySelectorAll('input[name="pick"]').forEach((c) => { c.checked = false; });
    if (act) {
      box.append(button(actText, () => page.run(async () => {
        const ids = box.picked();
        if (ids.length) await act(ids);
      }), ""));
    }
    return box;
  }

  // A full-window slideshow of images: arrows, space to pause, Escape to close; it moves
  // on by itself every five seconds.
  function slideshow(items, start = 0) {
    const pictures = items.filter((i) => (i.variants || []).length);
    if (!pictures.length) return;
    let at = Math.min(start, pictures.length - 1), playing = true;
    const img = el("img", { alt: "" });
    const caption = el("p", { class: "muted", role: "status" });
    const show = () => {
      const i = pictures[at];
      img.src = largestOf(i);
      img.alt = label(i);
      caption.textContent = `${at + 1} of ${pictures.length}${i.title ? ` · ${i.title}` : ""}`;
    };
    const step = (d) => { at = (at + d + pictures.length) % pictures.length; show(); };
    const pause = button("Pause", () => { playing = !playing; pause.textContent = playing ? "Pause" : "Play"; });
    const dialog = el("dialog", { class: "slideshow", "aria-label": "Slideshow" },
      el("figure", {}, img, caption),
      el("p", { class: "inline" }, button("Previous", () => step(-1)), pause, button("Next", () => step(1)),
        button("Close", () => dialog.close())));
    const timer = setInterval(() => { if (playing) step(1); }, 5000);
    dialog.addEventListener("close", () => { clearInterval(timer); dialog.remove(); });
    dialog.addEventListener("keydown", (e) => {
      if (e.key === "ArrowRight") step(1);
      if (e.key === "ArrowLeft") step(-1);
    });
    document.body.append(dialog);
    show();
    dialog.showModal();
  }

  if (root && views[root.dataset.view]) {
    page.run(() => views[root.dataset.view](root.dataset.subject)).then(() => {
      if (body.textContent === "Loading…") body.replaceChildren();
    });
  }

  // An item page: likes and comments.
  const reactions = document.getElementById("reactions");
  if (reactions) {
    const id = reactions.dataset.item;
    const r = section("reactions");
    const like = document.getElementById("like");
    const count = document.getElementById("like-count");
    const rows = document.getElementById("comment-rows");
    const enabled = document.getElementById("comments-enabled");
    const showLikes = (s) => {
      like.setAttribute("aria-pressed", String(s.liked_by_me));
      like.textContent = s.liked_by_me ? "Liked" : "Like";
      count.textContent = `${s.likes} like${s.likes === 1 ? "" : "s"}`;
    };
    const loadComments = async () => {
      const page1 = await api("GET", `/api/v1/media/${enc(id)}/comments?limit=200`);
      if (enabled) enabled.checked = page1.comments_enabled;
      document.getElementById("comment-form").hidden = !page1.comments_enabled;
      rows.replaceChildren(...(page1.comments.length ? page1.comments.map((c) => el("li", { "data-comment": c.id },
        el("span", { class: "grow" }, userLink(c.author), el("br"), c.body, el("br"), el("span", { class: "muted" }, when(c.created_at))),
        c.can_delete ? button("Delete", () => r.run(async () => { await api("DELETE", `/api/v1/comments/${enc(c.id)}`); await loadComments(); })) : "")) : [el("li", { class: "empty" }, "No comments yet.")]));
    };
    r.run(async () => {
      showLikes(await api("GET", `/api/v1/media/${enc(id)}/likes`));
      await loadComments();
    });
    like.addEventListener("click", () => r.run(async () => {
      const on = like.getAttribute("aria-pressed") !== "true";
      showLikes(await api(on ? "PUT" : "DELETE", `/api/v1/media/${enc(id)}/likes`));
    }));
    document.getElementById("comment-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const text = document.getElementById("comment-body");
      r.run(async () => {
        await api("POST", `/api/v1/media/${enc(id)}/comments`, { body: text.value });
        text.value = "";
        await loadComments();
      });
    });
    enabled?.addEventListener("change", () => r.run(async () => {
      await api("PUT", `/api/v1/media/${enc(id)}/comments/settings`, { enabled: enabled.checked });
      await loadComments();
    }));
  }
})();
