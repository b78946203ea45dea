// The page script's wiring: settings from the worker, messages from it (context menu, popup),
// the sign-in hand-over on the service's own /signin page, and the events that move badges.
(() => {
  const R = globalThis.realcheckPage;
  if (R.parts.has("main")) return;
  R.parts.add("main");
  const RETRY_KEYS = ["serviceUrl", "token", "useServiceThresholds", "fakeAt", "realAt"];
  const CONFIG_KEYS = ["scanAll", "scanSites", "minSize", ...RETRY_KEYS];
  let watchingToken = null;

  function toast(text) {
    const el = R.h("div", {class: "toast", role: "status"}, text);
    R.ensureOverlay().root.append(el);
    setTimeout(() => el.remove(), 8000);
  }

  /**
   * On the service's own sign-in page: hand each token it shows ([data-realcheck-token]) to
   * the extension, also after signing out and in as someone else in the same tab.
   */
  function pickUpTokens() {
    if (watchingToken) return;
    let offered = "";
    const look = async () => {
      const token = document.querySelector("[data-realcheck-token]")?.getAttribute("data-realcheck-token") || "";
      if (!token || token === offered) return;
      offered = token;
      const answer = await R.send({type: "realcheck:signin-token", token});
      toast(answer.ok ? `The Realcheck extension is now signed in${answer.claims?.email ? ` as ${answer.claims.email}` : ""}.`
        : `The extension could not use this token: ${answer.error.message}`);
    };
    watchingToken = new MutationObserver(look);
    watchingToken.observe(document.documentElement, {childList: true, subtree: true, attributes: true,
                                                      attributeFilter: ["data-realcheck-token"]});
    look();
  }

  async function applyConfig() {
    const answer = await R.send({type: "realcheck:page-config"});
    if (!answer.ok) return;
    R.config = answer;
    if (R.config.scan) R.startScanning(); else R.stopScanning();
    if (R.config.signinPage) pickUpTokens();
  }

  chrome.storage.onChanged.addListener((changes, area) => {
    if (area !== "local" || !CONFIG_KEYS.some((k) => k in changes)) return;
    if (RETRY_KEYS.some((k) => k in changes)) {
      // A new service, token or thresholds: check again what is shown (results come from cache).
      for (const [img, rec] of [...R.tracked]) if (rec.state !== "pending") R.forget(img);
    }
    R.stopScanning();
    applyConfig();
  });

  chrome.runtime.onMessage.addListener((msg, _sender, sendResponse) => {
    if (msg?.type === "realcheck:menu-check") {
      R.menuCheck(String(msg.srcUrl)).then(sendResponse, (e) => sendResponse({ok: false, error: String(e)}));
      return true;
    }
    if (msg?.type === "realcheck:menu-check-video") {
      R.menuCheckVideo(String(msg.srcUrl)).then(sendResponse, (e) => sendResponse({ok: false, error: String(e)}));
      return true;
    }
    if (msg?.type === "realcheck:get-summary") sendResponse(R.summary());
    return false;
  });

  addEventListener("resize", R.schedule, {passive: true});
  document.addEventListener("scroll", (e) => { if (e.target !== document) R.schedule(); }, {capture: true, passive: true});
  addEventListener("scroll", R.schedule, {passive: true}); // the panel keeps inside the viewport
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && R.panelImage()) R.closePanel(); }, true);
  setInterval(() => { if (!document.hidden) R.schedule(); }, 1000); // layout changes nothing else reports
  applyConfig();
})();
