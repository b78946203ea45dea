// Videos, the worker's side: how a streamed video is sampled (the service's own rate and limits,
// from its /health), the tab screenshots cropped to a video for pages whose video cannot be
// read, and the frames sent as one frame-sequence check.

import {RealcheckError, dataUrl} from "./api.js";

/** Chrome takes at most two screenshots of a tab per second (MAX_CAPTURE_VISIBLE_TAB_CALLS_PER_SECOND). */
export const TAB_SHOTS_PER_S = 2;
/** Frames are sent at most this large (long side, px) unless the service accepts less. */
export const FRAME_MAX_SIDE = 1280;
export const FRAME_QUALITY = 0.9;

/**
 * How to sample a streamed video: the service's rate and limits (its /health `video`: the
 * `video_*` settings), the user's capture length. {fps, seconds, maxFrames, maxSide, maxPixels};
 * an error when the service does not say (then it does not check videos, and the extension has
 * no number of its own to use).
 */
export function samplingPlan(health, settings) {
  const v = health?.video;
  const fps = Number(v?.sample_rate);
  if (!(fps > 0)) {
    throw new RealcheckError("no_video", "This Realcheck service does not check videos (its /health gives no sampling rate)");
  }
  const limit = (value) => (Number(value) > 0 ? Number(value) : Infinity);
  const seconds = Math.min(Number(settings.videoSeconds) || 1, limit(v.sample_seconds));
  const maxFrames = Math.max(1, Math.min(limit(v.max_frames), Math.round(seconds * fps)));
  return {fps, seconds, maxFrames, maxSide: Math.min(FRAME_MAX_SIDE, limit(v.max_side)),
          maxPixels: Math.min(FRAME_MAX_SIDE * FRAME_MAX_SIDE, limit(v.max_pixels))}; // finite: it travels as JSON
}

/** A frame's size within `maxSide` on its long side and `maxPixels` in all, keeping its shape. */
export function fitSize(width, height, maxSide, maxPixels = Infinity) {
  const scale = Math.min(1, maxSide / Math.max(width, height), Math.sqrt(maxPixels / (width * height)));
  return {width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale))};
}

/**
 * The part of a tab screenshot showing the video: `rect` is the video's box in CSS pixels of
 * the viewport (`view` = {width, height}: window.innerWidth/innerHeight), `image` the
 * screenshot's size in device pixels. The scale comes from the two sizes (devicePixelRatio and
 * zoom alike); the box is clipped to the viewport. Null when less than `minVisible` of the video
 * is on screen (scrolled away, covered by the window's edge).
 */
export function cropBox(rect, view, image, minVisible = 0.5) {
  const left = Math.max(0, rect.left), top = Math.max(0, rect.top);
  const right = Math.min(view.width, rect.left + rect.width), bottom = Math.min(view.height, rect.top + rect.height);
  const area = rect.width * rect.height;
  if (!(area > 0) || right <= left || bottom <= top || ((right - left) * (bottom - top)) / area < minVisible) {
    return null;
  }
  const sx = image.width / view.width, sy = image.height / view.height;
  const x = Math.round(left * sx), y = Math.round(top * sy);
  return {x, y, width: Math.min(image.width - x, Math.round((right - left) * sx)),
          height: Math.min(image.height - y, Math.round((bottom - top) * sy))};
}

/** One screenshot of the tab's visible area cropped to the video: a JPEG data: URL. */
export async function captureTabFrame(windowId, rect, view, maxSide, maxPixels) {
  let shot;
  try {
    shot = await chrome.tabs.captureVisibleTab(windowId, {format: "png"});
  } catch (e) {
    const busy = /MAX_CAPTURE_VISIBLE_TAB_CALLS_PER_SECOND|quota/i.test(String(e?.message));
    throw new RealcheckError(busy ? "capture_busy" : "capture_failed",
      busy ? "Screenshots come at most twice a second" : `The tab could not be captured: ${e?.message || e}`);
  }
  const bitmap = await createImageBitmap(await (await fetch(shot)).blob());
  try {
    const box = cropBox(rect, view, bitmap);
    if (!box) throw new RealcheckError("video_hidden", "The video is not on screen: scroll it into view");
    const size = fitSize(box.width, box.height, maxSide, maxPixels);
    const canvas = new OffscreenCanvas(size.width, size.height);
    canvas.getContext("2d").drawImage(bitmap, box.x, box.y, box.width, box.height, 0, 0, size.width, size.height);
    const blob = await canvas.convertToBlob({type: "image/jpeg", quality: FRAME_QUALITY});
    return dataUrl(await blob.arrayBuffer(), "image/jpeg");
  } finally {
    bitmap.close();
  }
}

/** The frames (JPEG data: URLs from the page) as Blobs, checked to be images. */
export async function framesFromDataUrls(urls, maxFrames) {
  if (!Array.isArray(urls) || !urls.length) throw new RealcheckError("no_frames", "No frame was captured");
  if (urls.length > maxFrames) throw new RealcheckError("too_many_frames", `At most ${maxFrames} frames can be sent`);
  return Promise.all(urls.map(async (url) => {
    if (!/^data:image\/(jpeg|png);base64,/.test(String(url))) throw new RealcheckError("bad_frame", "A frame is not an image");
    return (await fetch(url)).blob();
  }));
}
