// The toolbar popup: this page's summary, the scan toggles, and whether the service accepts us.
// Opened as a page, `?tabId=<id>` picks the tab it describes (used by the tests).

import {getSettings, isServiceOrigin, setSettings, setSiteScanning, siteOf} from "../lib/settings.js";

const $ = (id) => document.getElementById(id);

async function targetTab() {
  const param = new URLSearchParams(location.search).get("tabId");
  if (param) return chrome.tabs.get(Number(param));
  const [tab] = await chrome.tabs.query({active: true, currentWindow: true});
  return tab;
}

async function showSummary(tab) {
  let s = null;
  try {
    s = await chrome.tabs.sendMessage(tab.id, {type: "realcheck:get-summary"}, {frameId: 0});
  } catch {
    // no content script here (a browser page, or the page is still loading)
  }
  for (const key of ["checked", "fake", "uncertain"]) $(key).textContent = String(s?.[key] ?? 0);
  const notes = [];
  if (!s) notes.push("Realcheck does not run on this page.");
  else {
    if (s.pending) notes.push(`${s.pending} being checked`);
    if (s.error) notes.push(`${s.error} could not be checked (hover their grey badges)`);
    if (!s.scanning && !s.checked && !s.pending) notes.push("Scanning is off on this page.");
  }
  $("summary-note").textContent = notes.join(" · ");
}

async function showToggles(site) {
  const settings = await getSettings();
  const service = Boolean(site) && isServiceOrigin(settings, site);
  $("site").textContent = site || "this page";
  $("service-note").hidden = !service;
  $("scan-site").disabled = !site || service;
  $("scan-site").checked = Boolean(site) && !service && settings.scanSites.includes(site);
  $("scan-all").checked = settings.scanAll;
}

async function showAccount() {
  const el = $("account");
  const status = await chrome.runtime.sendMessage({type: "realcheck:status"})
    .catch((e) => ({reachable: false, message: `The extension failed: ${e.message}`}));
  const state = status.signedIn ? "signed-in" : !status.reachable ? "unreachable"
    : status.code === "token_rejected" ? "rejected" : "signed-out";
  el.dataset.state = state;
  el.textContent = status.message;
}

async function main() {
  const tab = await targetTab();
  const site = siteOf(tab?.url || "");
  await showToggles(site);
  $("scan-site").addEventListener("change", async (e) => {
    await setSiteScanning(site, e.target.checked);
  });
  $("scan-all").addEventListener("change", async (e) => {
    await setSettings({scanAll: e.target.checked});
  });
  $("open-options").addEventListener("click", () => chrome.runtime.openOptionsPage());
  chrome.storage.onChanged.addListener(() => showToggles(site));
  if (tab) {
    showSummary(tab);
    setInterval(() => showSummary(tab), 1000);
  }
  await showAccount();
}

main();
