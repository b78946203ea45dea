// The extension's background: the context menu, messages from pages, the popup and the
// options, and every request to the Realcheck service (queued, see lib/checker.js).

import {Api, RealcheckError, UNREACHABLE, signedOut, tokenClaims} from "./lib/api.js";
import {Checker} from "./lib/checker.js";
import {getSettings, isServiceOrigin, scanningEnabled, serviceBase, setSettings} from "./lib/settings.js";
import {badgeState} from "./lib/verdict.js";
import {TAB_SHOTS_PER_S, captureTabFrame, framesFromDataUrls, samplingPlan} from "./lib/video.js";

const MENU_ID = "realcheck-check-image";
const VIDEO_MENU_ID = "realcheck-check-video";
const checker = new Checker();

chrome.runtime.onInstalled.addListener(async () => {
  await chrome.contextMenus.removeAll(); // an update keeps the old entries
  chrome.contextMenus.create({id: MENU_ID, title: "Check image with Realcheck", contexts: ["image"]});
  chrome.contextMenus.create({id: VIDEO_MENU_ID, title: "Check video with Realcheck", contexts: ["video"]});
});

/**
 * Right-click → "Check image with Realcheck" / "Check video with Realcheck": the page's script
 * badges the image or video and opens the panel. A video without an address (a MediaStream)
 * is the one last right-clicked.
 */
async function onMenuClick(info, tab) {
  const video = info.menuItemId === VIDEO_MENU_ID;
  if ((info.menuItemId !== MENU_ID && !video) || !tab?.id || (!info.srcUrl && !video)) return null;
  const target = {frameId: info.frameId ?? 0};
  const message = {type: video ? "realcheck:menu-check-video" : "realcheck:menu-check", srcUrl: info.srcUrl || ""};
  try {
    return await chrome.tabs.sendMessage(tab.id, message, target);
  } catch {
    // No content script in that frame yet (opened before install, or an iframe): add it.
    const files = chrome.runtime.getManifest().content_scripts[0].js;
    await chrome.scripting.executeScript({target: {tabId: tab.id, frameIds: [target.frameId]}, files});
    return chrome.tabs.sendMessage(tab.id, message, target);
  }
}
chrome.contextMenus.onClicked.addListener((info, tab) => {
  onMenuClick(info, tab).catch((e) => console.warn("Realcheck: context menu check failed", e));
});

const pageUrlOf = (sender) => sender.tab?.url || sender.url;

function isServicePage(settings, url, path) {
  try {
    const page = new URL(url);
    return page.origin === new URL(serviceBase(settings)).origin && page.pathname.startsWith(path);
  } catch {
    return false;
  }
}

/** The service's thresholds ({fake_from, real_below, label_threshold}), from its /health,
 * remembered for a few minutes per service; null when it cannot be reached. */
const thresholdsCache = new Map(); // base -> {at, value}
async function serviceThresholds(settings) {
  const base = serviceBase(settings);
  const hit = thresholdsCache.get(base);
  if (hit && Date.now() - hit.at < 5 * 60 * 1000) return hit.value;
  try {
    const value = (await new Api(settings).health())?.thresholds ?? null;
    thresholdsCache.set(base, {at: Date.now(), value});
    return value;
  } catch {
    return null;
  }
}

/** Every message type the worker answers: (message, sender) -> Promise<object>. */
const handlers = {
  async "realcheck:page-config"(_msg, sender) {
    const settings = await getSettings();
    const url = pageUrlOf(sender);
    return {scan: scanningEnabled(settings, url), minSize: settings.minSize,
            servicePage: isServiceOrigin(settings, url),
            signinPage: isServicePage(settings, sender.url, "/signin")};
  },

  async "realcheck:check"(msg, sender) {
    const check = await checker.check(String(msg.src), {pageUrl: pageUrlOf(sender), kind: msg.kind === "menu" ? "menu" : "scan"});
    const settings = await getSettings();
    return {check, state: badgeState(check, settings), thresholds: await serviceThresholds(settings)};
  },

  /**
   * An image the page read itself: first its hash alone ({check: null} when the service does
   * not know it), then, only if needed, its bytes as a data: URL (messages carry JSON only).
   */
  async "realcheck:check-hashed"(msg, sender) {
    const sha = String(msg.sha256);
    if (!/^[0-9a-f]{64}$/.test(sha)) throw new RealcheckError("bad_sha256", "not a SHA-256");
    let bytes = null, type = "";
    if (msg.dataUrl) {
      if (!String(msg.dataUrl).startsWith("data:")) throw new RealcheckError("bad_url", "not a data: URL");
      const resp = await fetch(String(msg.dataUrl));
      bytes = await resp.arrayBuffer();
      type = (resp.headers.get("Content-Type") || "").split(";")[0];
    }
    const check = await checker.checkHashed(sha, {pageUrl: pageUrlOf(sender), bytes, type,
      kind: msg.kind === "menu" ? "menu" : "scan", src: String(msg.src || "")});
    if (!check) return {check: null};
    const settings = await getSettings();
    return {check, state: badgeState(check, settings), thresholds: await serviceThresholds(settings)};
  },

  /** Makes (or revokes, with `revoke`) the share link of one of the user's checks. */
  async "realcheck:share"(msg) {
    const id = String(msg.checkId);
    if (!/^[\w-]+$/.test(id)) throw new RealcheckError("bad_check", "not a check id");
    const api = new Api(await getSettings());
    return msg.revoke ? await api.unshare(id) : await api.share(id);
  },

  async "realcheck:thresholds"() {
    return {thresholds: await serviceThresholds(await getSettings())};
  },

  /** A check's heatmap (a video's: ?track=N for a track's decisive frame) or a video frame's
   * thumbnail, as a data: URL. */
  async "realcheck:heatmap"(msg) {
    const path = String(msg.path);
    if (!/^\/v1\/checks\/[\w-]+\/(heatmap\.png(\?track=\d{1,4})?|frames\/\d{1,5}\.jpg)$/.test(path)) {
      throw new RealcheckError("bad_url", "not a heatmap or frame URL");
    }
    return {dataUrl: await new Api(await getSettings()).image(path)};
  },

  /** How to capture a streamed video: the service's sampling rate and limits, the user's length. */
  async "realcheck:video-plan"() {
    const settings = await getSettings();
    if (!settings.token) throw signedOut();
    const plan = samplingPlan(await new Api(settings).health(), settings);
    return {plan, tabShotsPerSecond: TAB_SHOTS_PER_S};
  },

  /** A video played from a plain web address: the service fetches it. {job} or, known, {check}. */
  async "realcheck:video-url"(msg, sender) {
    const url = String(msg.url);
    if (!/^https?:\/\//i.test(url) || url.length > 2048) throw new RealcheckError("bad_url", "not a web address");
    const settings = await getSettings();
    return withState(await new Api(settings).checkVideoUrl(url, pageUrlOf(sender)), settings);
  },

  /** A screenshot of the sender's tab cropped to its video's box ({rect, view} in CSS px). */
  async "realcheck:capture-tab"(msg, sender) {
    if (!sender.tab) throw new RealcheckError("capture_failed", "only a tab's page can be captured");
    const num = (v) => Number.isFinite(Number(v)) ? Number(v) : NaN;
    const rect = {left: num(msg.rect?.left), top: num(msg.rect?.top), width: num(msg.rect?.width), height: num(msg.rect?.height)};
    const view = {width: num(msg.view?.width), height: num(msg.view?.height)};
    if ([...Object.values(rect), ...Object.values(view)].some(Number.isNaN)) throw new RealcheckError("bad_rect", "not a box");
    const maxSide = Math.max(16, Math.min(4096, num(msg.maxSide) || 1280));
    const maxPixels = Math.max(256, num(msg.maxPixels) || Infinity);
    const [front] = await chrome.tabs.query({active: true, windowId: sender.tab.windowId});
    if (front?.id !== sender.tab.id) throw new RealcheckError("video_hidden", "Keep the video's tab in front while it is captured");
    return {dataUrl: await captureTabFrame(sender.tab.windowId, rect, view, maxSide, maxPixels)};
  },

  /** Frames captured from a playing video, sent as one frame-sequence check: {job} or {check}. */
  async "realcheck:video-frames"(msg, sender) {
    const settings = await getSettings();
    const api = new Api(settings);
    const plan = samplingPlan(await api.health(), settings);
    const fps = Number(msg.fps);
    if (!(fps > 0 && fps <= plan.fps)) throw new RealcheckError("bad_fps", "frames must be taken at most at the service's rate");
    const capture = msg.capture === "tab" ? "tab" : "canvas";
    const frames = await framesFromDataUrls(msg.frames, plan.maxFrames);
    const source = /^https?:\/\//i.test(String(msg.src)) && String(msg.src).length <= 2048 ? String(msg.src) : undefined;
    return withState(await api.checkFrames(frames, {fps, capture, pageUrl: pageUrlOf(sender), sourceUrl: source}), settings);
  },

  /** A video check's job now; when done, its check with the badge state. */
  async "realcheck:job"(msg) {
    const settings = await getSettings();
    return withState({job: await new Api(settings).job(jobId(msg.id)), check: null}, settings);
  },

  async "realcheck:job-cancel"(msg) {
    const settings = await getSettings();
    return withState({job: await new Api(settings).cancelJob(jobId(msg.id)), check: null}, settings);
  },

  async "realcheck:report"(msg, sender) {
    const id = String(msg.checkId);
    if (!/^[\w-]+$/.test(id)) throw new RealcheckError("bad_check", "not a check id");
    const note = String(msg.note ?? "").slice(0, 2000);
    return await new Api(await getSettings()).report(id, note, pageUrlOf(sender));
  },

  async "realcheck:summary"(msg, sender) {
    const tabId = sender.tab?.id;
    if (tabId !== undefined) {
      const fake = Number(msg.summary?.fake) || 0;
      await chrome.action.setBadgeBackgroundColor({tabId, color: "#b91c1c"});
      await chrome.action.setBadgeText({tabId, text: fake ? String(fake) : ""});
    }
    return {};
  },

  /** A token shown by the service's own sign-in page (only that origin may hand one over). */
  async "realcheck:signin-token"(msg, sender) {
    const settings = await getSettings();
    if (!isServicePage(settings, sender.url, "/signin")) {
      throw new RealcheckError("forbidden", "only the configured service's sign-in page may set the token");
    }
    const token = String(msg.token).trim();
    if (!/^[\w-]+\.[\w-]+\.[\w-]*$/.test(token)) throw new RealcheckError("bad_token", "that is not a session token");
    await new Api({...settings, token}).verifyToken();
    await setSettings({token});
    return {claims: tokenClaims(token)};
  },

  /** For the popup and options: can we reach the service, and does it accept the token? */
  async "realcheck:status"() {
    const settings = await getSettings();
    const api = new Api(settings);
    const base = serviceBase(settings);
    const claims = settings.token ? tokenClaims(settings.token) : null;
    const status = {service: base, reachable: false, signedIn: false, user: claims?.sub ?? null,
                    email: claims?.email ?? null, role: claims?.role ?? null};
    try {
      const health = await api.health();
      status.reachable = true;
      status.trained = health?.trained ?? null;
      status.thresholds = health?.thresholds ?? null;
      if (!settings.token) return {...status, message: "Not signed in: add your token in the options"};
      await api.verifyToken();
      return {...status, signedIn: true, message: `Signed in as ${status.email || status.user}`};
    } catch (e) {
      if (e.code === "unreachable") return {...status, message: `${UNREACHABLE} at ${base}`};
      return {...status, reachable: true, message: e.message, code: e.code};
    }
  },
};

chrome.runtime.onMessage.addListener((msg, sender, sendResponse) => {
  const handler = handlers[msg?.type];
  if (!handler) return false;
  handler(msg, sender).then(
    (value) => sendResponse({ok: true, ...value}),
    (e) => sendResponse({ok: false, error: e instanceof RealcheckError ? e.toJSON()
      : {code: "internal", message: String(e?.message || e)}}),
  );
  return true; // the answer comes asynchronously
});

chrome.storage.onChanged.addListener(async (changes, area) => {
  if (area === "local" && (changes.scanAll || changes.scanSites)) checker.dropScansNotAllowed(await getSettings());
});

function jobId(value) {
  const id = String(value);
  if (!/^[\w-]{1,80}$/.test(id)) throw new RealcheckError("bad_job", "not a job id");
  return id;
}

/** A video answer ({job, check}) with the badge state and the thresholds once there is a check. */
async function withState({job, check}, settings) {
  const done = check ?? (job?.status === "done" ? job.check : null);
  if (!done) return {job, check: null};
  return {job, check: done, state: badgeState(done, settings), thresholds: await serviceThresholds(settings)};
}

// For tests and debugging from the worker's console (the native menu cannot be clicked headless).
globalThis.realcheck = {onMenuClick, checker, MENU_ID, VIDEO_MENU_ID};
