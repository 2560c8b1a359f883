// `imsimta dkim keygen`: a new signing key in etc/dkim/ (mode 0600), its line in etc/dkim/keys,
// and the DNS TXT record that publishes its public half. Made by root for an instance that runs as
// a service user, the key is 0640 in that user's group and etc/dkim/ open to the group (as the
// users file and the SRS secrets are): a key only root can read would stop the instance's start. Files are replaced atomically (a
// temporary file, fsync, rename, fsync of the directory), so the watcher never reloads half a
// file, and nothing is written that would not load: the new keys file is checked before it
// takes the old one's place. An existing key is never overwritten.
import { generateKeyPair, type KeyObject } from 'node:crypto';
import { chmodSync, chownSync, closeSync, constants, fchmodSync, fchownSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { writeFullySync } from '../common/write-fully.js';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { parseDkimKeys } from '../config/dkim.js';
import { formatDiagnostic, type Diagnostic } from '../config/types.js';

const generate = promisify(generateKeyPair);

export type KeyType = 'rsa' | 'ed25519';

export interface KeygenRequest {
  domain: string;
  selector: string;
  type: KeyType;
  /** RSA modulus length (ignored for Ed25519). */
  bits: number;
  /** etc/dkim/ of the instance. */
  dkimDir: string;
  /** The group of the service user the instance runs as, when root runs keygen for it; else null. */
  serviceGid?: number | null;
}

export interface KeygenResult {
  keyFile: string;
  keysFile: string;
  /** The zone-file line to publish. */
  record: string;
  /** Problems the keys file now reports that are not errors (weak key, no dkimsign channel…). */
  warnings: Diagnostic[];
}

export class KeygenError extends Error {}

/** Creates the key, writes it and its keys line; throws KeygenError with one line for the operator. */
export async function keygen(req: KeygenRequest): Promise<KeygenResult> {
  const keysFile = join(req.dkimDir, 'keys');
  const keyName = `${req.domain}.${req.selector}.pem`;
  const keyFile = join(req.dkimDir, keyName);
  const gid = req.serviceGid ?? null;
  mkdirSync(req.dkimDir, { recursive: true, mode: 0o700 });
  if (gid !== null) openToGroup(req.dkimDir, gid);
  if (exists(keyFile)) throw new KeygenError(`${keyFile} exists already: keys are never overwritten (choose another selector, or remove it first)`);
  const current = readIfExists(keysFile);
  if (keysLineFor(current, req.domain, req.selector) !== null) {
    throw new KeygenError(`${keysFile}:${keysLineFor(current, req.domain, req.selector)} already has a key for ${req.domain} with selector ${req.selector}`);
  }

  const pair = req.type === 'rsa' ? await generate('rsa', { modulusLength: req.bits }) : await generate('ed25519');
  const pem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  writeAtomically(keyFile, Buffer.from(pem), gid === null ? 0o600 : 0o640, { exclusive: true, gid });
  try {
    const next = withKeysLine(current, `${req.domain} ${req.selector} ${keyName} ${req.type === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256'}`);
    // Checked before it replaces the file: a keys file that would not load is never written.
    const diagnostics: Diagnostic[] = [];
    const tmp = writeTemporary(keysFile, Buffer.from(next), current === null ? 0o644 : statSync(keysFile).mode & 0o777);
    try {
      parseDkimKeys(tmp, diagnostics);
      const errors = diagnostics.filter((d) => d.severity === 'error');
      if (errors.length > 0) {
        throw new KeygenError(`${formatDiagnostic({ ...errors[0]!, file: keysFile })}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}: fix ${basename(keysFile)} first`);
      }
      commit(tmp, keysFile);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    return { keyFile, keysFile, record: txtRecord(req.selector, req.domain, dnsRecordValue(pair.publicKey)), warnings: diagnostics.map((d) => ({ ...d, file: keysFile })) };
  } catch (err) {
    // The key alone, without its keys line, would only confuse: take it back.
    rmSync(keyFile, { force: true });
    throw err;
  }
}

/** The TXT record's value (RFC 6376 §3.6.1; RFC 8463 §4: an Ed25519 key is its 32 raw bytes). */
export function dnsRecordValue(publicKey: KeyObject): string {
  if (publicKey.asymmetricKeyType === 'ed25519') {
    const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
    return `v=DKIM1; k=ed25519; p=${raw.toString('base64')}`;
  }
  return `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`;
}

/** `selector._domainkey.domain. IN TXT "…" "…"`: the value in strings of at most 255 bytes (RFC 1035 §3.3.14). */
export function txtRecord(selector: string, domain: string, value: string): string {
  const strings: string[] = [];
  for (let i = 0; i < value.length; i += 255) strings.push(`"${value.slice(i, i + 255)}"`);
  return `${selector}._domainkey.${domain}. IN TXT ${strings.join(' ')}`;
}

/** The line number of the keys line for domain and selector, or null. */
function keysLineFor(text: string | null, domain: string, selector: string): number | null {
  if (text === null) return null;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const f = lines[i]!.trim().split(/\s+/);
    if (f[0]?.toLowerCase() === domain && f[1]?.toLowerCase() === selector) return i + 1;
  }
  return null;
}

/** The keys file with one more line (a new file starts with a comment that says what it is). */
function withKeysLine(text: string | null, line: string): string {
  if (text === null) return `! DKIM signing keys: domain selector keyfile [algorithm] (see docs/CONFIGURATION.md)\n${line}\n`;
  return `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}${line}\n`;
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

function readIfExists(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new KeygenError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * A fsynced temporary file next to `path` with `mode`, in group `gid` when given. It is created
 * 0600 and only then given its group and mode: never readable by anyone else before that.
 */
function writeTemporary(path: string, data: Buffer, mode: number, gid: number | null = null): string {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode & 0o600);
  try {
    if (gid !== null) fchownSync(fd, process.getuid?.() ?? 0, gid);
    fchmodSync(fd, mode);
    writeFullySync(fd, [data]);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return tmp;
}

/** Renames the temporary file into place and makes the name durable. */
function commit(tmp: string, path: string): void {
  renameSync(tmp, path);
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/**
 * etc/dkim/ searchable and readable by the service user's group (0750 from keygen's 0700): the
 * server processes read the keys as that user. The owner and the others' bits stay as they are.
 */
function openToGroup(dir: string, gid: number): void {
  const st = statSync(dir);
  if (st.gid !== gid) chownSync(dir, st.uid, gid);
  if ((st.mode & 0o050) !== 0o050) chmodSync(dir, (st.mode & 0o7777) | 0o050);
}

function writeAtomically(path: string, data: Buffer, mode: number, opts: { exclusive: boolean; gid: number | null }): void {
  const tmp = writeTemporary(path, data, mode, opts.gid);
  try {
    if (opts.exclusive && exists(path)) throw new KeygenError(`${path} exists already: keys are never overwritten`);
    commit(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
