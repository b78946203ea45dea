// Checking a video from the context menu. A video played from a plain file address is fetched
// by the service itself; a stream (blob:/MediaSource, a .m3u8/.mpd manifest, a MediaStream) is
// checked from frames captured while it plays (content/video_capture.js), sent as one
// frame-sequence check. Either way the service answers with a job, followed here until the
// result arrives (the panel shows its progress and can cancel it).
(() => {
  const R = globalThis.realcheckPage;
  if (R.parts.has("videos")) return;
  R.parts.add("videos");
  const {tracked} = R;
  const POLL_MS = 700;
  let rightClicked = null; // the last <video> right-clicked (a MediaStream has no address)

  document.addEventListener("contextmenu", (e) => {
    rightClicked = e.composedPath().find((el) => el instanceof HTMLVideoElement) ?? null;
  }, {capture: true, passive: true});

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /** A plain http(s) file the service can fetch (not a streaming manifest, not blob:/data:). */
  R.isVideoFile = (src) => {
    try {
      const url = new URL(src, location.href);
      return (url.protocol === "http:" || url.protocol === "https:") && !/\.(m3u8|mpd)$/i.test(url.pathname);
    } catch {
      return false;
    }
  };

  /** Why a video check stopped, as the panel shows it. */
  function failure(error) {
    return {code: error?.code || "video_failed", message: error?.message || String(error || "The check failed")};
  }

  /** Re-renders what shows the video's state (badge, panel) when it is still the one tracked. */
  function update(video, rec) {
    if (tracked.get(video) !== rec) return;
    R.show(video, rec);
    if (R.panelImage() === video) R.renderPanel();
  }

  async function follow(video, rec, answer) {
    const v = rec.video;
    while (answer.ok && !answer.check) {
      v.job = answer.job;
      if (!v.job) throw failure({message: "The service answered without a job"});
      if (v.job.status === "failed") throw failure(v.job.error);
      if (v.job.status === "cancelled") throw failure({code: "cancelled", message: "Cancelled: the video was not checked."});
      if (v.cancelled && !v.cancelSent) { // cancelled while the frames were on their way
        v.cancelSent = true;
        answer = await R.send({type: "realcheck:job-cancel", id: v.job.id});
        continue;
      }
      update(video, rec);
      await sleep(POLL_MS);
      if (tracked.get(video) !== rec) return null; // forgotten meanwhile (src changed, page left)
      answer = await R.send({type: "realcheck:job", id: v.job.id});
    }
    if (!answer.ok) throw failure(answer.error);
    return answer;
  }

  async function run(video, rec, {capture}) {
    const v = rec.video;
    const update_ = () => update(video, rec);
    let answer;
    if (!capture && R.isVideoFile(rec.src)) {
      v.path = "file";
      update_();
      answer = await R.send({type: "realcheck:video-url", url: new URL(rec.src, location.href).href});
    } else {
      v.path = "frames";
      const plan = await R.send({type: "realcheck:video-plan"});
      if (!plan.ok) throw failure(plan.error);
      v.phase = "capturing";
      v.alive = () => tracked.get(video) === rec && video.isConnected;
      await R.captureVideo(video, v, plan, update_);
      if (v.cancelled) throw failure({code: "cancelled", message: "Cancelled: no frame was sent."});
      if (!v.frames.length) throw failure({code: "no_frames", message: "No frame was captured: play the video, then check it again."});
      v.phase = "sending";
      update_();
      answer = await R.send({type: "realcheck:video-frames", frames: v.frames, fps: v.rate, capture: v.capture,
                             src: rec.src});
      v.sent = v.frames.length;
      v.frames = []; // sent: no need to keep them
    }
    v.phase = "job";
    return follow(video, rec, answer);
  }

  /** Checks one video now (`capture`: take frames even from a file address). */
  R.checkVideo = (video, {capture = false} = {}) => {
    const rec = {state: "pending", src: R.currentSrc(video), check: null, error: null, badge: null, heatmap: null,
                 video: {path: null, phase: "starting", capture: null, rate: null, frames: [], sent: 0, maxFrames: 0,
                         waiting: null, job: null, stop: false, cancelled: false, images: new Map()}};
    tracked.set(video, rec);
    R.show(video, rec);
    R.summarize();
    rec.done = (async () => {
      let answer = null;
      try {
        answer = await run(video, rec, {capture});
        if (!answer) return rec;
        Object.assign(rec, {state: answer.state, check: answer.check, thresholds: answer.thresholds});
      } catch (e) {
        Object.assign(rec, {state: "error", error: failure(e)});
      }
      if (tracked.get(video) !== rec) return rec;
      update(video, rec);
      R.summarize();
      return rec;
    })();
    return rec;
  };

  /** Cancels the video's check: drops the capture, or asks the service to cancel its job. */
  R.cancelVideo = async (video) => {
    const rec = tracked.get(video);
    const v = rec?.video;
    if (!v || rec.state !== "pending") return;
    v.cancelled = true;
    if (v.job) {
      v.cancelSent = true;
      const answer = await R.send({type: "realcheck:job-cancel", id: v.job.id});
      if (answer.ok) v.job = answer.job; // the poll sees "cancelled" (or "done", if it was too late)
    }
    update(video, rec);
  };

  R.recheckVideo = (video, options) => {
    const open = R.panelImage() === video;
    R.forget(video);
    const rec = R.checkVideo(video, options);
    if (open) R.openPanel(video);
    return rec;
  };

  function findVideos(srcUrl) {
    const all = [...document.querySelectorAll("video")];
    const bySrc = srcUrl ? all.filter((v) => v.currentSrc === srcUrl || v.src === srcUrl) : [];
    if (rightClicked?.isConnected && (!bySrc.length || bySrc.includes(rightClicked))) return [rightClicked];
    return bySrc;
  }

  /** Right-click → "Check video with Realcheck" on the video playing srcUrl. */
  R.menuCheckVideo = async (srcUrl) => {
    const videos = findVideos(srcUrl);
    const video = videos[0];
    if (!video) return {ok: false, found: 0, error: "the video is not a <video> of this page"};
    let rec = tracked.get(video);
    if (!rec || rec.state === "error" || rec.src !== R.currentSrc(video)) rec = R.recheckVideo(video);
    R.openPanel(video);
    await rec.done;
    const now = tracked.get(video);
    return {ok: true, found: videos.length, state: now?.state, path: now?.video?.path, capture: now?.video?.capture,
            checkId: now?.check?.id ?? null, error: now?.error ?? null};
  };
})();
