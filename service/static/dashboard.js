// Realcheck moderation dashboard. Plain JS: every call goes to the API with the session token;
// text from the API is only ever inserted as text (never as HTML).
"use strict";

const TOKEN_KEY = "realcheck.token";
const ROLES = ["user", "moderator", "admin"];
const DECISIONS = {
  fake: { label: "Confirmed fake", key: "F", done: "Confirmed fake" },
  real: { label: "Real after all", key: "R", done: "Marked real" },
  dismissed: { label: "Dismiss", key: "D", done: "Dismissed" },
};
const STATE_NAMES = { open: "Open", confirmed_fake: "Confirmed fake", real: "Real", dismissed: "Dismissed" };

const S = {
  token: null, me: null, view: null,
  thresholds: null,
  queue: { state: "open", sort: "score", limit: 25, offset: 0, items: [], total: 0, selected: null, item: null, busy: false },
  users: { limit: 50, offset: 0, total: 0 },
  audit: { before: null },
  blobs: new Map(),
};

// ---- small helpers ----------------------------------------------------------------------
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function pct(p) { return p === null || p === undefined ? "–" : Math.round(p * 100) + "%"; }
function when(ts) {
  if (!ts) return "";
  const s = Date.now() / 1000 - ts;
  if (s < 60) return "just now";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  if (s < 86400 * 30) return Math.floor(s / 86400) + " d ago";
  return new Date(ts * 1000).toLocaleDateString();
}
function fullTime(ts) { return ts ? new Date(ts * 1000).toLocaleString() : ""; }
function host(url) { try { return new URL(url).host; } catch { return url; } }
function has(role) { return S.me && ROLES.indexOf(S.me.role) >= ROLES.indexOf(role); }
/** The service's thresholds (GET /health), read at start: the colours follow the model card. */
function scoreClass(p) {
  const t = S.thresholds;
  if (p === null || p === undefined || !t) return "";
  return p >= t.fake_from ? "hi" : p < t.real_below ? "lo" : "";
}
const VERDICT_WORDS = { real: "real", fake: "fake", uncertain: "unsure", no_face: "no face: not judged" };
function verdictWord(v) { return VERDICT_WORDS[v] || v || "?"; }

let toastTimer = null;
function toast(message, bad = false) {
  const t = $("#toast");
  t.textContent = message;
  t.classList.toggle("bad", bad);
  t.classList.remove("hidden");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.classList.add("hidden"), 3500);
}

class ApiError extends Error {
  constructor(status, body) {
    super(body.message || ("HTTP " + status));
    this.status = status; this.code = body.error; this.body = body;
  }
}

async function api(path, { method = "GET", body, raw = false } = {}) {
  const headers = { Authorization: "Bearer " + S.token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (resp.status === 401 && S.me) { signOut("Your session has ended: sign in again."); }
  if (!resp.ok) throw new ApiError(resp.status, await resp.json().catch(() => ({})));
  return raw ? resp : resp.json();
}

async function blobUrl(path) {
  if (S.blobs.has(path)) return S.blobs.get(path);
  const resp = await api(path, { raw: true });
  const url = URL.createObjectURL(await resp.blob());
  S.blobs.set(path, url);
  return url;
}

function loadImage(img, path) {
  blobUrl(path).then((url) => { img.src = url; }).catch(() => img.classList.add("missing"));
  return img;
}

// ---- sign-in ------------------------------------------------------------------------------
async function signIn(token) {
  S.token = token;
  S.me = await api("/v1/me");
  localStorage.setItem(TOKEN_KEY, token);
  start();
}

function signOut(message) {
  localStorage.removeItem(TOKEN_KEY);
  S.token = null; S.me = null;
  for (const url of S.blobs.values()) URL.revokeObjectURL(url);
  S.blobs.clear();
  $("#nav").classList.add("hidden");
  $("#who").classList.add("hidden");
  show("signin");
  const err = $("#token-error");
  err.textContent = message || "";
  err.classList.toggle("hidden", !message);
}

$("#token-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const token = $("#token-input").value.trim().replace(/^Bearer\s+/i, "");
  const err = $("#token-error");
  err.classList.add("hidden");
  try {
    await signIn(token);
    $("#token-input").value = "";
  } catch (ex) {
    S.token = null;
    err.textContent = ex.message || "This token is not accepted.";
    err.classList.remove("hidden");
  }
});
$("#signout").addEventListener("click", () => signOut());

// ---- views ----------------------------------------------------------------------------------
function show(view) {
  S.view = view;
  for (const sec of $$(".view")) sec.classList.toggle("hidden", sec.id !== "view-" + view);
  for (const b of $$("#nav button")) b.toggleAttribute("aria-current", b.dataset.view === view);
  for (const b of $$("#nav button[aria-current]")) b.setAttribute("aria-current", "page");
}

function go(view) {
  if (view !== "queue") history.replaceState(null, "", "#" + view);
  show(view);
  ({ queue: loadQueue, users: loadUsers, faq: loadFaq, audit: () => loadAudit(true), mail: loadMail,
     settings: loadSettings })[view]();
}

function start() {
  $("#who-email").textContent = S.me.email || S.me.id;
  const role = $("#who-role");
  role.textContent = S.me.role;
  role.className = "badge " + S.me.role;
  $("#who").classList.remove("hidden");
  for (const b of $$("#nav button")) b.classList.toggle("hidden", !has(b.dataset.role));
  for (const n of $$("[data-role]", $("#view-settings"))) n.classList.toggle("hidden", !has(n.dataset.role));
  $("#nav").classList.remove("hidden");
  $("#settings-note").classList.toggle("hidden", has("moderator"));
  const hash = location.hash.slice(1);
  if (hash.startsWith("item=") && has("moderator")) {
    S.queue.selected = hash.slice(5);
    S.queue.state = "all";
    go("queue");
  } else if (["users", "faq", "audit", "mail"].includes(hash) && has("admin")) go(hash);
  else go(has("moderator") ? "queue" : "settings");
}

for (const b of $$("#nav button")) b.addEventListener("click", () => go(b.dataset.view));

// ---- queue -----------------------------------------------------------------------------------
for (const b of $$("#states button")) {
  b.addEventListener("click", () => { S.queue.state = b.dataset.state; S.queue.offset = 0; S.queue.selected = null; loadQueue(); });
}
$("#sort").addEventListener("change", (e) => { S.queue.sort = e.target.value; S.queue.offset = 0; loadQueue(); });
$("#prev").addEventListener("click", () => { S.queue.offset = Math.max(0, S.queue.offset - S.queue.limit); S.queue.selected = null; loadQueue(); });
$("#next").addEventListener("click", () => { S.queue.offset += S.queue.limit; S.queue.selected = null; loadQueue(); });

async function loadQueue() {
  const q = S.queue;
  let data;
  try {
    data = await api(`/v1/moderation/items?state=${q.state}&sort=${q.sort}&limit=${q.limit}&offset=${q.offset}`);
  } catch (ex) { toast(ex.message, true); return; }
  if (data.items.length === 0 && q.offset > 0) { q.offset = Math.max(0, q.offset - q.limit); return loadQueue(); }
  q.items = data.items; q.total = data.total;
  for (const b of $$("#states button")) {
    b.setAttribute("aria-selected", String(b.dataset.state === q.state));
    const span = $("span", b);
    if (span) span.textContent = data.counts[b.dataset.state] || "";
  }
  $("#open-count").textContent = data.counts.open || "";
  $("#sort").value = q.sort;
  $("#range").textContent = q.total ? `${q.offset + 1}–${q.offset + q.items.length} of ${q.total}` : "";
  $("#prev").disabled = q.offset === 0;
  $("#next").disabled = q.offset + q.items.length >= q.total;
  renderItems();
  const keep = q.selected && (q.items.some((i) => i.id === q.selected) || q.state === "all");
  if (keep) selectItem(q.selected);
  else if (q.items.length) selectItem(q.items[0].id);
  else { q.selected = null; q.item = null; renderDetail(null); }
}

function renderItems() {
  const list = $("#items");
  list.replaceChildren();
  if (!S.queue.items.length) {
    const what = S.queue.state === "open" ? "No open items: the queue is clear." : "Nothing here.";
    list.append(h("li", { class: "empty", id: "queue-empty" }, what));
    return;
  }
  for (const it of S.queue.items) {
    const bar = h("span", { class: "bar " + scoreClass(it.score) }, h("i"));
    bar.firstChild.style.width = Math.round((it.score || 0) * 100) + "%";
    const meta = [`${it.check_count} check${it.check_count === 1 ? "" : "s"}`,
      `${it.user_count} user${it.user_count === 1 ? "" : "s"}`];
    if (it.report_count) meta.push(`${it.report_count} report${it.report_count === 1 ? "" : "s"}`);
    if (it.pages.length) meta.push(host(it.pages[0].url));
    const badge = it.state === "open"
      ? h("span", { class: "badge " + (it.reason === "report" ? "open" : it.detector_verdict || "") },
          it.reason === "report" ? "reported" : verdictWord(it.detector_verdict) || "flagged")
      : h("span", { class: "badge " + it.state }, STATE_NAMES[it.state]);
    const li = h("li", { class: "item", dataset: { id: it.id, score: it.score ?? "" }, "aria-selected": String(it.id === S.queue.selected),
      onclick: () => selectItem(it.id) },
      loadImage(h("img", { class: "thumb", alt: "" }), it.image_url),
      h("div", { class: "item-main" },
        h("div", { class: "item-top" }, badge, h("span", { class: "item-score", title: "P(fake) from the detectors" }, pct(it.score)), bar),
        h("div", { class: "item-meta", title: fullTime(it.last_seen_at) }, meta.join(" · ")),
        h("div", { class: "item-meta" }, "Last seen " + when(it.last_seen_at))));
    list.append(li);
  }
}

async function selectItem(id) {
  const q = S.queue;
  q.selected = id;
  for (const li of $$("#items .item")) li.setAttribute("aria-selected", String(li.dataset.id === id));
  const li = $(`#items .item[data-id="${CSS.escape(id)}"]`);
  if (li) li.scrollIntoView({ block: "nearest" });
  history.replaceState(null, "", "#item=" + id);
  try {
    const item = await api(`/v1/moderation/items/${encodeURIComponent(id)}`);
    if (q.selected !== id) return;
    q.item = item;
    renderDetail(item);
  } catch (ex) {
    if (ex.status === 404) { toast("That item no longer exists.", true); q.selected = null; renderDetail(null); }
    else toast(ex.message, true);
  }
}

function figure(path, caption) {
  return h("figure", {}, loadImage(h("img", { alt: caption }), path), h("figcaption", {}, caption));
}

function renderDetail(item) {
  const pane = $("#detail");
  pane.replaceChildren();
  if (!item) { pane.append(h("div", { class: "empty-detail muted" }, S.queue.items.length ? "Select an item." : "Nothing to review.")); return; }
  const decided = item.decision;
  const head = h("div", { class: "detail-head" },
    h("h2", {}, "Flagged image"),
    h("span", { class: "badge " + item.state, id: "detail-state" }, STATE_NAMES[item.state]),
    h("span", { class: "mono", title: item.sha256 }, item.sha256.slice(0, 12) + "…"),
    h("span", { class: "spacer" }),
    h("span", { class: "hint" }, item.reason === "report" ? "Reported by a user" : "Flagged by the detectors"),
    h("span", { class: "hint" }, "· version " + item.version));
  const media = h("div", { class: "media" }, figure(item.image_url, "Image"), figure(item.heatmap_url, "Heatmap: red = where the detectors saw most fake"));
  const note = h("textarea", { id: "note", rows: "1", maxlength: "2000",
    placeholder: "Note (optional): shown to users who check this image and to reporters" });
  const buttons = Object.entries(DECISIONS).map(([d, spec]) =>
    h("button", { class: d === "fake" ? "fake" : d === "real" ? "real" : "", id: "decide-" + d, onclick: () => decide(d) },
      spec.label, h("kbd", {}, spec.key)));
  const decide_ = h("div", { class: "card decide" },
    decided ? h("p", { class: "decided-line" }, h("b", {}, DECISIONS[decided.decision].done),
      ` by ${decided.by_email || decided.by}, ${when(decided.at)}`, decided.note ? ` — “${decided.note}”` : "",
      item.state === "open" ? h("span", { class: "muted" }, " (reopened by a new report)") : "") : null,
    note, h("div", { class: "decide-buttons" }, buttons),
    h("div", { class: "hint", id: "shortcut-hint" }, "Shortcuts: F, R, D decide · J/K next/previous · N note · ? help"));
  const facts = h("div", { class: "facts" },
    fact(pct(item.detectors.score), "P(fake) of the decisive face, detectors: " + verdictWord(item.detectors.verdict)),
    fact(item.check_count, "checks"), fact(item.user_count, "users met it"), fact(item.report_count, "reports"));
  const video = h("div", { id: "video-slot" });
  pane.append(...[head, media, video, decide_, facts, provenanceSection(item), facesSection(item), variantsSection(item),
    h("div", { class: "two" }, pagesSection(item), reportsSection(item)), historySection(item)].filter(Boolean));
  if (item.warning) pane.append(h("p", { class: "hint" }, "Note: " + item.warning));
  showVideo(item, head, media, video);
}

// ---- videos: a timeline strip per face track ------------------------------------------------
/** The checks of an item, newest first: the one that flagged it and those reported (the item's
 * own record names them); a video's frames and tracks are read from one of them. */
function itemCheckIds(item) {
  const ids = [];
  for (const e of item.history.slice().reverse()) if (e.kind === "flagged" && e.detail && e.detail.check_id) ids.push(e.detail.check_id);
  for (const r of item.reports.slice().reverse()) if (r.check_id) ids.push(r.check_id);
  return [...new Set(ids)];
}

/** The video check behind an item (null for an image, or when none of its checks remains). */
async function videoCheckOf(item) {
  for (const id of itemCheckIds(item)) {
    try {
      const check = await api(`/v1/checks/${encodeURIComponent(id)}`);
      return check.media === "video" ? check : null;
    } catch (ex) {
      if (ex.status !== 404) throw ex; // that check was deleted: try the next
    }
  }
  return null;
}

/** A sampled frame's thumbnail with the track's face outlined (its box is in the video's pixels). */
function frameThumb(f, v, path) {
  const wrap = h("span", { class: "thumb-wrap" }, loadImage(h("img", { alt: `Frame at ${secs(f.t)}` }), path));
  if (Array.isArray(f.box) && v.width > 0 && v.height > 0) {
    const box = h("i", { class: "box" });
    const [x, y, w, bh] = f.box;
    Object.assign(box.style, { left: `${100 * x / v.width}%`, top: `${100 * y / v.height}%`,
      width: `${100 * w / v.width}%`, height: `${100 * bh / v.height}%` });
    wrap.append(box);
  }
  return wrap;
}

function secs(s) { return typeof s === "number" ? s.toFixed(1) + " s" : "–"; }

async function showVideo(item, head, media, slot) {
  let check;
  try { check = await videoCheckOf(item); } catch { return; } // an image's item, or its check is out of reach
  if (!check || S.queue.selected !== item.id || !slot.isConnected) return;
  const v = check.video || {};
  const tracks = v.tracks || [];
  $("h2", head).textContent = "Flagged video";
  const captions = $$("figcaption", media);
  if (captions[0]) captions[0].textContent = "Decisive frame";
  if (captions[1]) captions[1].textContent = "Heatmap of the decisive frame";
  const how = v.source === "frames"
    ? `${v.frames_sampled} frames captured from a playing video (${v.capture === "tab" ? "screen" : v.capture || "?"})`
    : `${v.frames_sampled} frames sampled at ${v.fps_sampled}/s from the video file`;
  const base = `/v1/checks/${encodeURIComponent(check.id)}`;
  const strips = tracks.map((t, n) => {
    const decisive = t.decisive ? t.decisive.frame_index : null;
    const frames = (t.timeline || []).map((f) => {
      const mark = f.frame_index === decisive;
      return h("li", { class: "frame " + scoreClass(f.score) + (mark ? " decisive" : ""),
        dataset: { frame: f.frame_index, score: f.score }, title: `${secs(f.t)}: P(fake) ${pct(f.score)}${mark ? " (decisive frame)" : ""}` },
        frameThumb(f, v, `${base}/frames/${f.frame_index}.jpg`),
        h("span", { class: "frame-score" }, pct(f.score)), h("span", { class: "frame-t" }, secs(f.t)));
    });
    const heat = tracks.length > 1
      ? figure(`${base}/heatmap.png?track=${t.id}`, `Face ${n + 1}: heatmap of its decisive frame (${secs(t.decisive && t.decisive.t)})`)
      : null;
    return h("div", { class: "track card", dataset: { track: t.id } },
      h("div", { class: "track-head" }, h("b", {}, `Face ${n + 1}`),
        h("span", { class: "badge " + t.verdict }, verdictWord(t.verdict)),
        h("span", {}, `P(fake) ${pct(t.score)}`), h("span", { class: "muted" }, `${secs(t.start_s)}–${secs(t.end_s)} · ${t.frames_seen} frames`),
        t.too_short ? h("span", { class: "muted" }, "· seen too briefly to judge well") : null),
      h("ol", { class: "timeline", "aria-label": `Face ${n + 1}: P(fake) per sampled frame` }, frames),
      heat ? h("div", { class: "track-heat" }, heat) : null);
  });
  slot.replaceWith(h("div", { class: "section", id: "video" },
    h("h3", {}, "Video timeline"),
    h("p", { class: "hint" }, `${how}${typeof v.duration_s === "number" ? ", " + secs(v.duration_s) : ""}. `
      + (tracks.length ? `${tracks.length} face track${tracks.length === 1 ? "" : "s"}; the decisive frame of each is outlined. Decide on the whole video.`
        : "No face in any sampled frame.")),
    v.rule ? h("p", { class: "hint", id: "video-rule" }, "How a face's frames are combined: " + v.rule + ".") : null,
    strips));
}

/** Content Credentials beside the detectors' score; unsigned hints labelled unverified. */
function provenanceSection(item) {
  const p = item.provenance;
  if (!p || !p.summary) return null;
  const c = p.c2pa;
  const kind = c ? (c.state === "valid" ? (p.ai_generated ? "ai" : "valid") : c.state) : "unverified";
  const detail = [];
  if (c) {
    detail.push(`Content Credentials: ${c.state}`);
    if (c.claim_generator) detail.push(`made with ${c.claim_generator}`);
    if (c.actions.length) detail.push("actions: " + c.actions.map((a) => a.action).join(", "));
    if (c.failures.length) detail.push("validation: " + c.failures.join(", "));
  } else if (p.hints) {
    if (p.hints.digital_source_type) detail.push("DigitalSourceType " + p.hints.digital_source_type.split("/").pop());
    if (p.hints.software.length) detail.push("software: " + p.hints.software.join(", "));
    if (p.hints.generator_metadata.length) detail.push(p.hints.generator_metadata.join(", "));
  }
  return h("div", { class: "section" }, h("h3", {}, "Provenance"),
    h("p", { class: "provenance " + kind, id: "provenance", "data-kind": kind },
      kind === "unverified" ? "Unverified: " + p.summary.replace(/^Unverified /, "") : p.summary),
    detail.length ? h("p", { class: "hint" }, detail.join(" · ")) : null);
}

/** The near-duplicates merged into this item: the decision applies to each of them. */
function variantsSection(item) {
  const variants = item.variants || [];
  if (!variants.length) return null;
  const li = variants.map((v) => h("li", {},
    h("span", { class: "when", title: fullTime(v.first_seen_at) }, when(v.first_seen_at)),
    h("span", { class: "mono", title: v.sha256 }, v.sha256.slice(0, 12) + "…"),
    ` ${v.width}×${v.height}, ${v.distance} of 256 bits from the image, ${v.check_count} check(s), detectors: ${v.detectors.verdict || "?"}`));
  return h("div", { class: "section" }, h("h3", {}, `Near-duplicates (${variants.length})`),
    h("ul", { class: "list", id: "variants" }, li));
}

function fact(value, label) { return h("div", { class: "card fact" }, h("b", {}, value), h("span", {}, label)); }

function facesSection(item) {
  const models = Object.keys(item.models || {});
  const rows = (item.faces || []).map((f, i) => h("tr", {},
    h("td", {}, i === item.decisive_face ? `#${i + 1} (decisive)` : `#${i + 1}`),
    h("td", { class: "mono" }, f.box.join(", ")),
    h("td", { class: "num" }, pct(f.score)),
    h("td", {}, h("span", { class: "badge " + f.verdict }, verdictWord(f.verdict)), f.too_small ? h("span", { class: "muted" }, " too small") : null,
      f.cut_off ? h("span", { class: "muted", title: "the face runs off the picture's edge: not judged" }, " cut off") : null,
      f.unfamiliar ? h("span", { class: "muted", title: "unlike the faces the detectors learned from: not called fake or real" }, " unfamiliar") : null,
      f.confirmed === false && f.note && !f.too_small && !f.cut_off && !f.unfamiliar ? h("span", { class: "muted", title: "not every detector finds it fake on its own: not called fake" }, " unconfirmed") : null),
    models.map((m) => h("td", { class: "num" }, pct(f.models[m])))));
  if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: String(4 + models.length), class: "muted" }, "No face found: not judged.")));
  const whole = h("tr", {}, h("td", {}, h("b", {}, "Image")), h("td", {}), h("td", { class: "num" }, h("b", {}, pct(item.detectors.score))),
    h("td", {}, h("span", { class: "badge " + item.detectors.verdict }, verdictWord(item.detectors.verdict))),
    models.map((m) => h("td", { class: "num" }, pct(item.models[m].score))));
  return h("div", { class: "section" }, h("h3", {}, "Detectors"),
    h("div", { class: "card table-card" }, h("table", { class: "table", id: "faces" },
      h("thead", {}, h("tr", {}, h("th", {}, "Face"), h("th", {}, "Box (x, y, w, h)"), h("th", { class: "num" }, "P(fake)"),
        h("th", {}, "Verdict"), models.map((m) => h("th", { class: "num" }, m)))),
      h("tbody", {}, rows, whole))));
}

function pagesSection(item) {
  const li = item.pages.map((p) => h("li", {}, h("span", { class: "when" }, `${p.count}×`),
    // Only web addresses become links (the service refuses others; older rows may hold them).
    /^https?:\/\//i.test(p.url)
      ? h("a", { href: p.url, target: "_blank", rel: "noopener noreferrer" }, p.url)
      : h("span", {}, p.url)));
  return h("div", { class: "section" }, h("h3", {}, "Seen on"),
    h("ul", { class: "list" }, li.length ? li : h("li", { class: "muted" }, "No page recorded.")));
}

function reportsSection(item) {
  const li = item.reports.map((r) => h("li", {}, h("span", { class: "when", title: fullTime(r.created_at) }, when(r.created_at)),
    h("b", {}, r.email || r.user_id), r.note ? ` — “${r.note}”` : ""));
  return h("div", { class: "section" }, h("h3", {}, "Reports"),
    h("ul", { class: "list", id: "reports" }, li.length ? li : h("li", { class: "muted" }, "No reports.")));
}

function historySection(item) {
  const words = { flagged: "Flagged by the detectors", reported: "Reported", reopened: "Reopened", decided: "Decided",
    variant: "A near-duplicate joined" };
  const li = item.history.slice().reverse().map((e) => {
    let what = words[e.kind] || e.kind;
    if (e.kind === "decided") what += ": " + DECISIONS[e.detail.decision].done.toLowerCase() + (e.detail.note ? ` — “${e.detail.note}”` : "");
    if (e.kind === "flagged" && e.detail) what += ` (${verdictWord(e.detail.verdict)}, ${pct(e.detail.score)})`;
    if (e.kind === "reported" && e.detail && e.detail.note) what += ` — “${e.detail.note}”`;
    return h("li", {}, h("span", { class: "when", title: fullTime(e.at) }, when(e.at)), what,
      e.actor ? h("span", { class: "muted" }, " · " + (e.actor_email || e.actor)) : "");
  });
  return h("div", { class: "section" }, h("h3", {}, "History"), h("ul", { class: "list", id: "history" }, li));
}

async function decide(decision) {
  const q = S.queue;
  const item = q.item;
  if (!item || q.busy) return;
  q.busy = true;
  const note = ($("#note") || {}).value || "";
  try {
    const updated = await api(`/v1/moderation/items/${encodeURIComponent(item.id)}/decision`,
      { method: "POST", body: { decision, note, version: item.version } });
    toast(DECISIONS[decision].done + ".");
    const index = q.items.findIndex((i) => i.id === item.id);
    const leaves = q.state !== "all" && q.state !== updated.state;
    if (leaves) {
      const next = q.items[index + 1] || q.items[index - 1];
      q.selected = next ? next.id : null;
    } else {
      q.item = updated;
    }
    await loadQueue();
  } catch (ex) {
    if (ex.code === "conflict") {
      toast("Another moderator changed this item: it has been reloaded.", true);
      await selectItem(item.id);
    } else toast(ex.message, true);
  } finally {
    q.busy = false;
  }
}

function moveSelection(step) {
  const q = S.queue;
  const i = q.items.findIndex((x) => x.id === q.selected);
  const next = q.items[Math.min(q.items.length - 1, Math.max(0, i + step))];
  if (next && next.id !== q.selected) selectItem(next.id);
}

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(e.target.tagName);
  if (e.key === "Escape") { $("#shortcuts").classList.add("hidden"); if (typing) e.target.blur(); return; }
  if (typing || S.view !== "queue" || !S.me) return;
  const key = e.key.toLowerCase();
  const action = {
    f: () => decide("fake"), r: () => decide("real"), d: () => decide("dismissed"),
    j: () => moveSelection(1), arrowdown: () => moveSelection(1),
    k: () => moveSelection(-1), arrowup: () => moveSelection(-1),
    n: () => { const n = $("#note"); if (n) n.focus(); },
    "?": () => $("#shortcuts").classList.toggle("hidden"),
  }[key];
  if (action) { e.preventDefault(); action(); }
});
$("#shortcuts-close").addEventListener("click", () => $("#shortcuts").classList.add("hidden"));

// ---- users (admin) ---------------------------------------------------------------------------
let userSearchTimer = null;
$("#user-q").addEventListener("input", () => { clearTimeout(userSearchTimer); userSearchTimer = setTimeout(() => { S.users.offset = 0; loadUsers(); }, 250); });
$("#user-role").addEventListener("change", () => { S.users.offset = 0; loadUsers(); });
$("#users-prev").addEventListener("click", () => { S.users.offset = Math.max(0, S.users.offset - S.users.limit); loadUsers(); });
$("#users-next").addEventListener("click", () => { S.users.offset += S.users.limit; loadUsers(); });

async function loadUsers() {
  const u = S.users;
  const params = new URLSearchParams({ limit: u.limit, offset: u.offset });
  if ($("#user-q").value.trim()) params.set("q", $("#user-q").value.trim());
  if ($("#user-role").value) params.set("role", $("#user-role").value);
  let data;
  try { data = await api("/v1/admin/users?" + params); } catch (ex) { toast(ex.message, true); return; }
  u.total = data.total;
  const body = $("#users-table tbody");
  body.replaceChildren(...data.items.map(userRow));
  if (!data.items.length) body.append(h("tr", {}, h("td", { colspan: "7", class: "empty" }, "No users match.")));
  $("#users-range").textContent = u.total ? `${u.offset + 1}–${u.offset + data.items.length} of ${u.total}` : "";
  $("#users-prev").disabled = u.offset === 0;
  $("#users-next").disabled = u.offset + data.items.length >= u.total;
}

function userRow(user) {
  const self = user.id === S.me.id;
  const role = h("select", { "aria-label": "Role of " + (user.email || user.id), disabled: self,
    onchange: (e) => patchUser(user, { role: e.target.value }) },
    ROLES.map((r) => h("option", { value: r, selected: r === user.role }, r)));
  const status = h("button", { class: "small" + (user.disabled ? " danger" : ""), disabled: self,
    onclick: () => patchUser(user, { disabled: !user.disabled }) }, user.disabled ? "Disabled" : "Active");
  const del = h("button", { class: "small danger", disabled: self, onclick: () => deleteUser(user) }, "Delete");
  return h("tr", { dataset: { id: user.id } },
    h("td", {}, user.email || h("span", { class: "muted" }, "—"), user.has_password ? "" : h("span", { class: "hint" }, " (token only)")),
    h("td", { class: "mono" }, user.id), h("td", {}, role), h("td", {}, status),
    h("td", { class: "num" }, user.check_count), h("td", { title: fullTime(user.created_at) }, when(user.created_at)),
    h("td", { class: "num" }, del));
}

async function patchUser(user, change) {
  try {
    await api(`/v1/admin/users/${encodeURIComponent(user.id)}`, { method: "PATCH", body: change });
    toast("Saved " + (user.email || user.id) + ".");
  } catch (ex) { toast(ex.message, true); }
  loadUsers();
}

async function deleteUser(user) {
  if (!confirm(`Delete ${user.email || user.id} and all their checks and reports? This cannot be undone.`)) return;
  try {
    const r = await api(`/v1/admin/users/${encodeURIComponent(user.id)}`, { method: "DELETE" });
    toast(`Deleted: ${r.removed.checks} checks, ${r.removed.reports} reports.`);
  } catch (ex) { toast(ex.message, true); }
  loadUsers();
}

// ---- FAQ (admin) ------------------------------------------------------------------------------
$("#faq-new").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await api("/v1/admin/faq", { method: "POST", body: { question: $("#faq-q").value, answer: $("#faq-a").value, published: $("#faq-pub").checked } });
    $("#faq-q").value = ""; $("#faq-a").value = "";
    toast("Entry added.");
    loadFaq();
  } catch (ex) { toast(ex.message, true); }
});

async function loadFaq() {
  let data;
  try { data = await api("/v1/admin/faq"); } catch (ex) { toast(ex.message, true); return; }
  const list = $("#faq-list");
  list.replaceChildren(...data.items.map((f) => {
    const q = h("input", { value: f.question, maxlength: "300", "aria-label": "Question" });
    const a = h("textarea", { rows: "3", "aria-label": "Answer" });
    a.value = f.answer;
    const pos = h("input", { type: "number", value: String(f.position), "aria-label": "Position" });
    pos.style.width = "80px";
    const pub = h("input", { type: "checkbox", checked: f.published });
    const save = async () => {
      try {
        await api(`/v1/admin/faq/${f.id}`, { method: "PATCH", body: { question: q.value, answer: a.value, position: parseInt(pos.value, 10) || 0, published: pub.checked } });
        toast("Saved."); loadFaq();
      } catch (ex) { toast(ex.message, true); }
    };
    const remove = async () => {
      if (!confirm("Delete this FAQ entry?")) return;
      try { await api(`/v1/admin/faq/${f.id}`, { method: "DELETE" }); toast("Deleted."); loadFaq(); } catch (ex) { toast(ex.message, true); }
    };
    return h("div", { class: "card faq-edit" },
      h("div", { class: "field" }, q), h("div", { class: "field" }, a),
      h("div", { class: "row" }, h("label", { class: "check" }, "Position", pos), h("label", { class: "check" }, pub, "Published"),
        h("span", { class: "spacer" }), h("button", { class: "small danger", onclick: remove }, "Delete"),
        h("button", { class: "small primary", onclick: save }, "Save")));
  }));
}

// ---- audit (admin) -----------------------------------------------------------------------------
$("#audit-action").addEventListener("change", () => loadAudit(true));
$("#audit-more").addEventListener("click", () => loadAudit(false));
$("#audit-csv").addEventListener("click", async () => {
  try {
    const action = $("#audit-action").value;
    const resp = await api("/v1/admin/audit.csv" + (action ? "?action=" + encodeURIComponent(action) : ""), { raw: true });
    const url = URL.createObjectURL(await resp.blob());
    const a = h("a", { href: url, download: "realcheck-audit.csv" });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 5000);
  } catch (ex) { toast(ex.message, true); }
});

async function loadAudit(reset) {
  if (reset) S.audit.before = null;
  const params = new URLSearchParams({ limit: 100 });
  const action = $("#audit-action").value;
  if (action) params.set("action", action);
  if (S.audit.before) params.set("before", S.audit.before);
  let data;
  try { data = await api("/v1/admin/audit?" + params); } catch (ex) { toast(ex.message, true); return; }
  const body = $("#audit-table tbody");
  if (reset) body.replaceChildren();
  for (const e of data.items) {
    const detail = e.detail ? JSON.stringify(e.detail) : "";
    body.append(h("tr", {}, h("td", { title: fullTime(e.at) }, new Date(e.at * 1000).toLocaleString()),
      h("td", {}, e.actor_email || e.actor || h("span", { class: "muted" }, "—")), h("td", { class: "mono" }, e.action),
      h("td", { class: "mono" }, e.target || ""), h("td", { class: "detail-cell", title: detail }, detail)));
  }
  S.audit.before = data.next_before;
  $("#audit-more").classList.toggle("hidden", !data.next_before);
}

// ---- mail (admin) --------------------------------------------------------------------------------
$("#mail-retry").addEventListener("click", async () => {
  try { const r = await api("/v1/admin/outbox/retry", { method: "POST", body: {} }); toast(`${r.requeued} message(s) queued again.`); loadMail(); }
  catch (ex) { toast(ex.message, true); }
});

async function loadMail() {
  let data;
  try { data = await api("/v1/admin/outbox?limit=100"); } catch (ex) { toast(ex.message, true); return; }
  const c = data.counts;
  $("#mail-counts").textContent = `${c.sent} sent · ${c.pending + c.sending} waiting · ${c.failed} failed` +
    (data.smtp_enabled ? "" : " · SMTP not configured");
  $("#mail-table tbody").replaceChildren(...data.items.map((m) => h("tr", {},
    h("td", { title: fullTime(m.created_at) }, when(m.created_at)), h("td", {}, m.recipient), h("td", {}, m.subject),
    h("td", {}, h("span", { class: "badge " + (m.state === "sent" ? "real" : m.state === "failed" ? "fake" : "open") }, m.state)),
    h("td", { class: "num" }, m.attempts), h("td", { class: "detail-cell", title: m.last_error || "" }, m.last_error || ""))));
}

// ---- settings (everyone) -------------------------------------------------------------------------
async function loadSettings() {
  try { S.me = await api("/v1/me"); } catch (ex) { toast(ex.message, true); return; }
  $("#me-email").value = S.me.email || "";
  $("#me-alerts").checked = S.me.email_alerts;
  $("#me-queue").checked = S.me.queue_alerts;
}

$("#settings-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = { email_alerts: $("#me-alerts").checked };
  const email = $("#me-email").value.trim();
  if (email && email !== S.me.email) body.email = email;
  if (has("moderator")) body.queue_alerts = $("#me-queue").checked;
  try { S.me = await api("/v1/me", { method: "PATCH", body }); toast("Settings saved."); $("#who-email").textContent = S.me.email || S.me.id; }
  catch (ex) { toast(ex.message, true); }
});

// ---- boot ------------------------------------------------------------------------------------------
(async () => {
  try { S.thresholds = (await (await fetch("/health")).json()).thresholds || null; } catch { S.thresholds = null; }
  const saved = localStorage.getItem(TOKEN_KEY);
  if (!saved) { signOut(); return; }
  try { await signIn(saved); } catch { signOut("Your saved session is no longer valid: sign in again."); }
})();
