// The MTA-STS policy cache: in memory, and one JSON file per policy domain under the instance's
// `tls/mta-sts/` so that a restart (or another delivery thread) keeps the policies until their
// max_age runs out, as RFC 8461 §5.1 wants (a policy must outlive a DNS answer an attacker
// strips). A file is written whole under a temporary name and renamed; a file that cannot be read
// or parsed is no policy (and is replaced at the next fetch).
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFully } from '../../common/write-fully.js';
import type { CachedStsPolicy, StsPolicy } from './mta-sts.js';

/** Names that may be a file name: a DNS name in A-labels. */
const DOMAIN = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/;
/** Domains kept in memory before it is emptied (the files stay): bounds a long fan-out's memory. */
const MEMORY_LIMIT = 100_000;

export function isPolicyDomain(domain: string): boolean {
  return domain.length <= 253 && DOMAIN.test(domain);
}

export class StsPolicyStore {
  private readonly memory = new Map<string, CachedStsPolicy | null>();
  private sequence = 0;

  /** `dir`: the instance's tls/mta-sts directory (made when the first policy is stored). */
  constructor(readonly dir: string) {}

  /** The cached entry of `domain` (expired or not), or null. */
  async get(domain: string): Promise<CachedStsPolicy | null> {
    if (this.memory.has(domain)) return this.memory.get(domain)!;
    if (!isPolicyDomain(domain)) return null;
    if (this.memory.size >= MEMORY_LIMIT) this.memory.clear();
    const entry = await readFile(this.file(domain), 'utf8').then(
      (text) => parseEntry(text, domain),
      () => null,
    );
    this.memory.set(domain, entry);
    return entry;
  }

  async put(entry: CachedStsPolicy): Promise<void> {
    this.memory.set(entry.domain, entry);
    if (!isPolicyDomain(entry.domain)) return;
    await mkdir(this.dir, { recursive: true });
    const tmp = join(this.dir, `.${entry.domain}.${process.pid}.${++this.sequence}.tmp`);
    const fh = await open(tmp, 'w', 0o644);
    try {
      await writeFully(fh.fd, [Buffer.from(`${JSON.stringify(entry)}\n`)]);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.file(entry.domain));
  }

  async delete(domain: string): Promise<void> {
    this.memory.set(domain, null);
    if (isPolicyDomain(domain)) await unlink(this.file(domain)).catch(() => undefined);
  }

  /** Forgets what is in memory (the files stay): what a restart sees. */
  forgetMemory(): void {
    this.memory.clear();
  }

  private file(domain: string): string {
    return join(this.dir, `${domain}.json`);
  }
}

/** A stored entry, checked field by field (a hand-edited or truncated file is no policy). */
function parseEntry(text: string, domain: string): CachedStsPolicy | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  const e = v as Partial<CachedStsPolicy> & { policy?: Partial<StsPolicy> };
  const p = e?.policy;
  if (e?.domain !== domain || typeof e.id !== 'string' || typeof e.fetchedAt !== 'number' || typeof e.expiresAt !== 'number') return null;
  if (!p || !['enforce', 'testing', 'none'].includes(p.mode) || !Array.isArray(p.mx) || !p.mx.every((m) => typeof m === 'string')) return null;
  if (typeof p.maxAge !== 'number' || !Array.isArray(p.lines)) return null;
  return { domain, id: e.id, fetchedAt: e.fetchedAt, expiresAt: e.expiresAt, policy: { mode: p.mode, mx: p.mx, maxAge: p.maxAge, lines: p.lines.map(String) } };
}
