// Recipient lookups against 10,000 users in a real slapd (issue 19): the users are loaded by one
// bulk ldapadd, then every user is looked up once with an empty cache (cold: one search each)
// and once more with the cache filled (warm), N at a time, by a different address of the user
// each time (mail, then mailAlternateAddress), plus unknown addresses (negative answers); the
// latency of each lookup is printed as p50/p99 (or JSON). Every answer is checked, so the
// numbers are of lookups that were right.
//   node dist/bench/ldap-lookup.js [--users 10000] [--concurrency 16] [--json]
import { parseArgs } from 'node:util';
import { writeFileSync, chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseOptionDat } from '../src/config/option-dat.js';
import type { Diagnostic } from '../src/config/types.js';
import { LdapDirectory } from '../src/directory/ldap-source.js';
import { ROOT_DN, ROOT_PASSWORD, startSlapd, SUFFIX, userLdif } from '../test/helpers/slapd.js';

const { values } = parseArgs({ options: { users: { type: 'string', default: '10000' }, concurrency: { type: 'string', default: '16' }, json: { type: 'boolean', default: false } } });
const users = Number(values.users);
const concurrency = Number(values.concurrency);

const percentile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : 0;
};
const round = (x: number) => Math.round(x * 1000) / 1000;

const slapd = await startSlapd();
const dir = mkdtempSync(join(tmpdir(), 'ldap-bench-'));
try {
  let t0 = performance.now();
  const ldif: string[] = [];
  for (let i = 0; i < users; i++) ldif.push(userLdif(`user${i}`, { mailAlternateAddress: `u${i}@alt.example.test`, mailDeliveryOption: 'mailbox' }));
  await slapd.add(ldif.join('\n'));
  const loadMs = performance.now() - t0;

  writeFileSync(join(dir, 'ldap.secret'), ROOT_PASSWORD);
  chmodSync(join(dir, 'ldap.secret'), 0o600);
  writeFileSync(join(dir, 'option.dat'), [`LDAP_HOST=127.0.0.1:${slapd.port}`, `LDAP_USER_ROOT=${SUFFIX}`, `LDAP_USERNAME=${ROOT_DN}`, 'LDAP_PASSWORD_FILE=ldap.secret', `ALIAS_ENTRY_CACHE_SIZE=${users * 3}`].join('\n'));
  const diagnostics: Diagnostic[] = [];
  const options = parseOptionDat(join(dir, 'option.dat'), diagnostics).ldap!;
  if (diagnostics.length) throw new Error(diagnostics.map((d) => d.message).join('\n'));
  const directory = new LdapDirectory(options);

  /** Looks up every address, `concurrency` at a time; returns each lookup's latency in ms. */
  const run = async (addresses: string[], expect: (i: number, kind: string, user: string | null) => boolean) => {
    const latencies = new Array<number>(addresses.length);
    let next = 0;
    let wrong = 0;
    const worker = async () => {
      for (let i = next++; i < addresses.length; i = next++) {
        const t = performance.now();
        const r = await directory.findRecipient(addresses[i]!);
        latencies[i] = performance.now() - t;
        if (!expect(i, r.kind, r.kind === 'user' ? r.user : null)) wrong++;
      }
    };
    const start = performance.now();
    await Promise.all(Array.from({ length: concurrency }, worker));
    const seconds = (performance.now() - start) / 1000;
    if (wrong) throw new Error(`${wrong} wrong answers`);
    return { p50: round(percentile(latencies, 0.5)), p99: round(percentile(latencies, 0.99)), perSecond: Math.round(addresses.length / seconds) };
  };
  const byMail = Array.from({ length: users }, (_, i) => `user${i}@example.test`);
  const byAlt = Array.from({ length: users }, (_, i) => `u${i}@alt.example.test`);
  const unknown = Array.from({ length: users }, (_, i) => `nobody${i}@example.test`);
  const isUser = (i: number, kind: string, user: string | null) => kind === 'user' && user === `user${i}`;
  const isNone = (_: number, kind: string) => kind === 'none';

  t0 = performance.now();
  await directory.findRecipient(byMail[0]!); // connections opened and bound
  const connectMs = performance.now() - t0;
  const results = {
    users,
    concurrency,
    loadSeconds: round(loadMs / 1000),
    firstLookupMs: round(connectMs),
    cold: await run(byAlt, isUser),
    warm: await run(byAlt, isUser),
    coldUnknown: await run(unknown, isNone),
    warmUnknown: await run(unknown, isNone),
    coldByMail: await run(byMail, isUser),
    searches: directory.stats.searches,
  };
  await directory.close();
  if (values.json) console.log(JSON.stringify(results));
  else {
    console.log(`${users} users loaded by ldapadd in ${results.loadSeconds} s; first lookup (connect + bind + search) ${results.firstLookupMs} ms; ${concurrency} lookups at a time`);
    for (const k of ['cold', 'warm', 'coldUnknown', 'warmUnknown', 'coldByMail'] as const) {
      const r = results[k];
      console.log(`${k.padEnd(12)} p50 ${r.p50} ms  p99 ${r.p99} ms  ${r.perSecond}/s`);
    }
    console.log(`${results.searches} LDAP searches in all`);
  }
} finally {
  await slapd.remove();
  rmSync(dir, { recursive: true, force: true });
}
