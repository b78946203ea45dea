// What the panel says about an image's provenance and about a decision found through a
// near-duplicate: plain functions over the check, shared by the page script (a classic
// content script, so a global in the extension's isolated world).
(() => {
  /** {text, kind} for the check's provenance, or null: kind is ai, valid, untrusted, invalid
   *  or unverified (unsigned metadata, which anyone can write). */
  function provenanceLine(check) {
    const p = check.provenance;
    if (!p || !p.summary) return null;
    const c2pa = p.c2pa;
    if (c2pa) {
      const kind = c2pa.state === "valid" ? (p.ai_generated ? "ai" : "valid") : c2pa.state;
      return {kind, text: p.summary + "."};
    }
    return {kind: "unverified", text: "Unverified: " + p.summary.replace(/^Unverified /, "") + "."};
  }

  /** A sentence on how the moderators' decision reached this image, or null. */
  function matchLine(check) {
    const m = check.moderation && check.moderation.match;
    if (!m) return null;
    const how = m.source ? `an imported hash list (${m.source})` : "a moderator";
    return `Decided by ${how} for a near-duplicate of this image (${m.distance} of 256 bits apart).`;
  }

  globalThis.realcheckProvenance = {provenanceLine, matchLine};
})();
