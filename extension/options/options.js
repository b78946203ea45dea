// The options page: service URL, session token, scanning and thresholds, with a live check of
// whether the service is reachable and accepts the token.

import {DEFAULTS, getSettings, setSettings, setSiteScanning, validate} from "../lib/settings.js";

const form = document.getElementById("form");
const statusEl = document.getElementById("status");
const FIELDS = Object.keys(DEFAULTS).filter((k) => k !== "scanSites");

function say(text, state) {
  statusEl.textContent = text;
  statusEl.dataset.state = state;
}

function fill(settings) {
  for (const key of FIELDS) {
    const input = form.elements[key];
    if (input.type === "checkbox") input.checked = Boolean(settings[key]);
    else input.value = String(settings[key]);
  }
  updateSigninLink();
  toggleThresholds();
  showSites(settings.scanSites);
}

function read() {
  const values = {};
  for (const key of FIELDS) {
    const input = form.elements[key];
    values[key] = input.type === "checkbox" ? input.checked : input.value;
  }
  return values;
}

function updateSigninLink() {
  const link = document.getElementById("signin");
  try {
    link.href = new URL("/signin", form.elements.serviceUrl.value).href;
  } catch {
    link.removeAttribute("href");
  }
}

function toggleThresholds() {
  const own = form.elements.useServiceThresholds.checked;
  form.elements.fakeAt.disabled = own;
  form.elements.realAt.disabled = own;
}

function showSites(sites) {
  const list = document.getElementById("sites");
  list.replaceChildren(...(sites.length ? sites : [null]).map((site) => {
    const li = document.createElement("li");
    if (!site) {
      li.textContent = "(none yet)";
      return li;
    }
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Turn off";
    remove.addEventListener("click", () => setSiteScanning(site, false));
    li.append(site, remove);
    return li;
  }));
}

async function testConnection() {
  say("Contacting the service…", "busy");
  const status = await chrome.runtime.sendMessage({type: "realcheck:status"});
  say(status.message, status.signedIn ? "ok" : "error");
  return status;
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const {values, error} = validate(read());
  if (error) return say(error, "error");
  await setSettings(values);
  fill(await getSettings());
  const status = await testConnection();
  say(`Saved. ${status.message}`, status.signedIn ? "ok" : "error");
});
document.getElementById("test").addEventListener("click", testConnection);
form.elements.serviceUrl.addEventListener("input", updateSigninLink);
form.elements.useServiceThresholds.addEventListener("change", toggleThresholds);
document.getElementById("showToken").addEventListener("change", (e) => {
  form.elements.token.type = e.target.checked ? "text" : "password";
});
chrome.storage.onChanged.addListener(async (changes) => {
  if (changes.scanSites) showSites((await getSettings()).scanSites);
  if (changes.token && document.activeElement !== form.elements.token) form.elements.token.value = changes.token.newValue ?? "";
});

getSettings().then(fill);
