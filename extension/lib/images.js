// Fetching an image's bytes the way the page got them (cookies included, so images behind a
// login work too).

import {RealcheckError} from "./api.js";

export const MAX_IMAGE_BYTES = 20 * 1024 * 1024;

export async function fetchImage(src, maxBytes = MAX_IMAGE_BYTES) {
  let resp;
  try {
    resp = await fetch(src, {credentials: "include"});
  } catch {
    throw new RealcheckError("image_unavailable", "The image could not be downloaded");
  }
  if (!resp.ok) {
    throw new RealcheckError("image_unavailable", `The image could not be downloaded (HTTP ${resp.status})`);
  }
  const declared = Number(resp.headers.get("Content-Length") || 0);
  if (declared > maxBytes) throw tooLarge(maxBytes);
  const bytes = await resp.arrayBuffer();
  if (bytes.byteLength > maxBytes) throw tooLarge(maxBytes);
  if (bytes.byteLength === 0) throw new RealcheckError("image_unavailable", "The image is empty");
  const type = (resp.headers.get("Content-Type") || "").split(";")[0].trim();
  return {bytes, type: type.startsWith("image/") ? type : "application/octet-stream"};
}

function tooLarge(maxBytes) {
  return new RealcheckError("image_too_large",
    `The image is larger than ${Math.round(maxBytes / 1048576)} MB and was not sent`);
}

/** The image's URL as a source to record, only when it is a plain web address. */
export function sourceUrl(src) {
  return /^https?:\/\//i.test(src) && src.length <= 2048 ? src : undefined;
}
