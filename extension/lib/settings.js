// The user's settings in chrome.storage.local, with their defaults and validation.

export const DEFAULTS = Object.freeze({
  serviceUrl: "http://127.0.0.1:8080",
  token: "",
  scanAll: false,
  scanSites: [],          // origins (scheme://host:port) where automatic scanning is on
  minSize: 96,            // images smaller than this (CSS px, either side) are not scanned
  useServiceThresholds: true,
  fakeAt: null,           // own thresholds on P(fake), used when useServiceThresholds is off;
  realAt: null,           // null until set: the options page starts from the service's
  concurrency: 4,         // requests to the service at once
  videoSeconds: 10,       // a streamed video is captured for at most this long (playing time)
});

export const LIMITS = Object.freeze({
  minSize: [16, 4096, "The minimum image size"],
  concurrency: [1, 8, "Requests at once"],
  videoSeconds: [1, 120, "The video capture length"],
});

export async function getSettings() {
  const stored = await chrome.storage.local.get(Object.keys(DEFAULTS));
  return {...DEFAULTS, ...stored};
}

export function setSettings(values) {
  return chrome.storage.local.set(values);
}

/** The service's base URL without a trailing slash. */
export function serviceBase(settings) {
  return String(settings.serviceUrl || DEFAULTS.serviceUrl).replace(/\/+$/, "");
}

/**
 * The origin (scheme, host and port) whose scan toggle governs a page, or "" for pages that
 * are never scanned. Per origin, so a toggle for one port does not cover another service there.
 */
export function siteOf(pageUrl) {
  try {
    const url = new URL(pageUrl);
    return url.protocol === "http:" || url.protocol === "https:" ? url.origin : "";
  } catch {
    return "";
  }
}

/** Whether the page is on the Realcheck service itself (never scanned: its dashboard shows
 * images and heatmaps of the moderation queue). */
export function isServiceOrigin(settings, pageUrl) {
  try {
    return new URL(pageUrl).origin === new URL(serviceBase(settings)).origin;
  } catch {
    return false;
  }
}

export function scanningEnabled(settings, pageUrl) {
  const site = siteOf(pageUrl);
  return Boolean(site) && !isServiceOrigin(settings, pageUrl)
    && (settings.scanAll || settings.scanSites.includes(site));
}

export async function setSiteScanning(site, on) {
  const {scanSites} = await getSettings();
  const sites = new Set(scanSites);
  if (on) sites.add(site); else sites.delete(site);
  await setSettings({scanSites: [...sites].sort()});
}

/** Checks the options form's values; returns {values} or {error} naming the first bad field. */
export function validate(input) {
  const values = {};
  let url;
  try {
    url = new URL(String(input.serviceUrl).trim());
  } catch {
    return {error: "The service URL is not a valid URL (e.g. http://127.0.0.1:8080)."};
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return {error: "The service URL must start with http:// or https://."};
  }
  values.serviceUrl = url.origin + url.pathname.replace(/\/+$/, "");
  const token = String(input.token ?? "").trim().replace(/^Bearer\s+/i, "");
  if (token && !/^[\w-]+\.[\w-]+\.[\w-]*$/.test(token)) {
    return {error: "The token does not look like a session token (three dot-separated parts)."};
  }
  values.token = token;
  for (const [key, [lo, hi, name]] of Object.entries(LIMITS)) {
    const n = Number(input[key] ?? DEFAULTS[key]); // a field the form lacks keeps its default
    if (!Number.isInteger(n) || n < lo || n > hi) return {error: `${name} must be a whole number ${lo}–${hi}.`};
    values[key] = n;
  }
  values.useServiceThresholds = Boolean(input.useServiceThresholds);
  if (!values.useServiceThresholds || (input.fakeAt !== "" && input.fakeAt != null)) {
    const fakeAt = Number(input.fakeAt), realAt = Number(input.realAt);
    if (input.fakeAt === "" || input.realAt === "" || input.fakeAt == null || input.realAt == null
        || !(fakeAt > 0 && fakeAt <= 1 && realAt >= 0 && realAt < 1 && realAt <= fakeAt)) {
      return {error: "Thresholds must satisfy 0 ≤ REAL below ≤ FAKE from ≤ 1."};
    }
    values.fakeAt = fakeAt;
    values.realAt = realAt;
  }
  values.scanAll = Boolean(input.scanAll);
  return {values};
}
