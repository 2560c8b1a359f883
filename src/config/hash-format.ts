// The stored form of a password hash, self-describing in the spirit of PHC strings:
//   $scrypt$ln=15,r=8,p=1$<salt>$<hash>
// (algorithm; cost: N = 2^ln, block size r, parallelism p; salt and derived key in base64
// without padding). Parsing is strict — a hash edited by hand, cut short or from another system
// is an error that says what is wrong, never a crash and never a hash that matches anything.
// Pure: no crypto here (see src/directory/password-hash.ts); with the configuration because etc/users is read and checked there.

export interface ScryptParams {
  /** log2 of the CPU/memory cost N. */
  ln: number;
  /** Block size. */
  r: number;
  /** Parallelism. */
  p: number;
}

export interface ScryptHash extends ScryptParams {
  algorithm: 'scrypt';
  salt: Buffer;
  /** The derived key; its length is the key length derived at verification. */
  hash: Buffer;
}

/** What `imsimta passwd` writes: N = 2^15, 32 MiB of memory, 50–100 ms of one core. */
export const DEFAULT_SCRYPT_PARAMS: Readonly<ScryptParams> = Object.freeze({ ln: 15, r: 8, p: 1 });
export const SALT_BYTES = 16;
export const HASH_BYTES = 32;

/** Bounds on what a file may ask for, so a hand-edited hash cannot make one check take a gigabyte or a minute. */
const SCRYPT_LIMITS = Object.freeze({ lnMin: 10, lnMax: 20, rMax: 32, pMax: 16, maxMemoryBytes: 256 * 1024 * 1024, saltMin: 8, saltMax: 64 });

/** Bytes of memory scrypt needs for these parameters (128 · N · r). */
export function scryptMemoryBytes(p: ScryptParams): number {
  return 128 * 2 ** p.ln * p.r;
}

export type HashParse = { ok: true; hash: ScryptHash } | { ok: false; error: string };

const FORMAT_HINT = 'expected $scrypt$ln=…,r=…,p=…$salt$hash (make one with imsimta passwd)';

/** Parses a stored hash; the error never quotes the salt or the hash. */
export function parsePasswordHash(text: string): HashParse {
  const fail = (error: string): HashParse => ({ ok: false, error });
  if (!text.startsWith('$')) return fail(`not a password hash: ${FORMAT_HINT}`);
  const fields = text.split('$');
  const algorithm = fields[1] ?? '';
  if (algorithm !== 'scrypt') {
    return /^[a-z0-9-]{1,32}$/i.test(algorithm)
      ? fail(`password hash algorithm "${algorithm}" is not supported (tsubame hashes with scrypt: ${FORMAT_HINT})`)
      : fail(`not a password hash: ${FORMAT_HINT}`);
  }
  if (fields.length !== 5) return fail(`scrypt hash has ${fields.length - 1} $-separated fields, not 4: ${FORMAT_HINT}`);
  const m = /^ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,3})$/.exec(fields[2]!);
  if (!m) return fail(`scrypt cost "${fields[2]!.slice(0, 40)}" is not ln=…,r=…,p=…`);
  const params = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  const L = SCRYPT_LIMITS;
  if (params.ln < L.lnMin || params.ln > L.lnMax) return fail(`scrypt cost ln=${params.ln} is out of range (${L.lnMin}–${L.lnMax})`);
  if (params.r < 1 || params.r > L.rMax) return fail(`scrypt block size r=${params.r} is out of range (1–${L.rMax})`);
  if (params.p < 1 || params.p > L.pMax) return fail(`scrypt parallelism p=${params.p} is out of range (1–${L.pMax})`);
  const memory = scryptMemoryBytes(params);
  if (memory > L.maxMemoryBytes) return fail(`scrypt cost ln=${params.ln},r=${params.r} needs ${memory / 2 ** 20} MiB, more than the ${L.maxMemoryBytes / 2 ** 20} MiB allowed`);
  const salt = decodeB64(fields[3]!);
  if (!salt) return fail('scrypt salt is not base64 (without padding)');
  if (salt.length < L.saltMin || salt.length > L.saltMax) return fail(`scrypt salt is ${salt.length} bytes (${L.saltMin}–${L.saltMax} expected)`);
  const hash = decodeB64(fields[4]!);
  if (!hash) return fail('scrypt hash is not base64 (without padding)');
  // One key length only: a key cut short would still match its prefix of the derived key.
  if (hash.length !== HASH_BYTES) return fail(`scrypt hash is ${hash.length} bytes (${HASH_BYTES} expected)`);
  return { ok: true, hash: { algorithm: 'scrypt', ...params, salt, hash } };
}

export function formatPasswordHash(h: ScryptHash): string {
  return `$scrypt$ln=${h.ln},r=${h.r},p=${h.p}$${encodeB64(h.salt)}$${encodeB64(h.hash)}`;
}

function encodeB64(bytes: Buffer): string {
  return bytes.toString('base64').replace(/=+$/, '');
}

/** Base64 without padding, canonical only (Buffer.from alone skips bad characters silently). */
function decodeB64(text: string): Buffer | null {
  if (!/^[A-Za-z0-9+/]+$/.test(text) || text.length % 4 === 1) return null;
  const bytes = Buffer.from(text, 'base64');
  return encodeB64(bytes) === text ? bytes : null;
}
