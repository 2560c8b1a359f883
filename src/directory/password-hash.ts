// Hashing and checking passwords with scrypt (node:crypto, run in libuv's thread pool, off the
// event loop), compared in constant time. The password is taken as its Unicode NFKC form in
// UTF-8 (the normalisation SASLprep applies), so the same password typed on two systems that
// compose accents differently still matches.
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { DEFAULT_SCRYPT_PARAMS, HASH_BYTES, SALT_BYTES, formatPasswordHash, scryptMemoryBytes, type ScryptHash, type ScryptParams } from '../config/hash-format.js';

/** Longer passwords never match (and are refused by imsimta passwd): a bound on the work per attempt. */
export const MAX_PASSWORD_BYTES = 1024;

/** Why a new password cannot be stored (empty, too long, NUL or line breaks), or null. */
export function passwordProblem(password: string): string | null {
  if (password.length === 0) return 'the password is empty';
  if (passwordBytes(password).length > MAX_PASSWORD_BYTES) return `the password is longer than ${MAX_PASSWORD_BYTES} bytes`;
  if (/[\x00\r\n]/.test(password)) return 'the password contains a NUL or line break (SASL PLAIN cannot carry it)';
  return null;
}

function passwordBytes(password: string): Buffer {
  return Buffer.from(password.normalize('NFKC'), 'utf8');
}

function derive(password: Buffer, salt: Buffer, keyLength: number, p: ScryptParams): Promise<Buffer> {
  const options: ScryptOptions = { N: 2 ** p.ln, r: p.r, p: p.p, maxmem: 2 * scryptMemoryBytes(p) + 1024 * 1024 };
  return new Promise((resolve, reject) => scrypt(password, salt, keyLength, options, (err, key) => (err ? reject(err) : resolve(key))));
}

/** A new stored hash of `password` with a fresh random salt. */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT_PARAMS): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(passwordBytes(password), salt, HASH_BYTES, params);
  return formatPasswordHash({ algorithm: 'scrypt', ...params, salt, hash });
}

/**
 * Whether `password` matches `stored`. The time depends on the stored hash's cost only, not on
 * where the password differs; a password longer than MAX_PASSWORD_BYTES, or with a NUL, is
 * hashed and fails like any other wrong one (scrypt's HMAC pads its key with zeros, so
 * `pw\0` would otherwise match `pw`; no stored password has a NUL). Rejects only when scrypt
 * itself fails (out of memory).
 */
export async function verifyPassword(password: string, stored: ScryptHash): Promise<boolean> {
  const bytes = passwordBytes(password);
  const acceptable = bytes.length <= MAX_PASSWORD_BYTES && !bytes.includes(0);
  const derived = await derive(bytes.subarray(0, MAX_PASSWORD_BYTES), stored.salt, stored.hash.length, stored);
  return timingSafeEqual(derived, stored.hash) && acceptable;
}
