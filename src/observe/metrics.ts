/**
 * A small Prometheus-text metrics registry. Hot paths (DNS, packet capture) keep a reference to a
 * labelled child (`counter.labels({...})`) so an increment is one addition, no map lookup.
 */
export type Labels = Readonly<Record<string, string>>;

interface Series {
  render(name: string, out: string[]): void;
}

function labelText(labels: Labels, extra?: Record<string, string>): string {
  const all = extra ? { ...labels, ...extra } : labels;
  const keys = Object.keys(all);
  if (keys.length === 0) return '';
  const parts = keys.map((k) => `${k}="${String(all[k]).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return `{${parts.join(',')}}`;
}

function labelKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}\u0000${labels[k]}`)
    .join('\u0001');
}

abstract class Family<C extends Series> {
  private readonly children = new Map<string, { labels: Labels; child: C }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
  ) {}
  protected abstract create(labels: Labels): C;
  labels(labels: Labels = {}): C {
    const key = labelKey(labels);
    let entry = this.children.get(key);
    if (!entry) {
      entry = { labels, child: this.create(labels) };
      this.children.set(key, entry);
    }
    return entry.child;
  }
  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`);
    for (const { child } of this.children.values()) child.render(this.name, out);
  }
}

export class CounterChild implements Series {
  value = 0;
  constructor(private readonly labelSet: Labels) {}
  inc(by = 1): void {
    this.value += by;
  }
  render(name: string, out: string[]): void {
    out.push(`${name}${labelText(this.labelSet)} ${this.value}`);
  }
}

export class GaugeChild implements Series {
  value = 0;
  collect: (() => number) | undefined;
  constructor(private readonly labelSet: Labels) {}
  set(v: number): void {
    this.value = v;
  }
  inc(by = 1): void {
    this.value += by;
  }
  dec(by = 1): void {
    this.value -= by;
  }
  render(name: string, out: string[]): void {
    const v = this.collect ? this.collect() : this.value;
    out.push(`${name}${labelText(this.labelSet)} ${v}`);
  }
}

export class HistogramChild implements Series {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(
    private readonly labelSet: Labels,
    readonly buckets: readonly number[],
  ) {
    this.counts = new Array<number>(buckets.length).fill(0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) {
      if (v <= this.buckets[i]!) {
        this.counts[i]!++;
        break;
      }
    }
  }
  render(name: string, out: string[]): void {
    let cumulative = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      cumulative += this.counts[i]!;
      out.push(`${name}_bucket${labelText(this.labelSet, { le: String(this.buckets[i]) })} ${cumulative}`);
    }
    out.push(`${name}_bucket${labelText(this.labelSet, { le: '+Inf' })} ${this.count}`);
    out.push(`${name}_sum${labelText(this.labelSet)} ${this.sum}`);
    out.push(`${name}_count${labelText(this.labelSet)} ${this.count}`);
  }
}

export class Counter extends Family<CounterChild> {
  constructor(name: string, help: string) {
    super(name, help, 'counter');
  }
  protected create(labels: Labels): CounterChild {
    return new CounterChild(labels);
  }
  inc(by = 1): void {
    this.labels().inc(by);
  }
}

export class Gauge extends Family<GaugeChild> {
  constructor(name: string, help: string) {
    super(name, help, 'gauge');
  }
  protected create(labels: Labels): GaugeChild {
    return new GaugeChild(labels);
  }
  set(v: number): void {
    this.labels().set(v);
  }
}

/** Seconds, from 100 µs to 60 s: covers a DNS answer and a cold VM boot alike. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

export class Histogram extends Family<HistogramChild> {
  constructor(
    name: string,
    help: string,
    private readonly buckets: readonly number[] = LATENCY_BUCKETS,
  ) {
    super(name, help, 'histogram');
  }
  protected create(labels: Labels): HistogramChild {
    return new HistogramChild(labels, this.buckets);
  }
  observe(v: number): void {
    this.labels().observe(v);
  }
}

type AnyFamily = Counter | Gauge | Histogram;

export class MetricsRegistry {
  private readonly families = new Map<string, AnyFamily>();

  private register<F extends AnyFamily>(family: F): F {
    const existing = this.families.get(family.name);
    if (existing) {
      if (existing.type !== family.type) throw new Error(`metric ${family.name} registered twice with different types`);
      return existing as F;
    }
    this.families.set(family.name, family);
    return family;
  }

  counter(name: string, help: string): Counter {
    return this.register(new Counter(name, help));
  }
  gauge(name: string, help: string): Gauge {
    return this.register(new Gauge(name, help));
  }
  histogram(name: string, help: string, buckets?: readonly number[]): Histogram {
    return this.register(new Histogram(name, help, buckets));
  }

  /** Prometheus text exposition format 0.0.4. */
  render(): string {
    const out: string[] = [];
    for (const family of this.families.values()) family.render(out);
    return out.join('\n') + '\n';
  }
}
