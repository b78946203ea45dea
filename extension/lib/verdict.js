// Which badge a check gets: the service's verdict, or the user's own thresholds on P(fake).
// A moderator's decision and "no face found" are never re-judged by thresholds, and a face the
// service marks unfamiliar (unlike the faces its detectors learned from) is never called fake.

export const STATES = ["real", "fake", "uncertain", "no_face"];

export function badgeState(check, settings) {
  if (check.moderation || settings.useServiceThresholds || check.verdict === "no_face"
      || typeof check.score !== "number" || settings.fakeAt == null || settings.realAt == null) {
    return check.verdict;
  }
  if (check.score >= settings.fakeAt) {
    return check.faces?.[check.decisive_face]?.unfamiliar === true ? "uncertain" : "fake";
  }
  if (check.score < settings.realAt) return "real";
  return "uncertain";
}
