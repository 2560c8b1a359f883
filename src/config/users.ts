// etc/users: who may authenticate (SMTP AUTH) and which addresses each may send as, one user a
// line, fields separated by `:` as in a passwd file:
//   name:password-hash[:address,address…[:flag,flag…]]
// The hash is `$scrypt$ln=…,r=…,p=…$salt$hash` (src/config/hash-format.ts); `*`, or `!` in
// front of a hash, locks the user out. The one flag is `admin` (may send as any address).
// Lines whose first non-blank character is `!` or `#` are comments. A diagnostic never quotes a
// hash or a line that may hold a password typed by mistake: only names and addresses.
import { readSecretFile, secretPermissionProblem, type SecretFileRisk } from './secret-read.js';
import { parsePasswordHash, type ScryptHash } from './hash-format.js';
import { parseAddress } from '../common/address.js';
import type { Diagnostic, UserEntry, UsersConfig } from './types.js';

export type { UserEntry, UsersConfig };

const USER_FLAGS = ['admin'] as const;

/** Letters, digits, `.`, `_`, `-`; a letter or digit first; at most 64 (a local part, and a directory name under mailbox/). */
export function isValidUserName(name: string): boolean {
  return /^[a-z0-9][a-z0-9._-]{0,63}$/i.test(name);
}

/** The fields of one line, split but not checked (what `imsimta passwd` keeps of a line it updates). */
export interface UserLineFields {
  name: string;
  hash: string;
  addresses: string;
  flags: string;
}

/** `comment` for a comment or blank line, null for a line without 2–4 fields. */
export function splitUserLine(text: string): UserLineFields | 'comment' | null {
  const trimmed = text.trim();
  if (trimmed === '' || trimmed.startsWith('!') || trimmed.startsWith('#')) return 'comment';
  const fields = text.split(':');
  if (fields.length < 2 || fields.length > 4) return null;
  return { name: fields[0]!.trim(), hash: fields[1]!.trim(), addresses: (fields[2] ?? '').trim(), flags: (fields[3] ?? '').trim() };
}

/** `name:hash[:addresses[:flags]]`, trailing empty fields left out. */
export function formatUserLine(f: UserLineFields): string {
  const fields = [f.name, f.hash, f.addresses, f.flags];
  while (fields.length > 2 && fields[fields.length - 1] === '') fields.pop();
  return fields.join(':');
}

export function splitList(text: string): string[] {
  return text.split(',').map((s) => s.trim()).filter(Boolean);
}

/** Why an address cannot be listed for a user (it must be local-part@domain, no route), or null. */
export function listedAddressProblem(address: string): string | null {
  const parsed = parseAddress(address);
  if (parsed?.domain == null || parsed.route.length > 0 || parsed.localPart === '') return `"${address.slice(0, 100)}" is not an address (local-part@domain)`;
  return null;
}

/** Hashes readable by all can be attacked offline; whoever can write the file can add an admin. */
const USERS_RISK: SecretFileRisk = {
  readable: 'the password hashes can be attacked offline',
  writable: 'anyone who can write it can add an admin',
};

/** The users file's permission warning for a mode (the one `cnbuild` gives). */
export function permissionProblem(mode: number): string | null {
  return secretPermissionProblem(mode, USERS_RISK);
}

export function parseUsers(file: string | null, diagnostics: Diagnostic[]): UsersConfig {
  const config: UsersConfig = { file, users: new Map() };
  if (!file) return config;
  const read = readSecretFile(file, diagnostics, USERS_RISK, false);
  if (read.kind !== 'text') return config;
  const { text } = read;

  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const error = (message: string) => diagnostics.push({ file, line, severity: 'error', message });
    const fields = splitUserLine(raw);
    if (fields === 'comment') return;
    if (fields === null) {
      // The text is not quoted: a line without its colons may be a password typed by mistake.
      error('expected name:password-hash[:address,…[:flag,…]] (make or update a user with imsimta passwd)');
      return;
    }
    if (!isValidUserName(fields.name)) {
      error(`user name ${isPrintableName(fields.name) ? `"${fields.name}" ` : ''}is not valid: letters, digits, ".", "_" and "-", starting with a letter or digit, at most 64`);
      return;
    }
    const name = fields.name.toLowerCase();
    const earlier = config.users.get(name);
    if (earlier) {
      error(`user ${name} is defined again (first at line ${earlier.line}); the file is refused until one is removed`);
      return;
    }
    let hash: ScryptHash | null = null;
    const locked = fields.hash === '*' || fields.hash.startsWith('!');
    const hashText = fields.hash.startsWith('!') ? fields.hash.slice(1) : fields.hash;
    if (!locked || (hashText !== '' && hashText !== '*')) {
      const parsed = parsePasswordHash(hashText);
      if (!parsed.ok) {
        error(`user ${name}: ${parsed.error}`);
        return;
      }
      hash = locked ? null : parsed.hash;
    }
    const addresses = splitList(fields.addresses);
    const bad = addresses.map(listedAddressProblem).find((p) => p !== null);
    if (bad) {
      error(`user ${name}: ${bad}`);
      return;
    }
    const flags = splitList(fields.flags).map((f) => f.toLowerCase());
    const unknown = flags.find((f) => !(USER_FLAGS as readonly string[]).includes(f));
    if (unknown !== undefined) {
      error(`user ${name}: unknown flag "${unknown.slice(0, 40)}" (known: ${USER_FLAGS.join(', ')})`);
      return;
    }
    config.users.set(name, { name, hash, addresses, admin: flags.includes('admin'), file, line });
  });
  return config;
}

function isPrintableName(name: string): boolean {
  return name.length <= 80 && /^[\x20-\x7e]*$/.test(name) && !name.startsWith('$');
}
