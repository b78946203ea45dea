// Automatic scanning: every image at least the minimum size is checked when it comes into view,
// including images added or changed later (infinite scroll, lazy loading, new src/srcset).
(() => {
  const R = globalThis.realcheckPage;
  if (R.parts.has("scanning")) return;
  R.parts.add("scanning");
  const {tracked} = R;
  const loading = new WeakSet();
  let io = null;
  let mo = null;

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
    const min = R.config.minSize;
    if (r.width < min || r.height < min || img.naturalWidth < min || img.naturalHeight < min) return;
    R.checkImage(img, "scan");
  }

  R.watch = (img) => {
    if (io && !tracked.has(img)) io.observe(img);
  };
  R.unwatch = (img) => io?.unobserve(img);

  function onMutations(records) {
    for (const r of records) {
      if (r.type === "attributes") {
        if (r.target instanceof HTMLImageElement && tracked.get(r.target)?.src !== R.currentSrc(r.target)) {
          R.forget(r.target);
          R.watch(r.target);
        }
        continue;
      }
      for (const node of r.addedNodes) {
        if (node.nodeType !== Node.ELEMENT_NODE || node === R.overlayHost()) continue;
        if (node instanceof HTMLImageElement) R.watch(node);
        else for (const img of node.getElementsByTagName("img")) R.watch(img);
      }
    }
    R.schedule();
  }

  R.startScanning = () => {
    if (io) return;
    io = new IntersectionObserver((entries) => {
      for (const e of entries) if (e.isIntersecting) consider(e.target);
    }, {rootMargin: "100px"});
    mo = new MutationObserver(onMutations);
    mo.observe(document.documentElement, {childList: true, subtree: true, attributes: true, attributeFilter: ["src", "srcset"]});
    for (const img of document.images) R.watch(img);
  };

  R.stopScanning = () => {
    io?.disconnect();
    mo?.disconnect();
    io = mo = null;
  };
})();
