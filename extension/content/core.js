// Realcheck's page scripts (classic content scripts, loaded in the order the manifest lists
// them) share one namespace, `globalThis.realcheckPage`. This part holds what every other part
// uses: messages to the worker, building DOM safely, the shadow-root overlay, and the registry
// of the images being checked. Each part registers itself once, so a second injection (the
// context menu on a tab opened before the install) changes nothing.
(() => {
  if (globalThis.realcheckPage) return;
  const R = globalThis.realcheckPage = {parts: new Set(["core"])};

  R.ATTR = "data-realcheck";
  R.LABEL = {pending: "…", real: "REAL", fake: "FAKE", uncertain: "UNSURE", no_face: "NO FACE", error: "ERROR"};
  R.WORD = {real: "real", fake: "fake", uncertain: "unsure", no_face: "no face found: not judged"};
  /** img -> {state, src, check, error, badge, done: Promise, heatmap, thresholds} */
  R.tracked = new Map();
  R.config = {scan: false, minSize: 96, signinPage: false, servicePage: false};

  R.send = async (message) => {
    try {
      return await chrome.runtime.sendMessage(message)
        ?? {ok: false, error: {code: "no_answer", message: "The Realcheck extension did not answer"}};
    } catch {
      return {ok: false, error: {code: "extension_gone", message: "The Realcheck extension was updated or disabled: reload the page"}};
    }
  };

  R.currentSrc = (img) => img.currentSrc || img.src;

  /** A DOM element: h("p", {class: "muted"}, "text", child...). Text is never parsed as HTML. */
  R.h = (tag, attrs = {}, ...children) => {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (v !== false && v != null) el.setAttribute(k, v === true ? "" : v);
    }
    el.append(...children.flat().filter((c) => c != null && c !== false));
    return el;
  };

  R.fixed = (p, digits = 2) => (typeof p === "number" ? p.toFixed(digits) : "–");

  let overlay = null;
  /** The one shadow root holding every badge and the panel (page CSS cannot reach in). */
  R.ensureOverlay = () => {
    if (!overlay) {
      const host = document.createElement("realcheck-overlay");
      host.style.cssText = "all: initial !important; display: block !important; position: absolute !important;"
        + " top: 0 !important; left: 0 !important; width: 0 !important; height: 0 !important;"
        + " overflow: visible !important; z-index: 2147483647 !important; pointer-events: none !important;";
      const root = host.attachShadow({mode: "open"});
      root.append(R.h("style", {}, globalThis.REALCHECK_CSS || ""));
      overlay = {host, root};
    }
    if (!overlay.host.isConnected) document.documentElement.append(overlay.host);
    return overlay;
  };
  R.overlayHost = () => overlay?.host ?? null;
})();
