// Sign-in page: register or sign in with email and password, then show the session token.
"use strict";

const TOKEN_KEY = "realcheck.token";
let mode = "login";
const $ = (id) => document.getElementById(id);

function setMode(next) {
  mode = next;
  $("tab-login").setAttribute("aria-selected", String(mode === "login"));
  $("tab-register").setAttribute("aria-selected", String(mode === "register"));
  $("auth-submit").textContent = mode === "login" ? "Sign in" : "Create account";
  $("password").setAttribute("autocomplete", mode === "login" ? "current-password" : "new-password");
  $("password-hint").classList.toggle("hidden", mode === "login");
  $("auth-error").classList.add("hidden");
}
$("tab-login").addEventListener("click", () => setMode("login"));
$("tab-register").addEventListener("click", () => setMode("register"));

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

$("auth-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const err = $("auth-error");
  err.classList.add("hidden");
  $("auth-submit").disabled = true;
  try {
    const resp = await fetch(mode === "login" ? "/v1/auth/login" : "/v1/auth/register", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: $("email").value, password: $("password").value }),
    });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(body.message || `HTTP ${resp.status}`);
    $("password").value = "";
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
