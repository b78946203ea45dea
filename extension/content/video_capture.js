// Frames from a playing video, for streams the service cannot fetch (blob:/MediaSource): drawn
// on a canvas when the page may read the video's pixels (same origin), else taken from
// screenshots of the tab cropped to the video (the worker takes and crops them). Frames are
// taken at the service's sampling rate, by the video's own clock (playing time), for up to the
// user's capture length or the service's frame limit.
(() => {
  const R = globalThis.realcheckPage;
  if (R.parts.has("video-capture")) return;
  R.parts.add("video-capture");

  const QUALITY = 0.9;
  const TICK_MS = 40;

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const nextPaint = () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));

  /** Whether the page may read the video's pixels: drawing it leaves a canvas untainted. */
  R.videoReadable = (video) => {
    try {
      const canvas = document.createElement("canvas");
      canvas.width = canvas.height = 1;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(video, 0, 0, 1, 1);
      ctx.getImageData(0, 0, 1, 1);
      return true;
    } catch {
      return false; // SecurityError: another origin's pixels
    }
  };

  function fit(width, height, {maxSide, maxPixels}) { // as lib/video.js fitSize
    const scale = Math.min(1, maxSide / Math.max(width, height), Math.sqrt((maxPixels || Infinity) / (width * height)));
    return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
  }

  function canvasFrame(video, plan) {
    const canvas = document.createElement("canvas");
    [canvas.width, canvas.height] = fit(video.videoWidth, video.videoHeight, plan);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    return canvas.toDataURL("image/jpeg", QUALITY);
  }

  /** The video's content box (object-fit: contain letterboxes it) in viewport CSS pixels. */
  function pictureRect(video) {
    const r = video.getBoundingClientRect();
    const style = getComputedStyle(video);
    const px = (v) => parseFloat(v) || 0;
    const left = r.left + px(style.borderLeftWidth) + px(style.paddingLeft);
    const top = r.top + px(style.borderTopWidth) + px(style.paddingTop);
    const width = Math.max(0, r.width - px(style.borderLeftWidth) - px(style.borderRightWidth) - px(style.paddingLeft) - px(style.paddingRight));
    const height = Math.max(0, r.height - px(style.borderTopWidth) - px(style.borderBottomWidth) - px(style.paddingTop) - px(style.paddingBottom));
    const fitMode = style.objectFit || "contain";
    if (!video.videoWidth || !video.videoHeight || fitMode === "fill" || fitMode === "cover") return {left, top, width, height};
    const scale = Math.min(width / video.videoWidth, height / video.videoHeight, fitMode === "none" ? 1 : Infinity);
    const w = video.videoWidth * scale, h = video.videoHeight * scale;
    return {left: left + (width - w) / 2, top: top + (height - h) / 2, width: w, height: h};
  }

  /** A screenshot of the tab cropped to the video, Realcheck's own badges and panel hidden. */
  async function tabFrame(video, {maxSide, maxPixels}) {
    if (document.visibilityState !== "visible") return {wait: "visible"};
    const host = R.overlayHost();
    host?.style.setProperty("opacity", "0", "important"); // not visibility: the badges reset it (all: initial)
    try {
      await nextPaint();
      const answer = await R.send({type: "realcheck:capture-tab", rect: pictureRect(video),
                                   view: {width: innerWidth, height: innerHeight}, maxSide, maxPixels});
      if (answer.ok) return {frame: answer.dataUrl};
      if (answer.error.code === "capture_busy") return {wait: "busy"};
      if (answer.error.code === "video_hidden") return {wait: "visible"};
      throw Object.assign(new Error(answer.error.message), {code: answer.error.code});
    } finally {
      host?.style.removeProperty("opacity");
    }
  }

  /**
   * Captures frames into `state` (the panel shows it as it goes): `state.capture` is "canvas"
   * or "tab", `state.rate` the frames per second of playing time, `state.frames` the JPEG data:
   * URLs, `state.waiting` why it waits ("play": the video is paused; "visible": it is not on
   * screen), and the panel may set `state.stop` (check what is there now) or `state.cancelled`;
   * `state.alive()`, when given, says whether the check is still wanted.
   * `plan` is the worker's {fps, seconds, maxFrames, maxSide, maxPixels}; `onChange()` is called on news.
   */
  R.captureVideo = async (video, state, {plan, tabShotsPerSecond}, onChange) => {
    state.capture = R.videoReadable(video) ? "canvas" : "tab";
    if (state.capture === "tab" && window !== window.top) {
      // A frame does not know where it sits in the tab, so a screenshot cannot be cropped to it.
      throw Object.assign(new Error("This video plays inside a frame of the page and its pixels are another site's:"
        + " it cannot be captured. Open the frame's own page and check the video there."), {code: "capture_in_frame"});
    }
    state.rate = state.capture === "tab" ? Math.min(plan.fps, tabShotsPerSecond) : plan.fps;
    state.maxFrames = Math.max(1, Math.min(plan.maxFrames, Math.round(plan.seconds * state.rate)));
    state.frames = [];
    state.waiting = null;
    onChange();
    if (video.ended) video.currentTime = 0;
    if (video.paused) {
      try {
        await video.play();
      } catch {
        state.waiting = "play"; // autoplay refused: the user presses play
        onChange();
      }
    }
    const step = 1 / state.rate;
    let next = null;
    while (!state.stop && !state.cancelled && state.frames.length < state.maxFrames && !video.ended) {
      if (state.alive && !state.alive()) { // the video left the page (or its source changed)
        state.cancelled = true;
        break;
      }
      const waiting = video.paused || video.readyState < 2 ? "play" : null;
      if (waiting !== state.waiting) {
        state.waiting = waiting;
        onChange();
      }
      const t = video.currentTime;
      if (waiting || (next !== null && t + 1e-3 < next && t > next - 2 * step)) {
        await sleep(TICK_MS);
        continue;
      }
      if (next === null || t > next + 2 * step || t < next - 2 * step) next = t; // start, or a seek
      const shot = state.capture === "canvas" ? {frame: canvasFrame(video, plan)} : await tabFrame(video, plan);
      if (state.cancelled) break;
      if (shot.wait) {
        if (shot.wait !== "busy" && state.waiting !== shot.wait) {
          state.waiting = shot.wait;
          onChange();
        }
        await sleep(shot.wait === "busy" ? 100 : 250);
        continue;
      }
      state.frames.push(shot.frame);
      state.waiting = null;
      next += step;
      onChange();
    }
    state.waiting = null;
    return state.frames;
  };
})();
