// etc/dkim/keys: the DKIM signing keys, one line per signing domain and selector:
//
//   domain  selector  keyfile  [algorithm]
//
// `!` or `#` start a comment line. The key file is a PEM private key (PKCS#8 or PKCS#1), a path
// relative to the directory of the keys file (etc/dkim/) unless absolute; the algorithm is
// `rsa-sha256` or `ed25519-sha256` (RFC 8463), by default the one the key's type gives.
// A domain written `*.example.com` also signs mail from every subdomain of example.com, with
// d=example.com (relaxed DMARC alignment). Two lines for one domain with different selectors give
// two signatures (an RSA and an Ed25519 one, as RFC 8463 suggests while verifiers catch up).
// Every key is read and checked here, so a missing, unreadable or wrong key is an error with
// file:line when the configuration loads (cnbuild, start, every reload).
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { domainToASCII } from 'node:url';
import type { Diagnostic, DkimAlgorithm, DkimConfig } from './types.js';

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
/** RFC 8301: verifiers refuse RSA keys under 1024 bits; signers should use 2048 or more. */
const MIN_RSA_BITS = 1024;
const GOOD_RSA_BITS = 2048;
/** Many verifiers do not take longer keys (and the TXT record grows past one UDP answer). */
const MAX_RSA_BITS = 4096;

/** Parses `file` (null: no keys file, no signing), adding every problem to `diagnostics`. */
export function parseDkimKeys(file: string | null, diagnostics: Diagnostic[]): DkimConfig {
  const config: DkimConfig = { file, keys: [] };
  if (file === null) return config;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    diagnostics.push({ file, line: 0, severity: 'error', message: `cannot read file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` });
    return config;
  }
  const seen = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const trimmed = raw.trim();
    if (!trimmed || trimmed.startsWith('!') || trimmed.startsWith('#')) return;
    const error = (message: string) => diagnostics.push({ file, line, severity: 'error', message });
    const fields = trimmed.split(/\s+/);
    if (fields.length < 3 || fields.length > 4) {
      error(`expected "domain selector keyfile [algorithm]", found "${trimmed.slice(0, 80)}"`);
      return;
    }
    const [domainField, selectorField, keyField, algorithmField] = fields as [string, string, string, string | undefined];
    const subdomains = domainField.startsWith('*.');
    const domain = dkimName(subdomains ? domainField.slice(2) : domainField);
    if (!domain?.includes('.')) {
      error(`"${domainField}" is not a domain name (write example.com, or *.example.com for its subdomains)`);
      return;
    }
    const selector = dkimName(selectorField);
    if (selector === null) {
      error(`"${selectorField}" is not a selector (letters, digits and hyphens, labels separated by dots)`);
      return;
    }
    let algorithm: DkimAlgorithm | null = null;
    if (algorithmField !== undefined) {
      algorithm = parseAlgorithm(algorithmField);
      if (algorithm === null) {
        error(`unknown algorithm "${algorithmField}" (rsa-sha256 or ed25519-sha256)`);
        return;
      }
    }
    const name = `${subdomains ? '*.' : ''}${domain} ${selector}`;
    const earlier = seen.get(name);
    if (earlier !== undefined) {
      error(`${subdomains ? '*.' : ''}${domain} with selector ${selector} is already defined at line ${earlier}`);
      return;
    }
    seen.set(name, line);

    const keyFile = isAbsolute(keyField) ? keyField : resolve(dirname(file), keyField);
    const key = readKey(keyFile, algorithm);
    if ('error' in key) {
      error(key.error);
      return;
    }
    if (key.warning) diagnostics.push({ file, line, severity: 'warning', message: key.warning });
    config.keys.push({ domain, subdomains, selector, algorithm: key.algorithm, keyFile, privateKey: key.privateKey, signatureBytes: key.signatureBytes, file, line });
  });
  return config;
}

/** `rsa-sha256`, `ed25519-sha256` (or `rsa`, `ed25519`); null for anything else (rsa-sha1 is gone: RFC 8301). */
function parseAlgorithm(text: string): DkimAlgorithm | null {
  const t = text.toLowerCase();
  if (t === 'rsa-sha256' || t === 'rsa') return 'rsa-sha256';
  if (t === 'ed25519-sha256' || t === 'ed25519') return 'ed25519-sha256';
  return null;
}

/** A domain name or selector in lower-case A-labels, or null when it is not one. */
export function dkimName(text: string): string | null {
  const ascii = domainToASCII(text.replace(/\.$/, '')).toLowerCase();
  if (!ascii || ascii.length > 253) return null;
  return ascii.split('.').every((l) => LABEL.test(l)) ? ascii : null;
}

type ReadKey = { algorithm: DkimAlgorithm; privateKey: KeyObject; signatureBytes: number; warning: string | null } | { error: string };

/** Reads and checks one private key file. The message never quotes the key's contents. */
function readKey(path: string, wanted: DkimAlgorithm | null): ReadKey {
  let pem: Buffer;
  let mode: number;
  try {
    pem = readFileSync(path);
    mode = statSync(path).mode;
  } catch (e) {
    return { error: `cannot read key file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    return { error: `key file ${path} holds no PEM private key` };
  }
  const type = privateKey.asymmetricKeyType;
  const algorithm: DkimAlgorithm | null = type === 'rsa' ? 'rsa-sha256' : type === 'ed25519' ? 'ed25519-sha256' : null;
  if (algorithm === null) return { error: `key file ${path} holds a ${type ?? 'unknown'} key; DKIM signs with rsa or ed25519 keys` };
  if (wanted !== null && wanted !== algorithm) return { error: `key file ${path} holds a ${type} key, which cannot sign ${wanted}` };
  const warnings: string[] = [];
  let signatureBytes = 64;
  if (type === 'rsa') {
    const bits = privateKey.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) return { error: `key file ${path} holds a ${bits}-bit RSA key; verifiers refuse keys under ${MIN_RSA_BITS} bits (RFC 8301)` };
    if (bits < GOOD_RSA_BITS) warnings.push(`the ${bits}-bit RSA key of ${path} is weak: use ${GOOD_RSA_BITS} bits (RFC 8301)`);
    if (bits > MAX_RSA_BITS) warnings.push(`the ${bits}-bit RSA key of ${path} is longer than many verifiers take (${MAX_RSA_BITS})`);
    signatureBytes = Math.ceil(bits / 8);
  }
  // Group read is how the service user reads a key root made (imsimta dkim keygen: 0640 in its group).
  if ((mode & 0o007) !== 0) warnings.push(`key file ${path} can be read by other users (mode ${(mode & 0o777).toString(8)}): chmod 600 it, or 640 in the service user's group`);
  return { algorithm, privateKey, signatureBytes, warning: warnings.length ? warnings.join('; ') : null };
}
