// Which badge a check gets: the service's verdict, or the user's own thresholds on P(fake).
// A moderator's decision and "no face found" are never re-judged by thresholds, and a face the
// service marks unfamiliar (unlike the faces its detectors learned from) is never called fake
// or real, and one marked unconfirmed (not every detector finds it fake on its own) is never
// called fake. A face the service did not judge (too small, or running
// off the picture's edge) is never called anything by thresholds either.

export const STATES = ["real", "fake", "uncertain", "no_face"];

export function badgeState(check, settings) {
  if (check.moderation || settings.useServiceThresholds || check.verdict === "no_face"
      || typeof check.score !== "number" || settings.fakeAt == null || settings.realAt == null) {
    return check.verdict;
  }
  const face = check.faces?.[check.decisive_face];
  if (face?.unfamiliar === true || face?.too_small === true || face?.cut_off === true) return "uncertain";
  if (check.score >= settings.fakeAt) return face?.confirmed === false ? "uncertain" : "fake";
  if (check.score < settings.realAt) return "real";
  return "uncertain";
}
