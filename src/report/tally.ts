// Counting by key in bounded memory: a map that, once it holds twice its capacity, keeps only
// its `capacity` largest entries. Exact while the keys seen fit (the usual case: a day's
// senders); beyond that the largest keys stay and the report says its counts are approximate,
// with the largest count it dropped. Pure.
import { detach } from '../common/mail-log-read.js';

export class BoundedTally<V> {
  private readonly entries = new Map<string, V>();
  /** The largest score of an entry dropped so far (0: nothing dropped, every count exact). */
  droppedScore = 0;

  constructor(
    private readonly capacity: number,
    private readonly make: () => V,
    private readonly score: (v: V) => number,
  ) {}

  /** The entry of `key`, created when new (the caller adds to it). */
  at(key: string): V {
    let v = this.entries.get(key);
    if (v === undefined) {
      if (this.entries.size >= this.capacity * 2) this.prune();
      v = this.make();
      this.entries.set(detach(key), v);
    }
    return v;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The `n` largest, largest first; ties by key. */
  top(n: number): Array<[string, V]> {
    return [...this.entries].sort((a, b) => this.score(b[1]) - this.score(a[1]) || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).slice(0, n);
  }

  private prune(): void {
    const kept = this.top(this.capacity);
    const keep = new Set(kept.map(([key]) => key));
    for (const [key, v] of this.entries) if (!keep.has(key)) this.droppedScore = Math.max(this.droppedScore, this.score(v));
    this.entries.clear();
    for (const [key, v] of kept) this.entries.set(key, v);
  }
}
