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

let service = null; // the service's thresholds, from its /health

function fill(settings) {
  for (const key of FIELDS) {
    const input = form.elements[key];
    if (input.type === "checkbox") input.checked = Boolean(settings[key]);
    else input.value = settings[key] == null ? "" : String(settings[key]);
  }
  fillThresholds(settings);
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

/** With the service's thresholds on (or no own ones yet), the fields show the service's. */
function fillThresholds(settings) {
  const useService = form.elements.useServiceThresholds.checked;
  if (service && (useService || settings?.fakeAt == null)) {
    form.elements.fakeAt.value = String(service.fake_from);
    form.elements.realAt.value = String(service.real_below);
  }
}

function toggleThresholds() {
  const own = form.elements.useServiceThresholds.checked;
  form.elements.fakeAt.disabled = own;
  form.elements.realAt.disabled = own;
}

async function loadServiceThresholds() {
  const el = document.getElementById("service-thresholds");
  const answer = await chrome.runtime.sendMessage({type: "realcheck:thresholds"});
  service = answer?.ok ? answer.thresholds : null;
  el.textContent = service
    ? `The service's thresholds: FAKE from P(fake) ${service.fake_from}, REAL below ${service.real_below}, UNSURE between (the REAL/FAKE label splits at ${service.label_threshold}).`
    : "The service's thresholds are not known: the service cannot be reached.";
  el.dataset.state = service ? "ok" : "error";
  fillThresholds(await getSettings());
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
  if (values.useServiceThresholds && service && values.fakeAt === service.fake_from
      && values.realAt === service.real_below) {
    values.fakeAt = values.realAt = null; // still the service's: follow it when it changes
  }
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

getSettings().then(fill).then(loadServiceThresholds);
chrome.storage.onChanged.addListener((changes) => { if (changes.serviceUrl) loadServiceThresholds(); });
