// The Realcheck service's HTTP API, with every failure turned into a RealcheckError that
// carries a stable code and a message fit to show the user.

import {serviceBase} from "./settings.js";

export const UNREACHABLE = "Realcheck service unreachable";
const MAX_RETRIES_429 = 3;

export class RealcheckError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.code = code;
    this.status = status;
  }

  toJSON() {
    return {code: this.code, message: this.message, status: this.status};
  }
}

export function signedOut() {
  return new RealcheckError("signed_out", "Not signed in: add your Realcheck token in the extension's options");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The error for a non-2xx answer, from the service's JSON {error, message}. */
function errorFor(status, body) {
  const code = body?.error || `http_${status}`;
  const detail = body?.message || `HTTP ${status}`;
  if (status === 401) {
    return new RealcheckError("token_rejected",
      `Token rejected by the service (${detail}): paste a new one in the Realcheck options`, status);
  }
  if (status === 403) return new RealcheckError(code, `Not allowed: ${detail}`, status);
  if (status === 413) {
    const what = code.startsWith("video") || code === "too_many_frames" ? "Video" : "Image";
    return new RealcheckError(code, `${what} too large for the service: ${detail}`, status);
  }
  if (status === 429) return new RealcheckError(code, "The service is busy (rate limited): try again later", status);
  if (status >= 500) return new RealcheckError(code, `The Realcheck service failed (${detail})`, status);
  return new RealcheckError(code, detail, status);
}

/** The page an image was seen on, only when it is a web page (the service refuses other schemes). */
const webPage = (url) => (typeof url === "string" && /^https?:\/\//i.test(url) && url.length <= 2048 ? url : undefined);

export class Api {
  constructor(settings) {
    this.base = serviceBase(settings);
    this.token = settings.token;
  }

  /** A URL on the service; refuses anything that would leave it (the token goes along). */
  url(path) {
    const url = new URL(path, this.base + "/");
    if (url.origin !== new URL(this.base).origin) throw new RealcheckError("bad_url", "not a service URL");
    return url;
  }

  async fetch(path, {method = "GET", body, headers = {}, auth = true} = {}) {
    const all = {...headers};
    if (auth) {
      if (!this.token) throw signedOut();
      all.Authorization = `Bearer ${this.token}`;
    }
    for (let attempt = 0; ; attempt += 1) {
      let resp;
      try {
        resp = await fetch(this.url(path), {method, body, headers: all, credentials: "omit"});
      } catch (e) {
        if (e instanceof RealcheckError) throw e;
        throw new RealcheckError("unreachable", UNREACHABLE);
      }
      if (resp.ok) return resp;
      const data = await resp.json().catch(() => null);
      if (resp.status === 429 && attempt < MAX_RETRIES_429) {
        const wait = Number(data?.retry_after_s ?? resp.headers.get("Retry-After") ?? 1);
        await sleep(Math.min(30, Math.max(0.2, wait)) * 1000);
        continue;
      }
      throw errorFor(resp.status, data);
    }
  }

  async json(path, options) {
    return (await this.fetch(path, options)).json();
  }

  health() {
    return this.json("/health", {auth: false});
  }

  /** Whether the service accepts the token (any authenticated read will do). */
  async verifyToken() {
    await this.fetch("/v1/checks?limit=1");
  }

  /** The stored result for an image by hash alone, or null if the service never saw it. */
  async lookup(sha256, pageUrl) {
    const q = new URLSearchParams({sha256});
    if (webPage(pageUrl)) q.set("page_url", pageUrl);
    try {
      return await this.json(`/v1/checks?${q}`);
    } catch (e) {
      if (e.status === 404) return null;
      throw e;
    }
  }

  /** Known results of many images at once: {sha256: check | null}. */
  async lookupMany(hashes, pageUrl) {
    const body = await this.json("/v1/lookups", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({sha256: hashes, page_url: pageUrl || undefined}),
    });
    return body.results || {};
  }

  /** The share link of one of the user's checks (made if it has none): {url, token}. */
  share(checkId) {
    return this.json(`/v1/checks/${encodeURIComponent(checkId)}/share`, {method: "POST"});
  }

  /** Revokes the check's share link. */
  unshare(checkId) {
    return this.json(`/v1/checks/${encodeURIComponent(checkId)}/share`, {method: "DELETE"});
  }

  /** Sends the image's bytes to be scored. */
  upload(bytes, type, {pageUrl, sourceUrl} = {}) {
    const form = new FormData();
    form.append("image", new Blob([bytes], {type: type || "application/octet-stream"}), "image");
    if (webPage(pageUrl)) form.append("page_url", pageUrl);
    if (sourceUrl) form.append("source_url", sourceUrl);
    return this.json("/v1/checks", {method: "POST", body: form});
  }

  /**
   * A video by its web address: the service fetches it (same guard as images). The answer is
   * {job} (202: follow it with job()) or, for a video it already checked, {check}.
   */
  async checkVideoUrl(url, pageUrl) {
    const body = await this.json("/v1/checks", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({url, page_url: webPage(pageUrl)}),
    });
    return jobOrCheck(body);
  }

  /**
   * Frames captured from a playing video, in time order, as one frame-sequence check:
   * `frames` are Blobs (JPEG), `fps` the rate they were taken at, `capture` "canvas" or "tab".
   */
  async checkFrames(frames, {fps, capture, pageUrl, sourceUrl} = {}) {
    const form = new FormData();
    frames.forEach((blob, i) => form.append("frame", blob, `frame-${String(i).padStart(4, "0")}.jpg`));
    form.append("fps", String(fps));
    form.append("capture", capture);
    if (webPage(pageUrl)) form.append("page_url", pageUrl);
    if (sourceUrl) form.append("source_url", sourceUrl);
    return jobOrCheck(await this.json("/v1/checks", {method: "POST", body: form}));
  }

  /** A video check's job: {id, status, progress: {done, total}, check_id, check, error}. */
  async job(id) {
    return (await this.json(`/v1/jobs/${encodeURIComponent(id)}`)).job;
  }

  /** Cancels a job; one that finished meanwhile is answered as it is now. */
  async cancelJob(id) {
    try {
      return (await this.json(`/v1/jobs/${encodeURIComponent(id)}`, {method: "DELETE"})).job;
    } catch (e) {
      if (e.status === 409) return this.job(id);
      throw e;
    }
  }

  /** The check's heatmap as a data: URL the page's panel can show. */
  heatmap(path) {
    return this.image(path);
  }

  /** An image of the service (heatmap, a video frame's thumbnail) as a data: URL. */
  async image(path) {
    const resp = await this.fetch(path);
    return dataUrl(await resp.arrayBuffer(), resp.headers.get("Content-Type") || "image/png");
  }

  /** Tells the moderators a verdict looks wrong. */
  async report(checkId, note, pageUrl) {
    try {
      return await this.json(`/v1/checks/${encodeURIComponent(checkId)}/report`, {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({note, page_url: webPage(pageUrl)}),
      });
    } catch (e) {
      if (e.status === 404) {
        throw new RealcheckError("report_unavailable",
          "This service does not take reports (or no longer knows this check)", 404);
      }
      throw e;
    }
  }
}

/** Bytes as a data: URL (what messages to the page can carry). */
export function dataUrl(buffer, type) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return `data:${type};base64,${btoa(binary)}`;
}

/** A POST /v1/checks answer for a video: {job} while it is being checked, else {check}. */
function jobOrCheck(body) {
  return body?.job ? {job: body.job, check: null} : {job: null, check: body};
}

/** The claims of a JWT, unverified: only for showing who is signed in. */
export function tokenClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch {
    return null;
  }
}
