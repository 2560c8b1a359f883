// option.dat TLS_CA_FILE's contents: PEM certificates, each of which must parse. Read here so
// that option-dat.ts reports an unusable file with file:line; src/delivery/tls/trust.ts adds
// the certificates to Node's list for outbound TLS.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** The PEM certificate blocks of a text; each must parse. Throws with the reason. */
function pemCertificates(text: string): string[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  blocks.forEach((b, i) => {
    try {
      new X509Certificate(b);
    } catch (err) {
      throw new Error(`certificate ${i + 1} cannot be read (${(err as Error).message})`, { cause: err });
    }
  });
  return blocks;
}

/** The certificates of `caFile` (absolute): at least one. Throws `TLS_CA_FILE …: reason` when the file is unusable. */
export function readCaFile(caFile: string): string[] {
  let text: string;
  try {
    text = readFileSync(caFile, 'utf8');
  } catch (err) {
    throw new Error(`TLS_CA_FILE ${caFile}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
  let certificates: string[];
  try {
    certificates = pemCertificates(text);
  } catch (err) {
    throw new Error(`TLS_CA_FILE ${caFile}: ${(err as Error).message}`, { cause: err });
  }
  if (certificates.length === 0) throw new Error(`TLS_CA_FILE ${caFile}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it`);
  return certificates;
}
