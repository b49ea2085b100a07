/**
 * A Prometheus histogram for the coordinator's hot path. prom-client's Histogram validates and
 * hashes its labels on every observe(), microseconds per task at a quarter of a million tasks a
 * second; here each value of the one label gets its bucket counts once, observe() is a bucket
 * search and two additions, and the samples are built only when the registry is scraped (a prom-
 * client Registry takes any metric with a name and get(), and formats what get() returns).
 */
import type { Registry } from 'prom-client';

export interface HotHistogramOptions {
  name: string;
  help: string;
  /** The one label that tells the series apart (e.g. task_type). */
  labelName: string;
  /** Upper bounds, ascending; +Inf is implied. */
  buckets: readonly number[];
  registers: Registry[];
}

/** One series: observe() is all the hot path calls. */
export class HotSeries {
  /** Per bucket (not cumulative), +Inf last. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }
}

export class HotHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #label: string;
  readonly #bounds: readonly number[];
  readonly #series = new Map<string, HotSeries>();

  constructor(o: HotHistogramOptions) {
    this.name = o.name;
    this.help = o.help;
    this.#label = o.labelName;
    this.#bounds = [...o.buckets];
    for (const r of o.registers) r.registerMetric(this as never);
  }

  /** The series of one label value, created (at zero) on first use: keep it and observe() on it. */
  series(labelValue: string): HotSeries {
    let s = this.#series.get(labelValue);
    if (!s) this.#series.set(labelValue, (s = new HotSeries(this.#bounds)));
    return s;
  }

  /** Called by Registry.resetMetrics(). */
  reset(): void {
    for (const s of this.#series.values()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }

  /** The samples in prom-client's shape: cumulative buckets, then _sum and _count, per series. */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Array<{ metricName: string; labels: Record<string, string | number>; sharedLabels: Record<string, string>; value: number }> }> {
    const values = [];
    for (const [labelValue, s] of this.#series) {
      const shared = { [this.#label]: labelValue };
      let acc = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        acc += s.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { le: this.#bounds[i]! }, sharedLabels: shared, value: acc });
      }
      values.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf' }, sharedLabels: shared, value: s.count });
      values.push({ metricName: `${this.name}_sum`, labels: {}, sharedLabels: shared, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: {}, sharedLabels: shared, value: s.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
