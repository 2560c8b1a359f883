// List expansion to queue entries (issue 19): one message to a list of MEMBERS addresses at other
// domains (spread over 50 domains), expanded by the local channel's job as the job controller
// would run it, into queue files for tcp_local (1,000 recipients each, the list owner as envelope
// sender, fsynced, released when the whole list is done) with an E record each in mail.log. The
// list is an `:include:` file of etc/aliases (files source) or an LDAP group in a real slapd whose
// members are mgrpRFC822MailMember values (LDAP source: the group entry comes in one answer).
// Reported: the time, members per second, the queue files, and the memory of the process: the
// live heap (after a full collection, sampled every 100 ms) and the RSS above where they were
// before the expansion.
//
//   node --expose-gc dist/bench/list-expansion.js [--members 100000] [--sources files,ldap] [--json]
import { parseArgs } from 'node:util';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { createLocalJob } from '../src/channels/local.js';
import { instancePaths } from '../src/common/instance.js';
import { silentLogger } from '../src/common/logger.js';
import { loadInstanceConfigOrThrow } from '../src/config/load.js';
import { queueStoreFor } from '../src/queue/index.js';
import { makeInstance } from '../test/helpers/instance.js';
import { groupLdif, ROOT_DN, ROOT_PASSWORD, startSlapd, SUFFIX, type Slapd } from '../test/helpers/slapd.js';
import { machineDescription } from './lib/peers.js';

const { values } = parseArgs({
  options: {
    members: { type: 'string', default: '100000' },
    sources: { type: 'string', default: 'files,ldap' },
    json: { type: 'boolean', default: false },
  },
});
const members = Number(values.members);
const sources = values.sources.split(',').map((s) => s.trim()) as Array<'files' | 'ldap'>;
const memberAddress = (i: number) => `member${i}@d${i % 50}.example.org`;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const liveHeap = () => {
  gc();
  return process.memoryUsage().heapUsed;
};

interface Result {
  seconds: number;
  membersPerSecond: number;
  files: number;
  recipients: number;
  liveHeapPeakMiB: number;
  rssPeakMiB: number;
}

async function run(source: 'files' | 'ldap', slapd: Slapd | null): Promise<Result> {
  const inst = makeInstance({
    files: {
      'etc/imta.cnf': 'localhost  $U%localhost@localhost\nexample.test  $U%$D@localhost\n.  $U%$H@tcp-daemon\n\nl\nlocalhost\n\ntcp_local smtp mx\ntcp-daemon\n',
    },
  });
  try {
    const options = ['LOCAL_HOST=mx.example.test'];
    if (source === 'files') {
      const list = join(inst.root, 'etc', 'big.list');
      writeFileSync(list, Array.from({ length: members }, (_, i) => `${memberAddress(i)}\n`).join(''));
      inst.write('etc/aliases', `big: :include:${list}\nowner-big: postmaster\n`);
    } else {
      inst.write('etc/ldap.secret', `${ROOT_PASSWORD}\n`);
      chmodSync(join(inst.root, 'etc/ldap.secret'), 0o600);
      options.push(`LDAP_HOST=127.0.0.1:${slapd!.port}`, `LDAP_USER_ROOT=${SUFFIX}`, `LDAP_USERNAME=${ROOT_DN}`, 'LDAP_PASSWORD_FILE=ldap.secret', 'LDAP_TIMEOUT=60');
    }
    inst.write('etc/option.dat', `${options.join('\n')}\n`);
    mkdirSync(join(inst.root, 'mailbox'), { recursive: true });
    const config = loadInstanceConfigOrThrow(inst.root);
    const store = queueStoreFor(instancePaths(inst.root), config);
    const job = await createLocalJob({ root: inst.root, config, channel: config.imta.channelByName.get('l')!, logger: silentLogger(), openBody: (p) => store.openBody(p) });
    const body = Buffer.from(`From: <sender@origin.example>\r\nSubject: to the big list\r\nMessage-ID: <big@origin.example>\r\n\r\n${'a line of the message body\r\n'.repeat(100)}`);
    const [ref] = await store.enqueue(
      [{ channel: 'l', from: 'sender@origin.example', mailParams: {}, sourceChannel: 'tcp_local', clientAddress: null, clientHelo: null, arrival: new Date(), recipients: [{ address: 'big@example.test', original: 'big@example.test', orcpt: null, notify: null, state: 'pending', status: null }] }],
      body,
    );
    const item = { ref: ref!, envelope: await store.readEnvelope(ref!.path) };

    const heapBase = liveHeap();
    const rssBase = process.memoryUsage().rss;
    let heapPeak = heapBase;
    let rssPeak = rssBase;
    const sampler = setInterval(() => {
      heapPeak = Math.max(heapPeak, liveHeap());
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    }, 100);
    const t0 = performance.now();
    const [outcome] = await job.deliver([item]);
    const seconds = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    const r = outcome!.recipients[0]!;
    if (r.result !== 'delivered') throw new Error(`${source}: ${r.status}`);
    let recipients = 0;
    for (const q of outcome!.enqueued ?? []) recipients += (await store.readEnvelope(q.path)).recipients.length;
    if (recipients !== members) throw new Error(`${source}: ${recipients} recipients queued, not ${members}`);
    await job.close();
    await store.close();
    return {
      seconds: Math.round(seconds * 100) / 100,
      membersPerSecond: Math.round(members / seconds),
      files: outcome!.enqueued!.length,
      recipients,
      liveHeapPeakMiB: Math.round(((heapPeak - heapBase) / 2 ** 20) * 10) / 10,
      rssPeakMiB: Math.round(((rssPeak - rssBase) / 2 ** 20) * 10) / 10,
    };
  } finally {
    inst.remove();
  }
}

const results: Record<string, Result> = {};
let slapd: Slapd | null = null;
try {
  if (sources.includes('ldap')) {
    slapd = await startSlapd();
    await slapd.add(groupLdif('big', { mgrpRFC822MailMember: Array.from({ length: members }, (_, i) => memberAddress(i)), mgrpErrorsTo: 'postmaster@example.test' }));
  }
  for (const source of sources) results[source] = await run(source, slapd);
} finally {
  await slapd?.remove();
}
const machine = await machineDescription();
if (values.json) console.log(JSON.stringify({ members, machine, results }));
else {
  console.log(`A list of ${members} members at other domains expanded by channel l into tcp_local queue files; ${machine}`);
  for (const [source, r] of Object.entries(results)) {
    console.log(`${source.padEnd(6)} ${r.seconds} s  ${r.membersPerSecond} members/s  ${r.files} files (${r.recipients} recipients)  live heap +${r.liveHeapPeakMiB} MiB  RSS +${r.rssPeakMiB} MiB`);
  }
}
