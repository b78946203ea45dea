// A FIFO of async tasks run with a concurrency limit, so a huge page cannot flood the service.

export class Queue {
  constructor(concurrency = 4) {
    this.concurrency = concurrency;
    this.running = 0;
    this.waiting = [];
  }

  get pending() {
    return this.waiting.length;
  }

  /** Runs task() when a slot is free; `urgent` tasks (user clicks) go to the front. */
  push(task, {urgent = false, meta = {}} = {}) {
    return new Promise((resolve, reject) => {
      const job = {task, meta, resolve, reject};
      if (urgent) this.waiting.unshift(job); else this.waiting.push(job);
      this.pump();
    });
  }

  /** Rejects the waiting (not yet started) tasks whose meta matches. */
  drop(predicate, error) {
    const keep = [];
    for (const job of this.waiting) {
      if (predicate(job.meta)) job.reject(error); else keep.push(job);
    }
    this.waiting = keep;
  }

  setConcurrency(n) {
    this.concurrency = Math.max(1, n);
    this.pump();
  }

  pump() {
    while (this.running < this.concurrency && this.waiting.length) {
      const job = this.waiting.shift();
      this.running += 1;
      Promise.resolve()
        .then(job.task)
        .then(job.resolve, job.reject)
        .finally(() => {
          this.running -= 1;
          this.pump();
        });
    }
  }
}
