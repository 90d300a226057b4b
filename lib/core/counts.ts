// A count per key that forgets a key when its count drops to 0 (pins of a content, say).
export class Counts {
  private readonly counts = new Map<string, number>()

  add (key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1)
  }

  /** One fewer; a key never added stays absent. */
  remove (key: string): void {
    const n = (this.counts.get(key) ?? 1) - 1
    if (n > 0) this.counts.set(key, n)
    else this.counts.delete(key)
  }

  has (key: string): boolean {
    return this.counts.has(key)
  }
}
