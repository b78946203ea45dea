// Hash lookups gathered into batches: the images of a page are asked about in one request
// (POST /v1/lookups) instead of one request each.

const WAIT_MS = 40;     // how long a lookup waits for others to join its batch
const MAX_BATCH = 200;

export class LookupBatcher {
  /** `send(api, hashes, pageUrl, urgent)` makes the request (through the request queue). */
  constructor(send) {
    this.send = send;
    this.batches = new Map(); // key -> {api, pageUrl, urgent, waiting: Map(sha -> [{resolve, reject}]), timer}
  }

  /** The check the service knows for this hash, or null. */
  lookup(api, sha, pageUrl, {urgent = false} = {}) {
    const key = `${api.base}\n${api.token}\n${pageUrl ?? ""}`;
    let batch = this.batches.get(key);
    if (!batch) {
      batch = {api, pageUrl, urgent: false, waiting: new Map(), timer: 0};
      this.batches.set(key, batch);
      batch.timer = setTimeout(() => this.flush(key), WAIT_MS);
    }
    return new Promise((resolve, reject) => {
      if (!batch.waiting.has(sha)) batch.waiting.set(sha, []);
      batch.waiting.get(sha).push({resolve, reject});
      if (urgent) batch.urgent = true;
      if (urgent || batch.waiting.size >= MAX_BATCH) {
        clearTimeout(batch.timer);
        this.flush(key);
      }
    });
  }

  async flush(key) {
    const batch = this.batches.get(key);
    if (!batch) return;
    this.batches.delete(key);
    const hashes = [...batch.waiting.keys()];
    try {
      const results = await this.send(batch.api, hashes, batch.pageUrl, batch.urgent);
      for (const [sha, waiters] of batch.waiting) {
        for (const w of waiters) w.resolve(results[sha] ?? null);
      }
    } catch (e) {
      for (const waiters of batch.waiting.values()) for (const w of waiters) w.reject(e);
    }
  }
}
