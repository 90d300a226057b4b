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
import v8 from 'node:v8'

const HEADROOM_BYTES = 64 << 20
const HEAP_GROWING_PERCENT = 50

let headroom: number[] | null = null

/** Reserves the headroom once per process (64 MiB of resident memory). */
export function reserveHeapHeadroom (): void {
  if (headroom !== null) return
  headroom = new Array<number>(HEADROOM_BYTES / 8).fill(0.5)
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`)
}
