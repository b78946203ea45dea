// Badges: one per checked image, placed over its top-left corner, with the verdict's colour.
(() => {
  const R = globalThis.realcheckPage;
  if (R.parts.has("badges")) return;
  R.parts.add("badges");
  const {h, tracked} = R;

  let scheduled = false;
  const ro = new ResizeObserver(() => R.schedule());

  R.schedule = () => {
    if (scheduled || !tracked.size) return;
    scheduled = true;
    requestAnimationFrame(layout);
  };

  /** Places badges (and the panel) over their images: all reads first, then all writes. */
  function layout() {
    scheduled = false;
    if (!tracked.size) return;
    const origin = R.ensureOverlay().host.getBoundingClientRect();
    const placed = [];
    for (const [img, rec] of tracked) {
      if (!img.isConnected || rec.src !== R.currentSrc(img)) R.forget(img);
      else placed.push([rec, img.getBoundingClientRect()]);
    }
    const panelPlace = R.panelMeasure?.();
    for (const [rec, r] of placed) {
      rec.badge.hidden = r.width < 1 || r.height < 1;
      rec.badge.style.transform = `translate(${Math.round(r.left - origin.left + 4)}px, ${Math.round(r.top - origin.top + 4)}px)`;
    }
    if (panelPlace) R.panelPlace(panelPlace, origin);
  }

  /** The badge's words: the confidence goes only with FAKE; never with UNSURE, nor with REAL,
   *  which is no proof (fakes of generators the detectors never saw often score as real). */
  function badgeText(rec) {
    const c = rec.check;
    if (c && !c.moderation && typeof c.confidence === "number" && rec.state === "fake" && c.label === "FAKE") {
      return `${R.LABEL[rec.state]} ${Math.round(c.confidence)}%`;
    }
    return R.LABEL[rec.state];
  }

  function badgeTitle(rec) {
    if (rec.state === "pending") return "Realcheck: checking this image…";
    if (rec.state === "error") return `Realcheck: ${rec.error?.message || "the check failed"} (click to retry)`;
    const c = rec.check;
    let why;
    if (c.moderation) why = "decided by a moderator";
    else if (rec.state === "no_face") why = "the detectors judge faces only";
    else if (rec.state === "uncertain" && c.faces?.[c.decisive_face]?.unfamiliar) why = `P(fake) ${R.fixed(c.score)}: a face unlike those the detectors learned from: not judged`;
    else if (rec.state === "uncertain" && c.faces?.[c.decisive_face]?.confirmed === false && c.faces[c.decisive_face].note) why = `P(fake) ${R.fixed(c.score)}: not every detector finds it fake on its own`;
    else if (rec.state === "uncertain") why = `P(fake) ${R.fixed(c.score)}: the detectors cannot tell`;
    else if (rec.state === "real" && c.label === "REAL") why = `P(fake) ${R.fixed(c.score)}: no sign of the fakes the detectors know, which is no proof`;
    else if (rec.state === c.label?.toLowerCase()) why = `P(fake) ${R.fixed(c.score)}, ${Math.round(c.confidence)}% sure`;
    else why = `P(fake) ${R.fixed(c.score)}, by your own thresholds`;
    const faces = c.faces?.length > 1 ? `, ${c.faces.length} faces` : "";
    return `Realcheck: ${R.WORD[rec.state]} (${why}${faces}). Click for details.`;
  }

  R.show = (img, rec) => {
    img.setAttribute(R.ATTR, rec.state);
    if (!rec.badge) {
      rec.badge = h("button", {type: "button", onclick: (e) => {
        e.preventDefault();
        e.stopPropagation();
        const now = tracked.get(img);
        if (now?.state === "error") R.recheck(img, "menu");
        else R.openPanel(img);
      }});
      R.ensureOverlay().root.append(rec.badge);
      ro.observe(img);
    }
    rec.badge.className = `badge ${rec.state}`;
    rec.badge.textContent = badgeText(rec);
    rec.badge.title = badgeTitle(rec);
    rec.badge.setAttribute("aria-label", rec.badge.title);
    R.schedule();
  };

  R.forget = (img) => {
    const rec = tracked.get(img);
    if (!rec) return;
    tracked.delete(img);
    rec.badge?.remove();
    ro.unobserve(img);
    img.removeAttribute(R.ATTR);
    if (R.panelImage?.() === img) R.closePanel();
    R.summarize();
  };
})();
