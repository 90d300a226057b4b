// Headroom in V8's old generation for a process that moves contents.
//
// Every byte a wire receives passes through short-lived ArrayBuffers (socket chunks, messages,
// pieces). V8 collects the young ones only every 32 MB of them, and counts them meanwhile as
// external memory allocated since the last full GC; once that exceeds the old generation's
// headroom (its next GC trigger minus the live heap), it starts a full mark-compact. A node's live
// heap is small (~16 MB here), so its trigger sits only ~23 MB above it, under the 32 MB of one
// young cycle: a reader then fell into a full GC every 40-60 ms, 100-230 of them per GiB read, and
// used twice the CPU (measured with --trace-gc on the reading node: 12-16 CPU-s instead of 6-8
// per GiB, 70-90 MB/s instead of 120-150). Whether it happened depended on the growth factor V8
// picked at the first GC, so some reads were fast and others not.
//
// V8 sets the trigger as a multiple of the live heap. One large array of doubles makes the live
// heap larger without costing the marker anything (it has no pointers to follow), so the trigger
// moves well clear of one young cycle. The V8 flag that would do the same
// (--initial-old-space-size) works only on the node command line, which `node bin/swarmfs.js`
// and a shebang do not share.
//
// And the growth factor is fixed at 1.5 (--heap-growing-percent, which V8 reads at every GC, so
// setting it at run time works): V8's own pick ranged up to ~2.4, and with the headroom's 100 MB
// of live heap that let a holder serving 2,000 contents pile up ~130 MB of garbage before a full
// GC (the heap grew from 127 to 231-244 MB). At 1.5 the trigger sits ~50 MB above the live heap:
// still clear of one young cycle, and a fixed factor no longer leaves it to chance.
//
// A node whose index is large (a volume of 100,000 files holds ~60 MB of it) has the live heap that
// moves the trigger already, so the headroom is only what brings the live heap to LIVE_HEAP_TARGET:
// measured after one full collection, which also gives back what loading the index left behind
// (~100 MB at 100,000 files, the resident memory a node kept until its next full GC, maybe never).
// The headroom is made of small arrays: one array of 64 MiB of doubles is first made of tagged
// slots and copied, which left 64 MiB more behind it.
import v8 from 'node:v8'
import vm from 'node:vm'

/** A live heap this large puts the trigger (x1.5) ~40 MB above it: clear of one young cycle. */
const LIVE_HEAP_TARGET = 80 << 20
/** 64 KiB of doubles: young-generation garbage while it is made, not a large object. */
const CHUNK_DOUBLES = 8192
const HEAP_GROWING_PERCENT = 50

let headroom: number[][] | null = null

/** Reserves the headroom once per process (up to ~80 MiB of live heap, less by what is live already). */
export function reserveHeapHeadroom (): void {
  if (headroom !== null) return
  collectGarbage()
  const live = v8.getHeapStatistics().used_heap_size
  headroom = []
  for (let left = Math.max(0, LIVE_HEAP_TARGET - live) / 8; left > 0; left -= CHUNK_DOUBLES) {
    headroom.push(new Array<number>(Math.min(CHUNK_DOUBLES, Math.ceil(left))).fill(0.5))
  }
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`)
}

/** A full collection, from a process not started with --expose-gc (the flag gives new contexts `gc`). */
function collectGarbage (): void {
  v8.setFlagsFromString('--expose-gc')
  const gc: unknown = vm.runInNewContext('gc')
  if (typeof gc === 'function') gc()
}
