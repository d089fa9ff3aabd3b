/**
 * Latency recording. Uses the `hdr-histogram-js` library (pure-JS build, no WASM):
 * values in microseconds, 1 µs .. 120 s trackable, 3 significant digits
 * (relative error <= 0.1 % at every magnitude). Values above the trackable
 * range are clamped to it (and counted) rather than thrown away.
 */
import * as hdr from "hdr-histogram-js";

const HIGHEST_TRACKABLE_US = 120_000_000;

export class LatencyHistogram {
  readonly h: hdr.Histogram;
  clamped = 0;
  constructor() {
    this.h = hdr.build({
      bitBucketSize: 64,
      lowestDiscernibleValue: 1,
      highestTrackableValue: HIGHEST_TRACKABLE_US,
      numberOfSignificantValueDigits: 3,
      autoResize: false,
      useWebAssembly: false,
    });
  }
  /** Record one latency in microseconds (fractional values are rounded up to >= 1). */
  record(us: number): void {
    let v = Math.round(us);
    if (v < 1) v = 1;
    if (v > HIGHEST_TRACKABLE_US) {
      v = HIGHEST_TRACKABLE_US;
      this.clamped++;
    }
    this.h.recordValue(v);
  }
  get count(): number {
    return this.h.totalCount;
  }
  /** percentile in 0..100; returns null when empty. */
  p(percentile: number): number | null {
    if (this.h.totalCount === 0) return null;
    return this.h.getValueAtPercentile(percentile);
  }
  add(other: LatencyHistogram): void {
    this.h.add(other.h);
    this.clamped += other.clamped;
  }
  reset(): void {
    this.h.reset();
    this.clamped = 0;
  }
  summary(): {
    p50: number | null;
    p95: number | null;
    p99: number | null;
    p999: number | null;
    max: number | null;
    mean: number | null;
  } {
    const empty = this.h.totalCount === 0;
    return {
      p50: this.p(50),
      p95: this.p(95),
      p99: this.p(99),
      p999: this.p(99.9),
      max: empty ? null : this.h.maxValue,
      mean: empty ? null : Math.round(this.h.mean),
    };
  }
}

/** Exact median of a small array (used for sliding windows in recovery detection). */
export function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
