// One image from its URL to a check: fetch the bytes, hash them, ask the service for a known
// result (batched with the page's other images), and send the pixels only when it has none.
// Results are remembered for a while and concurrent requests for the same image share one run.

import {Api, RealcheckError, signedOut} from "./api.js";
import {sha256Hex} from "./hash.js";
import {fetchImage, sourceUrl} from "./images.js";
import {LookupBatcher} from "./lookups.js";
import {Queue} from "./queue.js";
import {getSettings, scanningEnabled} from "./settings.js";

const CACHE_TTL_MS = 10 * 60 * 1000;
const CACHE_MAX = 500;
const FETCHES_AT_ONCE = 6; // image downloads (from the page's sites, not the service)

export class Checker {
  constructor() {
    this.queue = new Queue();             // requests to the service, `concurrency` at once
    this.fetches = new Queue(FETCHES_AT_ONCE);
    this.lookups = new LookupBatcher((api, take, pageUrl, urgent) =>
      this.queue.push(() => api.lookupMany(take(), pageUrl), {urgent, meta: {kind: "lookup"}}));
    this.cache = new Map(); // key -> {check, at}
    this.inflight = new Map(); // key -> Promise<check>
  }

  clearCache() {
    this.cache.clear();
  }

  /**
   * The check for the image at `src` on `pageUrl`. `kind` "scan" (automatic) runs only while
   * scanning is on for the page's site, re-checked when its turn comes; "menu" is a user's click
   * and jumps the queue.
   */
  async check(src, {pageUrl, kind = "scan"}) {
    const settings = await getSettings();
    if (!settings.token) throw signedOut();
    const key = `${settings.serviceUrl}\n${settings.token}\n${src}`;
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < CACHE_TTL_MS) return hit.check;
    let run = this.inflight.get(key);
    if (!run) {
      this.queue.setConcurrency(settings.concurrency);
      run = this.run(src, pageUrl, kind);
      this.inflight.set(key, run);
      run.finally(() => this.inflight.delete(key)).catch(() => {});
    }
    const check = await run;
    this.remember(key, check);
    return check;
  }

  /**
   * The check of an image the page read and hashed itself (blob: and same-origin images: no
   * second download). `bytes` is null at first: only the hash is looked up, and the answer is
   * null when the service does not know the image; the page then sends the bytes.
   */
  async checkHashed(sha, {pageUrl, kind = "scan", bytes = null, type = "", src = ""}) {
    const settings = await getSettings();
    if (!settings.token) throw signedOut();
    const key = `${settings.serviceUrl}\n${settings.token}\nsha256:${sha}`;
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < CACHE_TTL_MS) return hit.check;
    this.queue.setConcurrency(settings.concurrency);
    const urgent = kind === "menu";
    const allowed = async () => {
      if (kind === "scan" && !scanningEnabled(await getSettings(), pageUrl)) throw scanningOff();
    };
    await allowed();
    const api = new Api(settings);
    let check;
    if (!bytes) {
      check = await this.lookups.lookup(api, sha, pageUrl, {urgent});
      if (!check) return null;
    } else {
      if (await sha256Hex(bytes) !== sha) throw new RealcheckError("bad_image", "The image changed while it was read");
      check = await this.queue.push(async () => {
        await allowed();
        return api.upload(bytes, type, {pageUrl, sourceUrl: sourceUrl(src)});
      }, {urgent, meta: {kind, pageUrl}});
    }
    this.remember(key, check);
    return check;
  }

  async run(src, pageUrl, kind) {
    const urgent = kind === "menu";
    const allowed = async () => {
      if (kind === "scan" && !scanningEnabled(await getSettings(), pageUrl)) throw scanningOff();
    };
    await allowed();
    const {bytes, type} = await this.fetches.push(() => fetchImage(src), {urgent});
    await allowed();
    const api = new Api(await getSettings());
    const sha = await sha256Hex(bytes);
    const known = await this.lookups.lookup(api, sha, pageUrl, {urgent});
    if (known) return known;
    return this.queue.push(async () => {
      await allowed();
      return api.upload(bytes, type, {pageUrl, sourceUrl: sourceUrl(src)});
    }, {urgent, meta: {kind, pageUrl}});
  }

  /** Drops waiting automatic scans of pages whose site no longer has scanning on. */
  dropScansNotAllowed(settings) {
    this.queue.drop((meta) => meta.kind === "scan" && !scanningEnabled(settings, meta.pageUrl), scanningOff());
  }

  remember(key, check) {
    this.cache.delete(key);
    this.cache.set(key, {check, at: Date.now()});
    while (this.cache.size > CACHE_MAX) this.cache.delete(this.cache.keys().next().value);
  }
}

export function scanningOff() {
  return new RealcheckError("scanning_off", "Scanning is off for this site");
}
