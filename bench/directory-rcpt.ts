// RCPT against the directory on a running instance (issue 19): the rate and the latency (p50/p99)
// of RCPT TO for local users, with LDAP (USERS users in a real slapd, looked up by their
// mailAlternateAddress) and with the files source (USERS directories under mailbox/), each with
// the SMTP server's cache cold (the first pass over every user) and warm (a second pass), and for
// unknown addresses (550 5.1.1: LDAP's negative answers, cold and warm).
//
//   node dist/bench/directory-rcpt.js [--users 10000] [--sessions 16] [--sources ldap,files] [--json]
//
// SESSIONS clients from an address outside INTERNAL_IP each send MAIL FROM, then one RCPT at a
// time (no pipelining, a new MAIL every 500 RCPTs), so a latency is one RCPT's time in the server
// plus a loopback round trip; every reply is checked (250 for users, 550 for unknown addresses).
// One SMTP server process (MIN_PROCS = MAX_PROCS = 1) takes every session, so the warm pass finds
// the answers the cold pass cached (each process has its own cache: with several, a warm pass
// would be partly cold). ALIAS_ENTRY_CACHE_SIZE holds every answer.
import { parseArgs } from 'node:util';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { MtaInstance } from '../test/helpers/running-instance.js';
import { ROOT_DN, ROOT_PASSWORD, startSlapd, SUFFIX, userLdif, type Slapd } from '../test/helpers/slapd.js';
import { SmtpLineClient } from './lib/smtp-line-client.js';
import { machineDescription } from './lib/peers.js';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '10000' },
    sessions: { type: 'string', default: '16' },
    sources: { type: 'string', default: 'ldap,files' },
    json: { type: 'boolean', default: false },
  },
});
const users = Number(values.users);
const sessions = Number(values.sessions);
const sources = values.sources.split(',').map((s) => s.trim()) as Array<'ldap' | 'files'>;
const ADDRESS = '127.0.19.101';
const CLIENT = '127.0.19.102';
const RCPTS_PER_MAIL = 500;

interface Pass {
  p50: number;
  p99: number;
  perSecond: number;
}

const percentile = (sorted: number[], q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : 0);
const round = (x: number) => Math.round(x * 1000) / 1000;

/** Every address once, SESSIONS sessions at a time; each reply must match `expect`. */
async function pass(mta: MtaInstance, addresses: string[], expect: RegExp): Promise<Pass> {
  const latencies: number[] = [];
  let next = 0;
  const session = async () => {
    const c = await SmtpLineClient.connect(ADDRESS, mta.port, CLIENT);
    try {
      if (!(await c.reply()).startsWith('220')) throw new Error('no greeting');
      await c.command('EHLO bench.client.test');
      let inMail = 0;
      for (let i = next++; i < addresses.length; i = next++) {
        if (inMail === 0) {
          const mail = await c.command('MAIL FROM:<bench@client.test>');
          if (!mail.startsWith('250')) throw new Error(`MAIL: ${mail}`);
        }
        const t = performance.now();
        const r = await c.command(`RCPT TO:<${addresses[i]}>`);
        latencies.push(performance.now() - t);
        if (!expect.test(r)) throw new Error(`RCPT TO:<${addresses[i]}>: ${r}`);
        if (++inMail === RCPTS_PER_MAIL) {
          await c.command('RSET');
          inMail = 0;
        }
      }
      await c.command('QUIT').catch(() => '');
    } finally {
      c.close();
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: sessions }, session));
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return { p50: round(percentile(latencies, 0.5)), p99: round(percentile(latencies, 0.99)), perSecond: Math.round(addresses.length / seconds) };
}

async function instance(source: 'ldap' | 'files', slapd: Slapd | null): Promise<MtaInstance> {
  const mta = await MtaInstance.create({ address: ADDRESS, service: 'MIN_PROCS=1\nMAX_PROCS=1\nMAX_CONNS=1000\nMAX_LIFE_CONNS=100000' });
  mta.inst.write('etc/imta.cnf', 'localhost  $U%localhost@localhost\nexample.test  $U%$D@localhost\nalt.example.test  $U%$D@localhost\n.  $U%$H@tcp-daemon\n\nl\nlocalhost\n\n! no SPF or verification: only the RCPT path is measured, and no name server is asked\ntcp_local smtp mx spfnone noauthverify\ntcp-daemon\n');
  // Unknown addresses are errors: the error limits (which would slow and close the sessions) are lifted.
  const options = ['INTERNAL_IP=127.0.0.1/32', 'LOCAL_HOST=mx.example.test', 'BANNER_PURGE_DELAY=0', 'MAX_RECIPIENTS=1000', 'SMTP_SOFT_ERROR_LIMIT=1000000', 'SMTP_HARD_ERROR_LIMIT=1000000', 'SMTP_ERROR_SLEEP_TIME=0'];
  if (source === 'ldap') {
    mta.inst.write('etc/ldap.secret', `${ROOT_PASSWORD}\n`);
    chmodSync(join(mta.root, 'etc/ldap.secret'), 0o600);
    options.push(`LDAP_HOST=127.0.0.1:${slapd!.port}`, `LDAP_USER_ROOT=${SUFFIX}`, `LDAP_USERNAME=${ROOT_DN}`, 'LDAP_PASSWORD_FILE=ldap.secret', `ALIAS_ENTRY_CACHE_SIZE=${users * 4}`);
  } else {
    for (let i = 0; i < users; i++) mkdirSync(join(mta.root, 'mailbox', `user${i}`), { recursive: true });
  }
  mta.inst.write('etc/option.dat', `${options.join('\n')}\n`);
  const r = await mta.cli('start-msg', [], 60_000);
  if (r.code !== 0) throw new Error(`start-msg: ${r.stderr}`);
  await mta.processes();
  return mta;
}

const results: Record<string, Record<string, Pass>> = {};
let slapd: Slapd | null = null;
try {
  if (sources.includes('ldap')) {
    slapd = await startSlapd();
    const ldif: string[] = [];
    for (let i = 0; i < users; i++) ldif.push(userLdif(`user${i}`, { mailAlternateAddress: `u${i}@alt.example.test` }));
    await slapd.add(ldif.join('\n'));
  }
  for (const source of sources) {
    const mta = await instance(source, slapd);
    try {
      const known = Array.from({ length: users }, (_, i) => (source === 'ldap' ? `u${i}@alt.example.test` : `user${i}@example.test`));
      const unknown = Array.from({ length: users }, (_, i) => `nobody${i}@example.test`);
      results[source] = {
        cold: await pass(mta, known, /^250 /),
        warm: await pass(mta, known, /^250 /),
        unknownCold: await pass(mta, unknown, /^550 5\.1\.1 /),
        unknownWarm: await pass(mta, unknown, /^550 5\.1\.1 /),
      };
    } finally {
      await mta.cleanup();
    }
  }
} finally {
  await slapd?.remove();
}

const machine = await machineDescription();
if (values.json) console.log(JSON.stringify({ users, sessions, machine, results }));
else {
  console.log(`RCPT TO for ${users} local users, ${sessions} sessions, one RCPT at a time; ${machine}`);
  for (const [source, passes] of Object.entries(results)) {
    for (const [name, r] of Object.entries(passes)) console.log(`${source.padEnd(6)} ${name.padEnd(12)} ${String(r.perSecond).padStart(7)} RCPT/s   p50 ${r.p50} ms   p99 ${r.p99} ms`);
  }
}
