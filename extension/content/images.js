// Checking images: one image at a time through the worker (pending badge, then the verdict or
// the error), the context menu's image, and the page's summary for the popup.
(() => {
  const R = globalThis.realcheckPage;
  if (R.parts.has("images")) return;
  R.parts.add("images");
  const {tracked} = R;
  let summaryTimer = 0;

  const MAX_BYTES = 20 * 1024 * 1024;

  const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");

  function dataUrlOf(blob) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    });
  }

  /**
   * The image's bytes and hash when the page can read them itself: blob: URLs and images of the
   * page's own origin (from the page's cache, with its cookies). Null otherwise (another
   * origin, or no crypto.subtle on a plain-http page): then the worker downloads the image.
   */
  async function readHere(src) {
    const url = new URL(src, location.href);
    if (url.protocol !== "blob:" && url.origin !== location.origin) return null;
    if (!globalThis.crypto?.subtle) return null;
    const resp = await fetch(src, {credentials: "include", cache: "force-cache"});
    if (!resp.ok) return null;
    const blob = await resp.blob();
    if (!blob.size || blob.size > MAX_BYTES) return null;
    return {blob, sha256: hex(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()))};
  }

  /** The worker's answer for one image, by the shortest path: a hash when the page has the
   * bytes (the bytes follow only if the service never saw the image), else the URL. */
  async function ask(src, kind) {
    const own = await readHere(src).catch(() => null);
    if (!own) {
      // The worker cannot read the page's blob: URLs: those cross as data: URLs.
      const sendable = src.startsWith("blob:") ? await dataUrlOf(await (await fetch(src)).blob()) : src;
      return R.send({type: "realcheck:check", src: sendable, kind});
    }
    const base = {type: "realcheck:check-hashed", sha256: own.sha256, kind,
                  src: src.startsWith("blob:") ? "" : src};
    const answer = await R.send(base);
    if (!answer.ok || answer.check) return answer;
    return R.send({...base, dataUrl: await dataUrlOf(own.blob)});
  }

  /** Checks one image now: pending badge, then the verdict or the error. */
  R.checkImage = (img, kind) => {
    R.unwatch?.(img);
    const rec = {state: "pending", src: R.currentSrc(img), check: null, error: null, badge: null, heatmap: null};
    tracked.set(img, rec);
    R.show(img, rec);
    R.summarize();
    rec.done = (async () => {
      let answer;
      try {
        answer = await ask(rec.src, kind);
      } catch {
        answer = {ok: false, error: {code: "image_unavailable", message: "The image could not be read"}};
      }
      if (tracked.get(img) !== rec) return rec; // its src changed meanwhile
      if (!answer.ok && answer.error.code === "scanning_off") {
        R.forget(img); // scanning was turned off while it waited: leave no trace
        R.watch?.(img);
        return rec;
      }
      if (answer.ok) Object.assign(rec, {state: answer.state, check: answer.check, thresholds: answer.thresholds});
      else Object.assign(rec, {state: "error", error: answer.error});
      R.show(img, rec);
      R.summarize();
      if (R.panelImage() === img) R.renderPanel();
      return rec;
    })();
    return rec;
  };

  R.recheck = (img, kind) => {
    const open = R.panelImage() === img;
    R.forget(img);
    const rec = R.checkImage(img, kind);
    if (open) R.openPanel(img);
    return rec;
  };

  /** Right-click → "Check image with Realcheck" on the image at srcUrl. */
  R.menuCheck = async (srcUrl) => {
    const imgs = [...document.images].filter((i) => R.currentSrc(i) === srcUrl || i.src === srcUrl);
    const img = imgs[0];
    if (!img) return {ok: false, found: 0, error: "the image is not an <img> of this page"};
    let rec = tracked.get(img);
    if (!rec || rec.state === "error" || rec.src !== R.currentSrc(img)) {
      R.forget(img);
      rec = R.checkImage(img, "menu");
    }
    R.openPanel(img);
    await rec.done;
    return {ok: true, found: imgs.length, state: tracked.get(img)?.state};
  };

  R.summary = () => {
    const counts = {checked: 0, real: 0, fake: 0, uncertain: 0, no_face: 0, pending: 0, error: 0};
    for (const rec of tracked.values()) counts[rec.state] += 1;
    counts.checked = counts.real + counts.fake + counts.uncertain + counts.no_face;
    return {...counts, scanning: R.config.scan, servicePage: R.config.servicePage};
  };

  R.summarize = () => {
    clearTimeout(summaryTimer);
    summaryTimer = setTimeout(() => R.send({type: "realcheck:summary", summary: R.summary()}), 300);
  };
})();
