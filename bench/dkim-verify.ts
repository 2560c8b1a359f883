// DKIM verification cost: CPU milliseconds per message for a 1 KiB and a 1 MiB message signed
// with rsa-sha256 (2048-bit key, relaxed/relaxed), verified by src/policy/auth-verify.ts as at the
// end of DATA (DKIM, ARC and DMARC; SPF off with spfnone, as it is checked at MAIL). DNS answers
// come from memory, as from a warm cache, so the numbers are the verifier's own work.
//
//   node dist/bench/dkim-verify.js [--count 200] [--big-count 20] [--json]
//
// Reported per size: messages verified, CPU ms per message (user + system of this process), wall
// ms per message, and the verification results seen (all must be dkim=pass dmarc=pass).
import { generateKeyPairSync } from 'node:crypto';
import { createRequire } from 'node:module';
import { cpus, loadavg } from 'node:os';
import type { RecordType } from 'dns-packet';
import type { RrsetResult, RrsetSource } from '../src/dns/lookup.js';
import { authSettings } from '../src/policy/auth-settings.js';
import { verifyMessage } from '../src/policy/auth-verify.js';

const require = createRequire(import.meta.url);
const { dkimSign } = require('mailauth/lib/dkim/sign') as {
  dkimSign: (message: Buffer, opts: object) => Promise<{ signatures: string; errors: unknown[] }>;
};

interface Options {
  count: number;
  bigCount: number;
  json: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { count: 200, bigCount: 20, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`${a} needs a positive whole number`);
      return v;
    };
    if (a === '--count') o.count = next();
    else if (a === '--big-count') o.bigCount = next();
    else if (a === '--json') o.json = true;
    else throw new Error(`unknown argument ${a} (expected --count N, --big-count N, --json)`);
  }
  return o;
}

function body(size: number): string {
  const line = 'The quick brown fox jumps over the lazy dog, again and again and again.\r\n'; // 74 octets
  return line.repeat(Math.ceil(size / line.length)).slice(0, size - 2) + '\r\n';
}

function message(size: number): Buffer {
  return Buffer.from(`From: Bench <bench@origin.bench>\r\nTo: rcpt@dest.bench\r\nSubject: dkim bench\r\nMessage-ID: <${size}@origin.bench>\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\n\r\n${body(size)}`);
}

/** The DNS of the benchmark, in memory: the DKIM key and the DMARC record of origin.bench. */
function memoryDns(publicKey: string): RrsetSource {
  const txt = (name: string, text: string): RrsetResult => ({ status: 'ok', records: [{ type: 'TXT', name, ttl: 3600, data: (text.match(/.{1,255}/g) ?? []).map((p) => Buffer.from(p)) }] });
  const table = new Map<string, RrsetResult>([
    ['TXT bench._domainkey.origin.bench', txt('bench._domainkey.origin.bench', `v=DKIM1; k=rsa; p=${publicKey}`)],
    ['TXT _dmarc.origin.bench', txt('_dmarc.origin.bench', 'v=DMARC1; p=reject')],
  ]);
  return { rrset: async (name: string, type: RecordType) => table.get(`${type} ${name}`) ?? { status: 'nxdomain' } };
}

async function measure(size: number, count: number, dns: RrsetSource, privateKey: string) {
  const plain = message(size);
  const signed = await dkimSign(plain, { canonicalization: 'relaxed/relaxed', signatureData: [{ signingDomain: 'origin.bench', selector: 'bench', privateKey }] });
  if (signed.errors.length) throw new Error(`signing failed: ${JSON.stringify(signed.errors)}`);
  const msg = Buffer.concat([Buffer.from(signed.signatures), plain]);
  const settings = authSettings({ raw: {}, localHost: 'mx.bench' }, { keywords: { spfnone: [] } });
  const params = { ip: '192.0.2.1', helo: 'mail.origin.bench', mailFrom: 'bench@origin.bench', message: msg };
  await verifyMessage(dns, params, settings); // warm-up: code compiled, key parsed once
  const results = new Map<string, number>();
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const v = await verifyMessage(dns, params, settings);
    const key = `dkim=${v.dkim.map((d) => d.result).join(',')} dmarc=${v.dmarc?.result}`;
    results.set(key, (results.get(key) ?? 0) + 1);
  }
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  const used = process.cpuUsage(cpu);
  return {
    size: msg.length,
    messages: count,
    cpuMsPerMessage: Number(((used.user + used.system) / 1000 / count).toFixed(3)),
    wallMsPerMessage: Number((wallMs / count).toFixed(3)),
    results: Object.fromEntries(results),
  };
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const dns = memoryDns(publicKey.export({ type: 'spki', format: 'der' }).toString('base64'));
  const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const runs = [await measure(1024, opts.count, dns, pem), await measure(1024 * 1024, opts.bigCount, dns, pem)];
  const bad = runs.filter((r) => Object.keys(r.results).some((k) => k !== 'dkim=pass dmarc=pass'));
  const report = { machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`, load: loadavg()[0]!.toFixed(2), node: process.version, runs };
  if (opts.json) console.log(JSON.stringify(report));
  else {
    console.log(`DKIM verification (rsa-sha256 2048, relaxed/relaxed; DKIM+ARC+DMARC, DNS from memory) on ${report.machine}, load ${report.load}, ${report.node}`);
    for (const r of runs) console.log(`  ${String(r.size).padStart(8)} octets: ${r.messages} messages, ${r.cpuMsPerMessage} CPU ms/message, ${r.wallMsPerMessage} wall ms/message  ${JSON.stringify(r.results)}`);
  }
  if (bad.length) {
    console.error('some verifications did not pass: the numbers are not those of a passing signature');
    process.exitCode = 1;
  }
}

main().catch((err: Error) => {
  console.error(`dkim-verify: ${err.message}`);
  process.exitCode = 1;
});
