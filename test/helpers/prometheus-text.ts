// A strict reader of the Prometheus text exposition format 0.0.4, for tests: it throws on
// anything a Prometheus server would reject or that breaks the format's rules (samples before
// their TYPE, a family split in two, a bad escape, histogram buckets that are not cumulative or
// lack +Inf, a _count that disagrees with +Inf).

export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ParsedFamily {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string | null;
  samples: ParsedSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

export function parsePrometheusText(text: string): Map<string, ParsedFamily> {
  if (text !== '' && !text.endsWith('\n')) throw new Error('the exposition must end with a line feed');
  const families = new Map<string, ParsedFamily>();
  const closed = new Set<string>();
  let current: string | null = null;
  const lines = text.split('\n').slice(0, -1);
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${line}`;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) ?(.*)$/.exec(line);
      if (!m) return; // a plain comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (closed.has(name)) throw new Error(`${where}: family ${name} continues after another one`);
      if (current !== null && current !== name) closed.add(current);
      current = name;
      const f = families.get(name) ?? { name, type: 'untyped' as const, help: null, samples: [] };
      families.set(name, f);
      if (kind === 'HELP') {
        if (f.help !== null) throw new Error(`${where}: second HELP`);
        f.help = unescapeHelp(rest, where);
      } else {
        if (f.type !== 'untyped' || f.samples.length > 0) throw new Error(`${where}: TYPE after samples or twice`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) throw new Error(`${where}: unknown type`);
        f.type = rest as ParsedFamily['type'];
      }
      return;
    }
    if (line.trim() === '') return;
    const sample = parseSample(line, where);
    const family = familyOf(sample.name, families);
    if (closed.has(family)) throw new Error(`${where}: family ${family} continues after another one`);
    if (current !== null && current !== family) closed.add(current);
    current = family;
    const f = families.get(family) ?? { name: family, type: 'untyped' as const, help: null, samples: [] };
    families.set(family, f);
    f.samples.push(sample);
  });
  for (const f of families.values()) check(f);
  return families;
}

function familyOf(sampleName: string, families: Map<string, ParsedFamily>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!sampleName.endsWith(suffix)) continue;
    const base = sampleName.slice(0, -suffix.length);
    const f = families.get(base);
    if (f && (f.type === 'histogram' || f.type === 'summary')) return base;
  }
  return sampleName;
}

function parseSample(line: string, where: string): ParsedSample {
  const nameMatch = NAME.exec(line);
  if (!nameMatch) throw new Error(`${where}: no metric name`);
  const name = nameMatch[0];
  let pos = name.length;
  const labels: Record<string, string> = {};
  if (line[pos] === '{') {
    pos++;
    while (line[pos] !== '}') {
      const ln = LABEL_NAME.exec(line.slice(pos));
      if (!ln) throw new Error(`${where}: bad label name at ${pos}`);
      pos += ln[0].length;
      if (line.slice(pos, pos + 2) !== '="') throw new Error(`${where}: expected =" at ${pos}`);
      pos += 2;
      let value = '';
      for (;;) {
        const c = line[pos];
        if (c === undefined) throw new Error(`${where}: unterminated label value`);
        if (c === '"') break;
        if (c === '\\') {
          const e = line[pos + 1];
          if (e === '\\') value += '\\';
          else if (e === '"') value += '"';
          else if (e === 'n') value += '\n';
          else throw new Error(`${where}: bad escape \\${e}`);
          pos += 2;
          continue;
        }
        value += c;
        pos++;
      }
      pos++;
      if (ln[0] in labels) throw new Error(`${where}: label ${ln[0]} twice`);
      labels[ln[0]] = value;
      if (line[pos] === ',') pos++;
      else if (line[pos] !== '}') throw new Error(`${where}: expected , or } at ${pos}`);
    }
    pos++;
  }
  const rest = line.slice(pos);
  const m = /^ (\S+)(?: (-?\d+))?$/.exec(rest);
  if (!m) throw new Error(`${where}: expected " value [timestamp]"`);
  return { name, labels, value: parseValue(m[1]!, where) };
}

function parseValue(text: string, where: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`${where}: bad value ${text}`);
  return Number(text);
}

function unescapeHelp(text: string, where: string): string {
  return text.replace(/\\(.)/g, (_, c: string) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    throw new Error(`${where}: bad escape in HELP`);
  });
}

function check(f: ParsedFamily): void {
  if (f.type === 'counter') {
    for (const s of f.samples) if (!(s.value >= 0)) throw new Error(`counter ${s.name} is ${s.value}`);
  }
  if (f.type !== 'histogram') return;
  const series = new Map<string, ParsedSample[]>();
  const key = (labels: Record<string, string>) => JSON.stringify(Object.entries(labels).filter(([k]) => k !== 'le').sort());
  for (const s of f.samples) {
    const list = series.get(key(s.labels)) ?? [];
    list.push(s);
    series.set(key(s.labels), list);
  }
  for (const [k, list] of series) {
    const buckets = list.filter((s) => s.name === `${f.name}_bucket`);
    if (buckets.some((b) => !('le' in b.labels))) throw new Error(`${f.name}${k}: a bucket without le`);
    const les = buckets.map((b) => parseValue(b.labels.le!, f.name));
    for (let i = 1; i < les.length; i++) if (!(les[i]! > les[i - 1]!)) throw new Error(`${f.name}${k}: le not ascending`);
    for (let i = 1; i < buckets.length; i++) if (buckets[i]!.value < buckets[i - 1]!.value) throw new Error(`${f.name}${k}: buckets not cumulative`);
    if (les[les.length - 1] !== Infinity) throw new Error(`${f.name}${k}: no +Inf bucket`);
    const count = list.find((s) => s.name === `${f.name}_count`);
    const sum = list.find((s) => s.name === `${f.name}_sum`);
    if (!count || !sum) throw new Error(`${f.name}${k}: _count or _sum missing`);
    if (count.value !== buckets[buckets.length - 1]!.value) throw new Error(`${f.name}${k}: _count differs from the +Inf bucket`);
  }
}

/** The value of one sample, or undefined. */
export function sampleValue(families: Map<string, ParsedFamily>, family: string, labels: Record<string, string>, sampleName = family): number | undefined {
  const f = families.get(family);
  const s = f?.samples.find((x) => x.name === sampleName && Object.entries(labels).every(([k, v]) => x.labels[k] === v) && Object.keys(x.labels).length === Object.keys(labels).length);
  return s?.value;
}
