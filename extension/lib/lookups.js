// Hash lookups gathered into batches: the images of a page are asked about in one request
// (POST /v1/lookups) instead of one request each. A batch stays open until its request leaves
// the request queue, so on a busy page (or a slow machine) the lookups that arrive while it
// waits for a free slot still join it.

const WAIT_MS = 40;     // how long a lookup waits for others before its batch is queued
const MAX_BATCH = 200;

export class LookupBatcher {
  /**
   * `send(api, take, pageUrl, urgent)` makes the request through the request queue; it calls
   * `take()` when the request starts, for the hashes gathered until then.
   */
  constructor(send) {
    this.send = send;
    // key -> {api, pageUrl, urgent, queued, waiting: Map(sha -> [{resolve, reject}]), timer}
    this.batches = new Map();
  }

  /** The check the service knows for this hash, or null. */
  lookup(api, sha, pageUrl, {urgent = false} = {}) {
    const key = `${api.base}\n${api.token}\n${pageUrl ?? ""}`;
    let batch = this.batches.get(key);
    // a queued batch that is full, or less urgent than this lookup, is left to go alone
    if (batch && batch.queued && (batch.waiting.size >= MAX_BATCH || (urgent && !batch.urgent))) {
      batch = null;
    }
    if (!batch) {
      batch = {api, pageUrl, urgent: false, queued: false, waiting: new Map(), timer: 0};
      this.batches.set(key, batch);
      batch.timer = setTimeout(() => this.flush(key, batch), WAIT_MS);
    }
    return new Promise((resolve, reject) => {
      if (!batch.waiting.has(sha)) batch.waiting.set(sha, []);
      batch.waiting.get(sha).push({resolve, reject});
      if (batch.queued) return;
      if (urgent) batch.urgent = true;
      if (urgent || batch.waiting.size >= MAX_BATCH) {
        clearTimeout(batch.timer);
        this.flush(key, batch);
      }
    });
  }

  async flush(key, batch) {
    if (batch.queued) return;
    batch.queued = true;
    const take = () => {
      if (this.batches.get(key) === batch) this.batches.delete(key);  // later lookups: a new batch
      return [...batch.waiting.keys()];
    };
    try {
      const results = await this.send(batch.api, take, batch.pageUrl, batch.urgent);
      for (const [sha, waiters] of batch.waiting) {
        for (const w of waiters) w.resolve(results[sha] ?? null);
      }
    } catch (e) {
      if (this.batches.get(key) === batch) this.batches.delete(key);
      for (const waiters of batch.waiting.values()) for (const w of waiters) w.reject(e);
    }
  }
}
