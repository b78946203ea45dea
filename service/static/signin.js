// Sign-in page: sign in, register (a mail with a link or code follows), or finish a registration
// with that code; then show the session token.
"use strict";

const TOKEN_KEY = "realcheck.token";
let mode = "login";
const $ = (id) => document.getElementById(id);

const SUBMIT = { login: "Sign in", register: "Create account", confirm: "Confirm and sign in" };

function setMode(next) {
  mode = next;
  $("tab-login").setAttribute("aria-selected", String(mode === "login"));
  $("tab-register").setAttribute("aria-selected", String(mode === "register"));
  $("auth-submit").textContent = SUBMIT[mode];
  // Registering chooses a password; confirming types the one chosen then.
  $("password").setAttribute("autocomplete", mode === "login" ? "current-password" : "new-password");
  $("password-hint").classList.toggle("hidden", mode !== "register");
  $("email-field").classList.toggle("hidden", mode === "confirm");
  $("email").required = mode !== "confirm";
  $("code-field").classList.toggle("hidden", mode !== "confirm");
  $("code").required = mode === "confirm";
  $("confirm-intro").classList.toggle("hidden", mode !== "confirm");
  $("have-code").classList.toggle("hidden", mode === "confirm");
  $("auth-error").classList.add("hidden");
}
$("tab-login").addEventListener("click", () => { $("auth-notice").classList.add("hidden"); setMode("login"); });
$("tab-register").addEventListener("click", () => { $("auth-notice").classList.add("hidden"); setMode("register"); });
$("have-code").addEventListener("click", () => { setMode("confirm"); $("code").focus(); });

function showToken(token, user, expiresIn) {
  localStorage.setItem(TOKEN_KEY, token);
  $("token").value = token;
  // The Realcheck extension, when installed and pointed at this service, takes the token from here.
  $("token").setAttribute("data-realcheck-token", token);
  $("welcome").textContent = user ? `Signed in as ${user.email} (${user.role}).` : "Signed in.";
  $("expires").textContent = expiresIn
    ? `The token is valid for ${Math.round(expiresIn / 86400)} days; sign in again for a new one.` : "";
  $("auth-card").classList.add("hidden");
  $("token-card").classList.remove("hidden");
}

function request() {
  const password = $("password").value;
  if (mode === "confirm") return ["/v1/auth/confirm", { code: $("code").value.trim(), password }];
  return [mode === "login" ? "/v1/auth/login" : "/v1/auth/register", { email: $("email").value, password }];
}

$("auth-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const err = $("auth-error");
  err.classList.add("hidden");
  $("auth-notice").classList.add("hidden");
  $("auth-submit").disabled = true;
  try {
    const [path, payload] = request();
    const resp = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
    });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(body.message || `HTTP ${resp.status}`);
    $("password").value = "";
    if (resp.status === 202) { // registration asked for: the mail tells the rest
      $("auth-notice").textContent = body.message;
      $("auth-notice").classList.remove("hidden");
      setMode("login");
      return;
    }
    showToken(body.token, body.user, body.expires_in);
  } catch (ex) {
    err.textContent = ex.message;
    err.classList.remove("hidden");
  } finally {
    $("auth-submit").disabled = false;
  }
});

$("copy").addEventListener("click", async () => {
  const box = $("token");
  try {
    await navigator.clipboard.writeText(box.value);
  } catch {
    box.select();
    document.execCommand("copy");
  }
  $("copied").classList.remove("hidden");
  setTimeout(() => $("copied").classList.add("hidden"), 2500);
});

$("signout").addEventListener("click", () => {
  localStorage.removeItem(TOKEN_KEY);
  $("token").value = "";
  $("token").removeAttribute("data-realcheck-token");
  $("token-card").classList.add("hidden");
  $("auth-form").reset();
  setMode("login"); // whoever signs in next has an account already, most likely
  $("auth-card").classList.remove("hidden");
  $("email").focus();
});

// The link in the registration mail: /signin#confirm=<code> (opened fresh, or in this tab). The
// code is taken into the form and dropped from the address bar (and so from the history).
function takeLink() {
  const link = /^#confirm=([A-Za-z0-9_-]{1,200})$/.exec(location.hash);
  if (!link) return;
  $("code").value = link[1];
  history.replaceState(null, "", location.pathname);
  $("auth-notice").classList.add("hidden");
  $("token-card").classList.add("hidden");
  $("auth-card").classList.remove("hidden");
  setMode("confirm");
  $("password").focus();
}
window.addEventListener("hashchange", takeLink);
takeLink();
