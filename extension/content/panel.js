// The details panel of one image: the verdict in words, every face (outlined and numbered on
// the image, with its own verdict and score), the heatmap, reporting a wrong verdict and a
// share link. It stays inside the viewport, scrolling within itself when it is taller.
(() => {
  const R = globalThis.realcheckPage;
  if (R.parts.has("panel")) return;
  R.parts.add("panel");
  const {h, tracked} = R;
  const HEADLINE = {real: "Looks real", fake: "Looks generated", uncertain: "Can't tell",
                    no_face: "No face found: not judged"};
  const WIDTH = 300, GAP = 8, MARGIN = 8;

  let panel = null; // {img, el, boxes: [div], report: {...}, share: {...}}
  const resized = new ResizeObserver(() => R.schedule());

  R.panelImage = () => panel?.img ?? null;

  R.openPanel = (img) => {
    R.closePanel();
    const {root} = R.ensureOverlay();
    panel = {img, el: h("section", {class: "panel", role: "dialog", "aria-label": "Realcheck result"}),
             boxes: [], report: {open: false, status: ""}, share: {url: "", status: ""}};
    root.append(panel.el);
    resized.observe(panel.el); // a heatmap loading makes it taller: keep it in the viewport
    R.renderPanel();
    R.schedule();
  };

  R.closePanel = () => {
    if (panel) resized.unobserve(panel.el);
    panel?.el.remove();
    for (const b of panel?.boxes ?? []) b.remove();
    panel = null;
  };

  /** Layout, read phase: where the image and the panel are now. */
  R.panelMeasure = () => {
    if (!panel || !tracked.has(panel.img)) return null;
    return {img: panel.img.getBoundingClientRect(), height: panel.el.offsetHeight,
            viewW: document.documentElement.clientWidth, viewH: window.innerHeight};
  };

  /** Layout, write phase: beside the image where there is room (its faces stay visible), else
   * below its badge; always inside the viewport. */
  R.panelPlace = ({img: r, height, viewW, viewH}, origin) => {
    const maxH = Math.max(120, viewH - 2 * MARGIN);
    panel.el.style.maxHeight = `${maxH}px`;
    let x = r.right + GAP, y = r.top;
    if (x + WIDTH > viewW) x = r.left - GAP - WIDTH;
    if (x < 0) {
      x = Math.max(MARGIN / 2, Math.min(r.left, viewW - WIDTH - MARGIN));
      y = r.top + 30;
    }
    const shown = Math.min(height, maxH);
    y = Math.max(MARGIN, Math.min(y, viewH - shown - MARGIN));
    panel.el.style.transform = `translate(${Math.round(x - origin.left)}px, ${Math.round(y - origin.top)}px)`;
    placeFaceBoxes(r, origin);
  };

  function placeFaceBoxes(r, origin) {
    const check = tracked.get(panel.img)?.check;
    const faces = check?.faces ?? [];
    const ok = faces.length && check.width && check.height;
    panel.boxes.forEach((box, i) => {
      const face = faces[i];
      box.hidden = !ok || !face;
      if (box.hidden) return;
      const sx = r.width / check.width, sy = r.height / check.height;
      const [x, y, w, hgt] = face.box;
      Object.assign(box.style, {
        transform: `translate(${Math.round(r.left - origin.left + x * sx)}px, ${Math.round(r.top - origin.top + y * sy)}px)`,
        width: `${Math.round(w * sx)}px`, height: `${Math.round(hgt * sy)}px`,
      });
    });
  }

  function syncFaceBoxes(check) {
    const faces = check?.faces ?? [];
    while (panel.boxes.length > faces.length) panel.boxes.pop().remove();
    const {root} = R.ensureOverlay();
    faces.forEach((face, i) => {
      if (!panel.boxes[i]) {
        panel.boxes[i] = h("div", {class: "face-box", hidden: true}, h("span", {class: "face-n"}, String(i + 1)));
        root.insertBefore(panel.boxes[i], panel.el);
      }
      panel.boxes[i].className = `face-box ${face.verdict}${i === check.decisive_face ? " decisive" : ""}`;
    });
  }

  R.renderPanel = () => {
    const rec = tracked.get(panel.img);
    if (!rec) return R.closePanel();
    const close = h("button", {type: "button", class: "close", "aria-label": "Close", onclick: R.closePanel}, "×");
    const parts = [];
    if (rec.video) {
      parts.push(...R.videoPanelParts(rec, close));
    } else if (rec.state === "pending") {
      parts.push(h("header", {}, h("span", {class: "pill"}, "…"), h("h2", {}, "Checking this image…"), close));
    } else if (rec.state === "error") {
      parts.push(h("header", {}, h("span", {class: "pill"}, "ERROR"), h("h2", {}, "Not checked"), close),
        h("p", {class: "reason"}, rec.error?.message || "The check failed"),
        h("div", {class: "row"}, h("button", {type: "button", class: "primary", onclick: () => R.recheck(panel.img, "menu")}, "Try again")));
    } else {
      parts.push(...resultParts(rec, close));
    }
    syncFaceBoxes(rec.video || rec.state === "pending" || rec.state === "error" ? null : rec.check);
    panel.el.replaceChildren(...parts.filter((p) => p != null));
    R.schedule();
  };

  /** The verdict in words: a confidence only with FAKE, never "x % sure it is FAKE" under UNSURE. */
  function explanation(rec) {
    const c = rec.check, t = rec.thresholds;
    if (c.moderation) {
      return [`Decided by Realcheck's moderators: ${c.moderation.verdict}.`,
        c.moderation.note ? ` Their note: “${c.moderation.note}”.` : "",
        c.detectors?.verdict ? ` The detectors alone said ${R.WORD[c.detectors.verdict] || c.detectors.verdict}.` : ""].join("");
    }
    if (rec.state === "no_face") return "The detectors judge faces only and found none in this image, so it has no verdict.";
    const band = t ? ` (REAL below ${R.fixed(t.real_below)}, FAKE from ${R.fixed(t.fake_from)})` : "";
    if (rec.state === "uncertain" && c.faces?.[c.decisive_face]?.unfamiliar) return `P(fake) = ${R.fixed(c.score)}, but this face is unlike the faces the detectors learned from, so they cannot judge it: neither a fake nor a real score is trusted here. Treat it with care.`;
    if (rec.state === "uncertain" && c.faces?.[c.decisive_face]?.confirmed === false && c.faces[c.decisive_face].note) return `P(fake) = ${R.fixed(c.score)}, but not every detector finds this face fake on its own, so a fake score is not trusted here. Treat it with care.`;
    if (rec.state === "uncertain") return `P(fake) = ${R.fixed(c.score)}: between the detectors' thresholds${band}, so they cannot tell. Treat it with care.`;
    // REAL carries no "% sure": the detectors pass many fakes of generators they never saw as real.
    if (rec.state === "real" && c.label === "REAL") return `P(fake) = ${R.fixed(c.score)}: the detectors saw no sign of the fakes they know${band}. That is not proof the face is genuine: fakes from generators they never saw often score as real.`;
    if (rec.state === c.label?.toLowerCase()) return `P(fake) = ${R.fixed(c.score)}: ${Math.round(c.confidence)}% sure it is ${rec.state}${band}.`;
    return `P(fake) = ${R.fixed(c.score)}: ${rec.state} by your own thresholds (the service says ${R.WORD[c.verdict] || c.verdict}).`;
  }

  function facesList(c) {
    const faces = c.faces ?? [];
    if (!faces.length) return null;
    return h("ol", {class: "faces"}, faces.map((f, i) => h("li", {class: `face ${f.verdict}`},
      h("span", {class: `pill small ${f.verdict}`}, R.LABEL[f.verdict] || f.verdict),
      ` Face ${i + 1}: P(fake) ${R.fixed(f.score)}`,
      f.too_small ? h("span", {class: "muted"}, " · too small to judge well") : null,
      f.cut_off ? h("span", {class: "muted"}, " · runs off the picture's edge: not judged") : null,
      f.unfamiliar ? h("span", {class: "muted"}, " · unfamiliar to the detectors") : null,
      f.confirmed === false && f.note && !f.too_small && !f.cut_off && !f.unfamiliar ? h("span", {class: "muted"}, " · not every detector finds it fake on its own") : null,
      i === c.decisive_face && faces.length > 1 ? h("span", {class: "muted"}, " · sets the verdict") : null)));
  }

  function resultParts(rec, close) {
    const c = rec.check;
    const faces = c.faces?.length ?? 0;
    const heatmap = faces ? h("img", {class: "heatmap", alt: "Heatmap: where the detectors looked in each face"}) : null;
    if (heatmap) showHeatmap(rec, heatmap);
    return [
      h("header", {}, h("span", {class: `pill ${rec.state}`}, R.LABEL[rec.state]),
        h("h2", {}, HEADLINE[rec.state]), close),
      h("p", {class: "confidence"}, explanation(rec)),
      faces ? h("p", {class: "face muted"}, faces === 1 ? "1 face found (outlined on the image):"
        : `${faces} faces found (numbered on the image); the image gets the verdict of its most suspicious face:`) : null,
      facesList(c),
      ...evidenceParts(c),
      c.warning ? h("p", {class: "warning"}, `Note: ${c.warning}.`) : null,
      heatmap,
      reportParts(rec),
      shareParts(rec),
    ];
  }

  /** Provenance (Content Credentials, unsigned hints) and a near-duplicate decision. */
  function evidenceParts(c) {
    const {provenanceLine, matchLine} = globalThis.realcheckProvenance ?? {};
    const line = provenanceLine?.(c);
    const match = matchLine?.(c);
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
    if (!rec.heatmap) rec.heatmap = R.send({type: "realcheck:heatmap", path: rec.check.heatmap_url});
    const answer = await rec.heatmap;
    if (answer.ok) img.src = answer.dataUrl;
    else {
      rec.heatmap = null;
      img.replaceWith(h("p", {class: "muted"}, `No heatmap: ${answer.error.message}`));
    }
  }

  // What the video panel (content/video_panel.js) shares with the image panel.
  R.panelShared = {HEADLINE, explanation: (rec) => explanation(rec), reportParts: (rec) => reportParts(rec)};

  function reportParts(rec) {
    const state = panel.report;
    const status = h("p", {class: "report-status muted", role: "status"}, state.status);
    if (state.done) return h("div", {class: "report"}, status);
    if (!state.open) {
      return h("div", {class: "report"}, h("button", {type: "button", class: "report-open", onclick: () => {
        state.open = true;
        R.renderPanel();
        panel.el.querySelector("textarea")?.focus();
      }}, "Report a wrong verdict"), status);
    }
    const note = h("textarea", {"aria-label": "What is wrong with this verdict?", maxlength: "2000",
                                placeholder: "What is wrong with this verdict? (optional)"});
    const submit = h("button", {type: "submit", class: "primary"}, "Send report");
    return h("form", {class: "report", onsubmit: async (e) => {
      e.preventDefault();
      submit.disabled = true;
      status.textContent = "Sending…";
      const answer = await R.send({type: "realcheck:report", checkId: rec.check.id, note: note.value});
      if (!panel || tracked.get(panel.img) !== rec) return;
      state.status = answer.ok ? "Reported: thank you, a moderator will look at it." : `Not reported: ${answer.error.message}`;
      state.done = answer.ok;
      state.open = !answer.ok;
      R.renderPanel();
    }}, note, h("div", {class: "row"}, submit,
      h("button", {type: "button", onclick: () => { state.open = false; R.renderPanel(); }}, "Cancel")), status);
  }

  function shareParts(rec) {
    const state = panel.share;
    const status = h("p", {class: "share-status muted", role: "status"}, state.status);
    const ask = async (revoke) => {
      state.status = revoke ? "Revoking…" : "Making a link…";
      R.renderPanel();
      const answer = await R.send({type: "realcheck:share", checkId: rec.check.id, revoke});
      if (!panel || tracked.get(panel.img) !== rec) return;
      if (!answer.ok) state.status = `No link: ${answer.error.message}`;
      else if (revoke) Object.assign(state, {url: "", status: "The link is revoked: it shows nothing now."});
      else Object.assign(state, {url: answer.url, status: "Anyone with this link sees this result."});
      R.renderPanel();
    };
    if (!state.url) {
      return h("div", {class: "share"}, h("button", {type: "button", class: "share-open", onclick: () => ask(false)},
        "Share a link to this result"), status);
    }
    const link = h("input", {class: "share-url", readonly: true, value: state.url, "aria-label": "Share link",
                             onfocus: (e) => e.target.select()});
    return h("div", {class: "share"}, link, h("div", {class: "row"},
      h("button", {type: "button", onclick: async () => {
        try { await navigator.clipboard.writeText(state.url); state.status = "Copied."; } catch { link.select(); }
        R.renderPanel();
      }}, "Copy"),
      h("button", {type: "button", class: "share-revoke", onclick: () => ask(true)}, "Revoke")), status);
  }
})();
