// A certificate authority made by a test with the openssl CLI in a temporary directory: a root CA,
// optionally an intermediate, and server certificates for given DNS names (expired ones too), as
// PEM. For verified-TLS tests: peers present these, the client trusts the root via TLS_CA_FILE.
//
//   const ca = makeTestCa();
//   const mx = ca.issue(['mx.good.test']);            // { key, cert, chain }
//   writeFileSync(caFile, ca.rootPem);
//   ca.remove();
import { execFileSync, execSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface IssuedCertificate {
  key: Buffer;
  /** The server certificate alone. */
  cert: Buffer;
  /** What a server sends: the certificate, then the intermediate when there is one. */
  chain: Buffer;
}

export interface TestCa {
  dir: string;
  rootPem: string;
  /** The intermediate CA's certificate (issue({ viaIntermediate: true }) signs with it). */
  intermediatePem: string;
  issue(names: string[], opts?: { expired?: boolean; viaIntermediate?: boolean; sendRoot?: boolean }): IssuedCertificate;
  remove(): void;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function makeTestCa(name = 'tsubame test CA'): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'tsubame-ca-'));
  openssl(['req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '3', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  openssl(['req', ...EC, '-keyout', 'int.key', '-out', 'int.csr', '-subj', `/CN=${name} intermediate`], dir);
  writeFileSync(join(dir, 'int.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  openssl(['x509', '-req', '-in', 'int.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'int.pem', '-days', '3', '-extfile', 'int.ext'], dir);
  let n = 0;
  return {
    dir,
    rootPem: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    intermediatePem: readFileSync(join(dir, 'int.pem'), 'utf8'),
    issue(names, opts = {}) {
      const base = `leaf${++n}`;
      openssl(['req', ...EC, '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${names[0] ?? 'no name'}`], dir);
      writeFileSync(join(dir, `${base}.ext`), `${names.length ? `subjectAltName=${names.map((x) => `DNS:${x}`).join(',')}\n` : ''}basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
      const signer = opts.viaIntermediate ? ['-CA', 'int.pem', '-CAkey', 'int.key'] : ['-CA', 'ca.pem', '-CAkey', 'ca.key'];
      // -days -1: valid until a day before it was made, an expired certificate.
      openssl(['x509', '-req', '-in', `${base}.csr`, ...signer, '-CAcreateserial', '-out', `${base}.pem`, '-days', opts.expired ? '-1' : '2', '-extfile', `${base}.ext`], dir);
      const cert = readFileSync(join(dir, `${base}.pem`));
      const parts = [cert];
      if (opts.viaIntermediate) parts.push(readFileSync(join(dir, 'int.pem')));
      if (opts.sendRoot) parts.push(readFileSync(join(dir, 'ca.pem')));
      return { key: readFileSync(join(dir, `${base}.key`)), cert, chain: Buffer.concat(parts) };
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * TLSA certificate association data computed by the openssl CLI (independently of the code under
 * test): selector 0 (certificate) or 1 (public key), matching 0 (full), 1 (SHA-256), 2 (SHA-512).
 */
export function tlsaAssociation(pem: string | Buffer, selector: 0 | 1, matching: 0 | 1 | 2): Buffer {
  const select = selector === 0 ? 'openssl x509 -outform DER' : 'openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER';
  const digest = matching === 0 ? 'cat' : `openssl dgst -${matching === 1 ? 'sha256' : 'sha512'} -binary`;
  return execSync(`${select} | ${digest}`, { input: pem });
}
