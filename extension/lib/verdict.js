// Which badge a check gets: the service's verdict, or the user's own thresholds on P(fake).

export function badgeState(check, settings) {
  if (check.moderation || settings.useServiceThresholds) return check.verdict;
  if (check.score >= settings.fakeAt) return "fake";
  if (check.score < settings.realAt) return "real";
  return "uncertain";
}
