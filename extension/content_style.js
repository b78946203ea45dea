// The styles of Realcheck's badges and panel, put inside their shadow root by content.js (kept
// out of web_accessible_resources so pages cannot detect the extension by fetching them).

globalThis.REALCHECK_CSS = `
[hidden] { display: none !important; }
.badge {
  all: initial; position: absolute; top: 0; left: 0; z-index: 1; box-sizing: border-box;
  font: 700 11px/1 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; letter-spacing: .04em;
  color: #fff; padding: 4px 7px; border-radius: 999px; border: 1px solid rgba(255, 255, 255, .75);
  box-shadow: 0 1px 3px rgba(0, 0, 0, .4); cursor: pointer; pointer-events: auto; white-space: nowrap;
}
.badge.real { background: #15803d; }
.badge.fake { background: #b91c1c; }
.badge.uncertain { background: #f59e0b; color: #1f2937; }
.badge.pending, .badge.error { background: #6b7280; }
.badge.no_face { background: #e5e7eb; color: #374151; border-color: #9ca3af; }
.badge.pending { animation: pulse 1.2s ease-in-out infinite; }
.badge:focus-visible, button:focus-visible { outline: 2px solid #2563eb; outline-offset: 2px; }
@keyframes pulse { 50% { opacity: .55; } }
@media (prefers-reduced-motion: reduce) { .badge.pending { animation: none; } }

.face-box {
  position: absolute; top: 0; left: 0; box-sizing: border-box; pointer-events: none;
  border: 2px dashed #facc15; border-radius: 4px; box-shadow: 0 0 0 1px rgba(0, 0, 0, .5);
}
.face-box.fake { border-color: #ef4444; } .face-box.real { border-color: #22c55e; }
.face-box.decisive { border-style: solid; }
.face-n { position: absolute; top: -2px; left: -2px; padding: 1px 5px; border-radius: 4px 0 4px 0;
  background: #111827; color: #fff; font: 700 11px/1.3 system-ui, sans-serif; }
.panel {
  position: absolute; top: 0; left: 0; z-index: 2; box-sizing: border-box; width: 300px;
  pointer-events: auto; padding: 12px; border-radius: 10px; background: #fff; color: #111827;
  font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; text-align: left;
  box-shadow: 0 6px 24px rgba(0, 0, 0, .28); border: 1px solid #d1d5db;
  overflow-y: auto; overscroll-behavior: contain; max-height: calc(100vh - 16px);
}
.panel header { display: flex; align-items: center; gap: 8px; margin-bottom: 6px; }
.panel h2 { all: unset; font-weight: 700; font-size: 14px; flex: 1; }
.pill { font-weight: 700; font-size: 11px; letter-spacing: .04em; color: #fff; padding: 3px 7px;
  border-radius: 999px; background: #6b7280; }
.pill.real { background: #15803d; } .pill.fake { background: #b91c1c; }
.pill.uncertain { background: #f59e0b; color: #1f2937; }
.pill.no_face { background: #e5e7eb; color: #374151; }
.pill.small { font-size: 10px; padding: 2px 5px; }
.panel ol.faces { margin: 4px 0; padding-left: 0; list-style: none; }
.panel ol.faces li { margin: 3px 0; font-size: 12px; }
.panel .share { margin-top: 6px; }
.panel .share-url { box-sizing: border-box; width: 100%; margin: 4px 0; font: 11px ui-monospace, monospace;
  border: 1px solid #9ca3af; border-radius: 6px; padding: 3px; }
.panel p { margin: 4px 0; }
.panel .provenance { font-size: 12px; padding: 4px 6px; border-radius: 4px; background: #f1f5f9; }
.panel .provenance.ai { background: #fee2e2; color: #991b1b; font-weight: 600; }
.panel .provenance.invalid { background: #fef3c7; color: #92400e; }
.panel .provenance.unverified, .panel .provenance.untrusted { color: #475569; }
.panel .muted { color: #4b5563; font-size: 12px; }
.panel .warning { color: #92400e; font-size: 12px; }
.panel .heatmap { display: block; width: 100%; margin: 8px 0; border-radius: 6px; background: #f3f4f6;
  min-height: 40px; }
.panel button { font: inherit; cursor: pointer; border-radius: 6px; padding: 4px 10px;
  border: 1px solid #9ca3af; background: #f9fafb; color: #111827; }
.panel button.primary { background: #1d4ed8; border-color: #1d4ed8; color: #fff; }
.panel button.close { border: none; background: none; font-size: 18px; line-height: 1; padding: 0 4px; }
.panel textarea { box-sizing: border-box; width: 100%; min-height: 54px; margin: 6px 0; font: inherit;
  border: 1px solid #9ca3af; border-radius: 6px; padding: 4px; resize: vertical; }
.panel .row { display: flex; gap: 6px; flex-wrap: wrap; }
.panel progress { display: block; width: 100%; margin: 4px 0 6px; }
.panel .video-path { font-weight: 600; }
.panel .track { margin: 8px 0; padding-top: 6px; border-top: 1px solid #e5e7eb; }
.panel .track-head { font-size: 12px; }
.panel ol.timeline { display: flex; gap: 4px; margin: 4px 0; padding: 0 0 4px; list-style: none;
  overflow-x: auto; overscroll-behavior: contain; }
.panel ol.timeline li { flex: none; width: 64px; display: flex; flex-direction: column; align-items: center;
  border: 2px solid transparent; border-radius: 4px; font-size: 10px; line-height: 1.2; }
.panel ol.timeline .thumb { position: relative; display: block; width: 60px; }
.panel ol.timeline li img { display: block; width: 60px; height: auto; min-height: 20px; border-radius: 2px;
  background: #e5e7eb; }
.panel ol.timeline .box { position: absolute; box-sizing: border-box; border: 1.5px solid #facc15;
  box-shadow: 0 0 0 1px rgba(0, 0, 0, .45); }
.panel ol.timeline li.decisive { border-color: #111827; }
.panel ol.timeline .frame-score { font-weight: 700; padding: 0 3px; border-radius: 3px; margin-top: 1px; }
.panel ol.timeline li.fake .frame-score { background: #fee2e2; color: #991b1b; }
.panel ol.timeline li.real .frame-score { background: #dcfce7; color: #166534; }
.panel ol.timeline li.uncertain .frame-score { background: #fef3c7; color: #92400e; }
.panel ol.timeline .frame-t { color: #6b7280; }
.toast { position: fixed; right: 16px; bottom: 16px; pointer-events: auto; padding: 10px 14px;
  border-radius: 8px; background: #111827; color: #fff;
  font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
`;
