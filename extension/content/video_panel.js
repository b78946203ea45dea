// The panel of a video: which way it was checked (the service fetched the file, or N frames
// were captured from the playing video), the capture's and the job's progress with a cancel
// button, then the verdict and, per face track, a timeline strip (a thumbnail and P(fake) for
// every sampled frame the face was seen in, the decisive frame marked) and the decisive frame's
// heatmap.
(() => {
  const R = globalThis.realcheckPage;
  if (R.parts.has("video-panel")) return;
  R.parts.add("video-panel");
  const {h} = R;
  const IMAGES_AT_ONCE = 4;
  const CAPTURE_WORD = {canvas: "canvas", tab: "screen"};

  let loading = 0;
  const waiting = [];

  /** An image of the service (a frame's thumbnail, a heatmap) as a data: URL, remembered per
   * check; at most IMAGES_AT_ONCE requests at a time. */
  function serviceImage(rec, path) {
    const cache = rec.video.images;
    if (!cache.has(path)) {
      cache.set(path, (async () => {
        if (loading >= IMAGES_AT_ONCE) await new Promise((resolve) => waiting.push(resolve));
        loading += 1;
        try {
          return await R.send({type: "realcheck:heatmap", path});
        } finally {
          loading -= 1;
          waiting.shift()?.();
        }
      })());
    }
    return cache.get(path);
  }

  function showImage(rec, img, path, onFail) {
    serviceImage(rec, path).then((answer) => {
      if (answer.ok) img.src = answer.dataUrl;
      else {
        rec.video.images.delete(path); // try again on the next render
        onFail?.(answer.error);
      }
    });
    return img;
  }

  /** How the video reached the service, in words. */
  function pathLine(rec) {
    const v = rec.video;
    if (v.path === "file") {
      return rec.state === "error" || rec.state === "pending" ? "The video's address was sent: the service fetches the file itself."
        : "The service fetched the video file.";
    }
    if (v.path !== "frames" || v.phase === "starting") return "Getting ready…";
    const n = v.sent || v.frames.length;
    const how = CAPTURE_WORD[v.capture] || v.capture;
    if (v.phase === "capturing") {
      return rec.state === "error" ? `Frames from the playing video (${how}): none was sent.`
        : `Capturing frames from the playing video (${how})…`;
    }
    return `${n} frame${n === 1 ? "" : "s"} captured from the playing video (${how}).`;
  }

  function progressParts(rec) {
    const v = rec.video;
    const cancel = h("button", {type: "button", class: "video-cancel", onclick: () => R.cancelVideo(R.panelImage())},
      v.cancelled ? "Cancelling…" : "Cancel");
    if (v.cancelled) cancel.disabled = true;
    if (v.phase === "capturing") {
      const wait = {play: "Press play: frames are taken while the video plays.",
                    visible: "Keep the video on screen and its tab in front: frames are taken from the screen."}[v.waiting];
      return [
        h("p", {class: "video-progress", role: "status"},
          `${v.frames.length} of ${v.maxFrames} frames (${v.rate}/s of playing time)`),
        h("progress", {max: String(v.maxFrames || 1), value: String(v.frames.length)}),
        wait ? h("p", {class: "warning video-waiting"}, wait) : null,
        h("div", {class: "row"},
          h("button", {type: "button", class: "primary video-stop", disabled: !v.frames.length || v.cancelled,
                       onclick: () => { v.stop = true; }}, "Check these frames now"), cancel),
      ];
    }
    const job = v.job;
    let words = v.phase === "starting" && v.path === "frames" ? "Reading the service's sampling rate…" : "Sending…";
    if (job?.status === "queued") words = "Waiting for the service…";
    else if (job?.status === "running") {
      words = job.progress?.total ? `Scoring frames: ${job.progress.done} of ${job.progress.total}`
        : "Reading the video…";
    }
    const bar = job?.status === "running" && job.progress?.total
      ? h("progress", {max: String(job.progress.total), value: String(job.progress.done)}) : h("progress", {});
    return [h("p", {class: "video-progress", role: "status"}, words), bar, h("div", {class: "row"}, cancel)];
  }

  const time = (s) => (typeof s === "number" ? `${s.toFixed(1)} s` : "–");

  function frameClass(score, thresholds) {
    if (typeof score !== "number" || !thresholds) return "";
    return score >= thresholds.fake_from ? "fake" : score < thresholds.real_below ? "real" : "uncertain";
  }

  /** A frame's thumbnail with the track's face outlined on it (the box is in the video's pixels). */
  function thumbnail(rec, f) {
    const c = rec.check;
    const img = h("img", {alt: `Frame at ${time(f.t)}`});
    showImage(rec, img, `/v1/checks/${encodeURIComponent(c.id)}/frames/${f.frame_index}.jpg`);
    const wrap = h("span", {class: "thumb"}, img);
    const w = c.video?.width, hgt = c.video?.height;
    if (Array.isArray(f.box) && w > 0 && hgt > 0) {
      const box = h("i", {class: "box"});
      const [x, y, bw, bh] = f.box;
      Object.assign(box.style, {left: `${(100 * x) / w}%`, top: `${(100 * y) / hgt}%`,
                                width: `${(100 * bw) / w}%`, height: `${(100 * bh) / hgt}%`});
      wrap.append(box);
    }
    return wrap;
  }

  /** One track: its verdict, time range, a timeline strip and its decisive frame's heatmap. */
  function trackPart(rec, track, n, many) {
    const c = rec.check;
    const decisive = track.decisive?.frame_index;
    const strip = h("ol", {class: "timeline", "aria-label": `Face ${n}: P(fake) of every frame it was seen in`},
      (track.timeline ?? []).map((f) => h("li", {
        class: `frame ${frameClass(f.score, rec.thresholds)}${f.frame_index === decisive ? " decisive" : ""}`,
        "data-frame": String(f.frame_index), "data-score": String(f.score),
        title: `${time(f.t)}: P(fake) ${R.fixed(f.score)}${f.frame_index === decisive ? " (decisive frame)" : ""}`},
      thumbnail(rec, f), h("span", {class: "frame-score"}, R.fixed(f.score)), h("span", {class: "frame-t"}, time(f.t)))));
    requestAnimationFrame(() => { // the decisive frame in view within its strip
      const mark = strip.querySelector(".decisive");
      if (mark) strip.scrollLeft = mark.offsetLeft - strip.offsetLeft - (strip.clientWidth - mark.offsetWidth) / 2;
    });
    const heatmap = h("img", {class: "heatmap", alt: `Heatmap of face ${n}'s decisive frame`});
    const path = `/v1/checks/${encodeURIComponent(c.id)}/heatmap.png${many ? `?track=${track.id}` : ""}`;
    showImage(rec, heatmap, path, (e) => heatmap.replaceWith(h("p", {class: "muted"}, `No heatmap: ${e.message}`)));
    return h("section", {class: `track ${track.verdict}`, "data-track": String(track.id)},
      h("p", {class: "track-head"}, h("span", {class: `pill small ${track.verdict}`}, R.LABEL[track.verdict] || track.verdict),
        ` Face ${n}: P(fake) ${R.fixed(track.score)} · ${time(track.start_s)}–${time(track.end_s)} · `
        + `${track.frames_seen} frame${track.frames_seen === 1 ? "" : "s"}`),
      track.too_short ? h("p", {class: "muted"}, "Seen too briefly to judge well.") : null,
      strip,
      h("p", {class: "muted"}, `Decisive frame (outlined) at ${time(track.decisive?.t)}; where the detectors looked in it:`),
      heatmap);
  }

  function resultParts(rec, close) {
    const c = rec.check;
    const v = c.video ?? {};
    const tracks = v.tracks ?? [];
    const {HEADLINE, explanation, reportParts} = R.panelShared;
    const words = rec.state === "no_face"
      ? "The detectors judge faces only and found none in any sampled frame, so the video has no verdict."
      : explanation(rec);
    const seen = `${v.frames_sampled ?? "?"} frames sampled at ${v.fps_sampled ?? "?"}/s`
      + (typeof v.duration_s === "number" ? ` over ${time(v.duration_s)}` : "");
    return [
      h("header", {}, h("span", {class: `pill ${rec.state}`}, R.LABEL[rec.state]), h("h2", {}, HEADLINE[rec.state]), close),
      h("p", {class: "video-path", "data-path": rec.video.path || ""}, pathLine(rec)),
      h("p", {class: "confidence"}, words),
      h("p", {class: "muted video-seen"}, tracks.length > 1
        ? `${tracks.length} faces followed (${seen}); the video gets the verdict of its most suspicious face:`
        : tracks.length ? `1 face followed (${seen}):` : `${seen}.`),
      ...tracks.map((t, i) => trackPart(rec, t, i + 1, tracks.length > 1)),
      c.note ? h("p", {class: "muted"}, `Note: ${c.note}.`) : null,
      v.rule ? h("p", {class: "muted video-rule"}, `How a face's frames are combined: ${v.rule}.`) : null,
      c.warning ? h("p", {class: "warning"}, `Note: ${c.warning}.`) : null,
      reportParts(rec),
    ];
  }

  /** The panel's content for a video (content/panel.js calls it for records with `video`). */
  R.videoPanelParts = (rec, close) => {
    const v = rec.video;
    if (rec.state === "pending") {
      return [h("header", {}, h("span", {class: "pill"}, "…"), h("h2", {}, "Checking this video…"), close),
        h("p", {class: "video-path", "data-path": v.path || ""}, pathLine(rec)), ...progressParts(rec)];
    }
    if (rec.state === "error") {
      const video = R.panelImage();
      const cancelled = rec.error?.code === "cancelled";
      return [h("header", {}, h("span", {class: "pill"}, cancelled ? "—" : "ERROR"),
        h("h2", {}, cancelled ? "Cancelled" : "Not checked"), close),
      v.path ? h("p", {class: "video-path", "data-path": v.path}, pathLine(rec)) : null,
      h("p", {class: "reason"}, rec.error?.message || "The check failed"),
      h("div", {class: "row"},
        h("button", {type: "button", class: "primary", onclick: () => R.recheckVideo(video)}, "Try again"),
        v.path === "file" ? h("button", {type: "button", class: "video-capture-instead",
          onclick: () => R.recheckVideo(video, {capture: true})}, "Capture frames from the playing video instead") : null)];
    }
    return resultParts(rec, close);
  };
})();
