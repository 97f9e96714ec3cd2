// Framehouse web UI, the sign-in helpers that need a script: finishing an OpenID sign-in
// (its one-time code arrives in the URL fragment, which only a script can read) and the
// password reset page (request a link; or, opened from one, set the new password).
"use strict";
(function () {
  const fragment = new URLSearchParams(location.hash.slice(1));
  // Keep secrets out of the history and of anything the page later shares.
  if (location.hash) history.replaceState(null, "", location.pathname);

  const oidc = document.getElementById("oidc-form");
  if (oidc) {
    const code = fragment.get("code");
    if (code) {
      document.getElementById("oidc-code").value = code;
      oidc.submit();
    } else {
      document.getElementById("oidc-status").textContent =
        "This page finishes a sign-in with a provider; start one from the sign-in page.";
    }
  }

  const reset = document.getElementById("reset");
  if (reset) {
    const { api, section } = window.framehouse;
    const page = section("reset");
    let token = fragment.get("token");
    const ask = document.getElementById("reset-request");
    const confirm = document.getElementById("reset-confirm");
    const opened = () => {
      if (!token) return;
      ask.hidden = true;
      confirm.hidden = false;
    };
    opened();
    // A link opened in the tab that already shows this page changes only the fragment.
    window.addEventListener("hashchange", () => {
      const next = new URLSearchParams(location.hash.slice(1)).get("token");
      history.replaceState(null, "", location.pathname);
      if (next) {
        token = next;
        opened();
      }
    });
    ask.addEventListener("submit", (e) => {
      e.preventDefault();
      page.run(async () => {
        await api("POST", "/api/v1/auth/password-reset", { login: ask.elements.login.value.trim() });
        page.done("If an account matches, a reset link is on its way. Open it to choose a new password.");
      });
    });
    confirm.addEventListener("submit", (e) => {
      e.preventDefault();
      page.run(async () => {
        const next = confirm.elements.new_password.value;
        if (next !== confirm.elements.repeat_password.value) throw new Error("the two passwords differ");
        await api("POST", "/api/v1/auth/password-reset/confirm", { token, new_password: next });
        confirm.hidden = true;
        page.done("Your password is set. Sign in with it now.");
      });
    });
  }
})();
