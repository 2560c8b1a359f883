// The files source of the directory: the users of etc/users (config/users.ts) with the local
// domains of imta.cnf. One instance per configuration (a reload builds a new one); the KdfGate
// is the process's and outlives it. An unknown or locked user's password is checked against a
// dummy hash of the cost most users have, so the answer takes as long as a wrong password.
import { randomBytes } from 'node:crypto';
import type { InstanceConfig } from '../config/types.js';
import { isValidUserName, type UserEntry, type UsersConfig } from '../config/users.js';
import { DEFAULT_SCRYPT_PARAMS, HASH_BYTES, SALT_BYTES, type ScryptHash } from '../config/hash-format.js';
import { KdfGate } from './kdf-gate.js';
import { localityOf, type Locality, type LocalityOptions } from './locality.js';
import { verifyPassword } from './password-hash.js';
import { decideSender } from './sender-ownership.js';
import type { AddressesResult, AuthResult, DirectoryUser, SenderDecision, UserDirectory } from './types.js';

export interface FilesDirectoryOptions {
  /** The process's gate on concurrent hashes (default: a gate of its own). */
  gate?: KdfGate;
}

export class FilesUserDirectory implements UserDirectory {
  readonly source = 'files';
  private readonly gate: KdfGate;
  private readonly dummy: ScryptHash;

  constructor(
    private readonly users: UsersConfig,
    private readonly locality: Locality,
    opts: FilesDirectoryOptions = {},
  ) {
    this.gate = opts.gate ?? new KdfGate();
    this.dummy = dummyHashFor(users.users.values());
  }

  async authenticate(login: string, password: string): Promise<AuthResult> {
    const entry = this.lookup(login);
    let match: boolean;
    try {
      match = await this.gate.run(() => verifyPassword(password, entry?.hash ?? this.dummy));
    } catch (err) {
      return { ok: false, reason: 'unavailable', why: `password check failed: ${(err as Error).message}` };
    }
    if (!entry) return { ok: false, reason: 'invalid', why: 'unknown-user' };
    if (!entry.hash) return { ok: false, reason: 'invalid', why: 'locked' };
    if (!match) return { ok: false, reason: 'invalid', why: 'wrong-password' };
    return { ok: true, user: userOf(entry) };
  }

  async addressesOf(login: string): Promise<AddressesResult> {
    const entry = this.lookup(login);
    if (!entry) return { ok: false, reason: 'unknown-user' };
    const own = this.locality.domains.map((d) => `${entry.name}@${d}`);
    return { ok: true, addresses: [...new Set([...own, ...entry.addresses])] };
  }

  async maySendAs(user: DirectoryUser, address: string): Promise<SenderDecision> {
    return decideSender(user, address, this.locality.localUserOf);
  }

  /** The user a login names: `name`, or `name@` a local domain (what mail clients send by default); no `+tag`. */
  private lookup(login: string): UserEntry | undefined {
    let name = login;
    const at = login.lastIndexOf('@');
    if (at > 0) {
      name = login.slice(0, at);
      if (this.locality.localUserOf(login) !== name.toLowerCase()) return undefined;
    }
    return isValidUserName(name) ? this.users.users.get(name.toLowerCase()) : undefined;
  }
}

/** The files source for a loaded configuration. */
export function filesDirectory(config: InstanceConfig, opts: FilesDirectoryOptions & LocalityOptions = {}): FilesUserDirectory {
  return new FilesUserDirectory(config.users, localityOf(config.imta, opts), opts);
}

function userOf(entry: UserEntry): DirectoryUser {
  return { name: entry.name, addresses: [...entry.addresses], admin: entry.admin };
}

/** A hash nothing matches, with the cost and salt length most users' hashes have (the default when none has one). */
export function dummyHashFor(entries: Iterable<UserEntry>): ScryptHash {
  const counts = new Map<string, { n: number; hash: ScryptHash }>();
  for (const e of entries) {
    if (!e.hash) continue;
    const key = `${e.hash.ln},${e.hash.r},${e.hash.p},${e.hash.salt.length}`;
    const c = counts.get(key) ?? { n: 0, hash: e.hash };
    c.n++;
    counts.set(key, c);
  }
  let common: ScryptHash | null = null;
  let most = 0;
  for (const { n, hash } of counts.values()) if (n > most) [common, most] = [hash, n];
  const params = common ? { ln: common.ln, r: common.r, p: common.p } : DEFAULT_SCRYPT_PARAMS;
  return { algorithm: 'scrypt', ...params, salt: randomBytes(common?.salt.length ?? SALT_BYTES), hash: randomBytes(HASH_BYTES) };
}
