// Realcheck's page script (a classic content script): finds the page's images, asks the
// extension's worker to check them, and draws badges and the details panel in a shadow root
// that no page CSS can reach. Each checked <img> carries data-realcheck="<state>".
(() => {
  if (globalThis.__realcheckLoaded) return; // injected twice (context menu on an old tab)
  globalThis.__realcheckLoaded = true;

  const ATTR = "data-realcheck";
  const LABEL = {pending: "…", real: "REAL", fake: "FAKE", uncertain: "UNSURE", error: "ERROR"};
  const WORD = {real: "real", fake: "fake", uncertain: "unsure"};
  const HEADLINE = {real: "Looks real", fake: "Looks generated", uncertain: "Can't tell"};
  const RETRY_KEYS = ["serviceUrl", "token", "useServiceThresholds", "fakeAt", "realAt"];
  const CONFIG_KEYS = ["scanAll", "scanSites", "minSize", ...RETRY_KEYS];

  /** img -> {state, src, check, error, badge, done: Promise, heatmap} */
  const tracked = new Map();
  const loading = new WeakSet();
  let config = {scan: false, minSize: 96, signinPage: false};
  let io = null;
  let mo = null;
  let overlay = null;
  let panel = null;
  let scheduled = false;
  let summaryTimer = 0;
  const ro = new ResizeObserver(() => schedule());

  async function send(message) {
    try {
      return await chrome.runtime.sendMessage(message)
        ?? {ok: false, error: {code: "no_answer", message: "The Realcheck extension did not answer"}};
    } catch {
      return {ok: false, error: {code: "extension_gone", message: "The Realcheck extension was updated or disabled: reload the page"}};
    }
  }

  const currentSrc = (img) => img.currentSrc || img.src;

  /** A DOM element: h("p", {class: "muted"}, "text", child...). Text is never parsed as HTML. */
  function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (v !== false && v != null) el.setAttribute(k, v === true ? "" : v);
    }
    el.append(...children.filter((c) => c != null && c !== false));
    return el;
  }

  // ---- the overlay: one shadow root holding every badge and the panel -------------------------

  function ensureOverlay() {
    if (!overlay) {
      const host = document.createElement("realcheck-overlay");
      host.style.cssText = "all: initial !important; display: block !important; position: absolute !important;"
        + " top: 0 !important; left: 0 !important; width: 0 !important; height: 0 !important;"
        + " overflow: visible !important; z-index: 2147483647 !important; pointer-events: none !important;";
      const root = host.attachShadow({mode: "open"});
      root.append(h("style", {}, globalThis.REALCHECK_CSS || ""));
      overlay = {host, root};
    }
    if (!overlay.host.isConnected) document.documentElement.append(overlay.host);
    return overlay;
  }

  function schedule() {
    if (scheduled || !tracked.size) return;
    scheduled = true;
    requestAnimationFrame(layout);
  }

  /** Places badges (and the panel) over their images: all reads first, then all writes. */
  function layout() {
    scheduled = false;
    if (!tracked.size) return;
    const origin = ensureOverlay().host.getBoundingClientRect();
    const placed = [];
    for (const [img, rec] of tracked) {
      if (!img.isConnected || rec.src !== currentSrc(img)) forget(img);
      else placed.push([rec, img.getBoundingClientRect()]);
    }
    const panelRect = panel && tracked.has(panel.img) ? panel.img.getBoundingClientRect() : null;
    for (const [rec, r] of placed) {
      rec.badge.hidden = r.width < 1 || r.height < 1;
      rec.badge.style.transform = `translate(${Math.round(r.left - origin.left + 4)}px, ${Math.round(r.top - origin.top + 4)}px)`;
    }
    if (panelRect) {
      // Beside the image where there is room (so its face stays visible), else below its badge.
      const width = 280, gap = 8, viewRight = document.documentElement.clientWidth;
      let x = panelRect.right + gap, y = panelRect.top;
      if (x + width > viewRight) x = panelRect.left - gap - width;
      if (x < 0) {
        x = Math.max(4, Math.min(panelRect.left, viewRight - width - 8));
        y = panelRect.top + 30;
      }
      panel.el.style.transform = `translate(${Math.round(x - origin.left)}px, ${Math.round(y - origin.top)}px)`;
      placeFaceBox(panelRect, origin);
    }
  }

  function placeFaceBox(r, origin) {
    const rec = tracked.get(panel.img);
    const check = rec?.check;
    const face = check?.faces?.[check.decisive_face];
    panel.box.hidden = !face || !check.width || !check.height;
    if (panel.box.hidden) return;
    const sx = r.width / check.width;
    const sy = r.height / check.height;
    const [x, y, w, hgt] = face.box;
    Object.assign(panel.box.style, {
      transform: `translate(${Math.round(r.left - origin.left + x * sx)}px, ${Math.round(r.top - origin.top + y * sy)}px)`,
      width: `${Math.round(w * sx)}px`, height: `${Math.round(hgt * sy)}px`,
    });
  }

  // ---- badges --------------------------------------------------------------------------------

  function badgeText(rec) {
    const c = rec.check;
    if (c && rec.state === c.label?.toLowerCase()) return `${LABEL[rec.state]} ${Math.round(c.confidence)}%`;
    return LABEL[rec.state];
  }

  function badgeTitle(rec) {
    if (rec.state === "pending") return "Realcheck: checking this image…";
    if (rec.state === "error") return `Realcheck: ${rec.error?.message || "the check failed"} (click to retry)`;
    const c = rec.check;
    const who = c.moderation ? "decided by a moderator" : `P(fake) ${c.score.toFixed(2)}, ${c.confidence}% sure of ${c.label}`;
    return `Realcheck: ${WORD[rec.state]} (${who}). Click for details.`;
  }

  function show(img, rec) {
    img.setAttribute(ATTR, rec.state);
    if (!rec.badge) {
      rec.badge = h("button", {type: "button", onclick: (e) => {
        e.preventDefault();
        e.stopPropagation();
        const now = tracked.get(img);
        if (now?.state === "error") recheck(img, "menu");
        else openPanel(img);
      }});
      ensureOverlay().root.append(rec.badge);
      ro.observe(img);
    }
    rec.badge.className = `badge ${rec.state}`;
    rec.badge.textContent = badgeText(rec);
    rec.badge.title = badgeTitle(rec);
    rec.badge.setAttribute("aria-label", rec.badge.title);
    schedule();
  }

  function forget(img) {
    const rec = tracked.get(img);
    if (!rec) return;
    tracked.delete(img);
    rec.badge?.remove();
    ro.unobserve(img);
    img.removeAttribute(ATTR);
    if (panel?.img === img) closePanel();
    summarize();
  }

  async function asSendable(src) {
    if (!src.startsWith("blob:")) return src; // the worker cannot read the page's blob: URLs
    const blob = await (await fetch(src)).blob();
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    });
  }

  /** Checks one image now: pending badge, then the verdict or the error. */
  function checkImage(img, kind) {
    io?.unobserve(img);
    const rec = {state: "pending", src: currentSrc(img), check: null, error: null, badge: null, heatmap: null};
    tracked.set(img, rec);
    show(img, rec);
    summarize();
    rec.done = (async () => {
      let answer;
      try {
        answer = await send({type: "realcheck:check", src: await asSendable(rec.src), kind});
      } catch {
        answer = {ok: false, error: {code: "image_unavailable", message: "The image could not be read"}};
      }
      if (tracked.get(img) !== rec) return rec; // its src changed meanwhile
      if (!answer.ok && answer.error.code === "scanning_off") {
        forget(img); // scanning was turned off while it waited: leave no trace
        if (io) io.observe(img);
        return rec;
      }
      if (answer.ok) Object.assign(rec, {state: answer.state, check: answer.check});
      else Object.assign(rec, {state: "error", error: answer.error});
      show(img, rec);
      summarize();
      if (panel?.img === img) renderPanel();
      return rec;
    })();
    return rec;
  }

  function recheck(img, kind) {
    const open = panel?.img === img;
    forget(img);
    const rec = checkImage(img, kind);
    if (open) openPanel(img);
    return rec;
  }

  // ---- automatic scanning --------------------------------------------------------------------

  /** Scans an image that came into view, once it has loaded and if it is big enough. */
  function consider(img) {
    if (!io || tracked.has(img)) return;
    if (!img.complete || !img.naturalWidth) {
      if (!loading.has(img)) {
        loading.add(img);
        img.addEventListener("load", () => {
          loading.delete(img);
          if (io) { io.unobserve(img); io.observe(img); } // re-reports whether it is in view
        }, {once: true});
      }
      return;
    }
    const r = img.getBoundingClientRect();
    const min = config.minSize;
    if (r.width < min || r.height < min || img.naturalWidth < min || img.naturalHeight < min) return;
    checkImage(img, "scan");
  }

  function watch(img) {
    if (io && !tracked.has(img)) io.observe(img);
  }

  function onMutations(records) {
    for (const r of records) {
      if (r.type === "attributes") {
        if (r.target instanceof HTMLImageElement && tracked.get(r.target)?.src !== currentSrc(r.target)) {
          forget(r.target);
          watch(r.target);
        }
        continue;
      }
      for (const node of r.addedNodes) {
        if (node.nodeType !== Node.ELEMENT_NODE || node === overlay?.host) continue;
        if (node instanceof HTMLImageElement) watch(node);
        else for (const img of node.getElementsByTagName("img")) watch(img);
      }
    }
    schedule();
  }

  function startScanning() {
    if (io) return;
    io = new IntersectionObserver((entries) => {
      for (const e of entries) if (e.isIntersecting) consider(e.target);
    }, {rootMargin: "100px"});
    mo = new MutationObserver(onMutations);
    mo.observe(document.documentElement, {childList: true, subtree: true, attributes: true, attributeFilter: ["src", "srcset"]});
    for (const img of document.images) watch(img);
  }

  function stopScanning() {
    io?.disconnect();
    mo?.disconnect();
    io = mo = null;
  }

  // ---- the details panel ---------------------------------------------------------------------

  function openPanel(img) {
    closePanel();
    const {root} = ensureOverlay();
    panel = {img, el: h("section", {class: "panel", role: "dialog", "aria-label": "Realcheck result"}),
             box: h("div", {class: "face-box", hidden: true}), report: {open: false, status: ""}};
    root.append(panel.box, panel.el);
    renderPanel();
    schedule();
  }

  function closePanel() {
    panel?.el.remove();
    panel?.box.remove();
    panel = null;
  }

  function renderPanel() {
    const rec = tracked.get(panel.img);
    if (!rec) return closePanel();
    const close = h("button", {type: "button", class: "close", "aria-label": "Close", onclick: closePanel}, "×");
    const parts = [];
    if (rec.state === "pending") {
      parts.push(h("header", {}, h("span", {class: "pill"}, "…"), h("h2", {}, "Checking this image…"), close));
    } else if (rec.state === "error") {
      parts.push(h("header", {}, h("span", {class: "pill"}, "ERROR"), h("h2", {}, "Not checked"), close),
        h("p", {class: "reason"}, rec.error?.message || "The check failed"),
        h("div", {class: "row"}, h("button", {type: "button", class: "primary", onclick: () => recheck(panel.img, "menu")}, "Try again")));
    } else {
      parts.push(...resultParts(rec, close));
    }
    panel.el.replaceChildren(...parts.filter((p) => p != null));
    schedule();
  }

  function resultParts(rec, close) {
    const c = rec.check;
    const faces = c.faces?.length || 0;
    const which = c.face_found
      ? `Face ${c.decisive_face + 1} of ${faces} decided the verdict (outlined on the image).`
      : "No face found: the whole image was scored.";
    const heatmap = h("img", {class: "heatmap", alt: "Heatmap: where the detectors looked"});
    showHeatmap(rec, heatmap);
    return [
      h("header", {}, h("span", {class: `pill ${rec.state}`}, LABEL[rec.state]),
        h("h2", {}, HEADLINE[rec.state]), close),
      h("p", {class: "confidence"}, c.moderation ? "Decided by a moderator."
        : `${c.confidence}% confident it is ${c.label} (P(fake) = ${c.score.toFixed(2)}).`),
      h("p", {class: "face muted"}, which),
      ...evidenceParts(c),
      c.warning ? h("p", {class: "warning"}, `Note: ${c.warning}.`) : null,
      heatmap,
      reportParts(rec),
    ];
  }

  /** Provenance (Content Credentials, unsigned hints) and a near-duplicate decision. */
  function evidenceParts(c) {
    const {provenanceLine, matchLine} = globalThis.realcheckProvenance;
    const line = provenanceLine(c);
    const match = matchLine(c);
    return [
      line ? h("p", {class: `provenance ${line.kind}`, "data-provenance": line.kind}, line.text) : null,
      match ? h("p", {class: "match muted"}, match) : null,
    ];
  }

  async function showHeatmap(rec, img) {
    if (!rec.check.heatmap_url) { // answered from the image's fingerprint: no rendition of it
      img.replaceWith(h("p", {class: "muted"}, "No heatmap: this result was found by the image's fingerprint."));
      return;
    }
    if (!rec.heatmap) {
      rec.heatmap = send({type: "realcheck:heatmap", path: rec.check.heatmap_url});
    }
    const answer = await rec.heatmap;
    if (answer.ok) img.src = answer.dataUrl;
    else {
      rec.heatmap = null;
      img.replaceWith(h("p", {class: "muted"}, `No heatmap: ${answer.error.message}`));
    }
  }

  function reportParts(rec) {
    const state = panel.report;
    const status = h("p", {class: "report-status muted", role: "status"}, state.status);
    if (state.done) return h("div", {class: "report"}, status);
    if (!state.open) {
      return h("div", {class: "report"}, h("button", {type: "button", class: "report-open", onclick: () => {
        state.open = true;
        renderPanel();
        panel.el.querySelector("textarea")?.focus();
      }}, "Report a wrong verdict"), status);
    }
    const note = h("textarea", {"aria-label": "What is wrong with this verdict?", maxlength: "2000",
                                placeholder: "What is wrong with this verdict? (optional)"});
    const submit = h("button", {type: "submit", class: "primary"}, "Send report");
    const form = h("form", {class: "report", onsubmit: async (e) => {
      e.preventDefault();
      submit.disabled = true;
      status.textContent = "Sending…";
      const answer = await send({type: "realcheck:report", checkId: rec.check.id, note: note.value});
      if (!panel || tracked.get(panel.img) !== rec) return;
      state.status = answer.ok ? "Reported: thank you, a moderator will look at it." : `Not reported: ${answer.error.message}`;
      state.done = answer.ok;
      state.open = !answer.ok;
      renderPanel();
    }}, note, h("div", {class: "row"}, submit,
      h("button", {type: "button", onclick: () => { state.open = false; renderPanel(); }}, "Cancel")), status);
    return form;
  }

  // ---- summary, settings, messages -----------------------------------------------------------

  function summary() {
    const counts = {checked: 0, real: 0, fake: 0, uncertain: 0, pending: 0, error: 0};
    for (const rec of tracked.values()) counts[rec.state] += 1;
    counts.checked = counts.real + counts.fake + counts.uncertain;
    return {...counts, scanning: config.scan};
  }

  function summarize() {
    clearTimeout(summaryTimer);
    summaryTimer = setTimeout(() => send({type: "realcheck:summary", summary: summary()}), 300);
  }

  async function menuCheck(srcUrl) {
    const imgs = [...document.images].filter((i) => currentSrc(i) === srcUrl || i.src === srcUrl);
    const img = imgs[0];
    if (!img) return {ok: false, found: 0, error: "the image is not an <img> of this page"};
    let rec = tracked.get(img);
    if (!rec || rec.state === "error" || rec.src !== currentSrc(img)) {
      forget(img);
      rec = checkImage(img, "menu");
    }
    openPanel(img);
    await rec.done;
    return {ok: true, found: imgs.length, state: tracked.get(img)?.state};
  }

  function toast(text) {
    const el = h("div", {class: "toast", role: "status"}, text);
    ensureOverlay().root.append(el);
    setTimeout(() => el.remove(), 8000);
  }

  /** On the service's own sign-in page: hand its token ([data-realcheck-token]) to the extension. */
  function pickUpToken() {
    const offer = async (el) => {
      const answer = await send({type: "realcheck:signin-token", token: el.getAttribute("data-realcheck-token")});
      toast(answer.ok ? "The Realcheck extension is now signed in." : `The extension could not use this token: ${answer.error.message}`);
    };
    const found = document.querySelector("[data-realcheck-token]");
    if (found) return offer(found);
    const obs = new MutationObserver(() => {
      const el = document.querySelector("[data-realcheck-token]");
      if (el) { obs.disconnect(); offer(el); }
    });
    obs.observe(document.documentElement, {childList: true, subtree: true, attributes: true, attributeFilter: ["data-realcheck-token"]});
    setTimeout(() => obs.disconnect(), 10 * 60 * 1000);
  }

  async function applyConfig() {
    const answer = await send({type: "realcheck:page-config"});
    if (!answer.ok) return;
    const wasSignin = config.signinPage;
    config = answer;
    if (config.scan) startScanning(); else stopScanning();
    if (config.signinPage && !wasSignin) pickUpToken();
  }

  chrome.storage.onChanged.addListener((changes, area) => {
    if (area !== "local" || !CONFIG_KEYS.some((k) => k in changes)) return;
    if (RETRY_KEYS.some((k) => k in changes)) {
      // A new service, token or thresholds: check again what is shown (results come from cache).
      for (const [img, rec] of [...tracked]) if (rec.state !== "pending") forget(img);
    }
    stopScanning();
    applyConfig();
  });

  chrome.runtime.onMessage.addListener((msg, _sender, sendResponse) => {
    if (msg?.type === "realcheck:menu-check") {
      menuCheck(String(msg.srcUrl)).then(sendResponse, (e) => sendResponse({ok: false, error: String(e)}));
      return true;
    }
    if (msg?.type === "realcheck:get-summary") sendResponse(summary());
    return false;
  });

  addEventListener("resize", schedule, {passive: true});
  document.addEventListener("scroll", (e) => { if (e.target !== document) schedule(); }, {capture: true, passive: true});
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && panel) closePanel(); }, true);
  setInterval(() => { if (!document.hidden) schedule(); }, 1000); // layout changes nothing else reports
  applyConfig();
})();
