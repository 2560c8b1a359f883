// Tries counted without trying (issue 13, item 8), on a running instance: a retry skipped because
// the host is inside its host-retry window (SMTP_HOST_RETRY, the delivery job's reachability cache)
// counted as a try and moved the message on its backoff, so that a message could be returned after
// one real connection. Here the host hangs up on every connection (each one counted), the backoff
// is one second then an hour, and the host-retry window four seconds: the retry after one second
// is skipped, and must leave the message on its first backoff step, to be tried again when the
// window ends (a second real connection) — not an hour later.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/instance.js';
import { MtaInstance } from '../helpers/running-instance.js';
import { startSmtpPeer, type SmtpPeer } from '../helpers/sim-internet.js';
import { queuedMessages } from '../helpers/held-instance.js';
import { sendMail, mailLog } from './etrn-fixture.js';

const MTA_ADDRESS = '127.0.21.10';
const PEER_ADDRESS = '127.0.21.11';
const CLIENT_ADDRESS = '127.0.21.12';

let mta: MtaInstance;
let peer: SmtpPeer;

before(async () => {
  peer = await startSmtpPeer({ host: PEER_ADDRESS, mode: 'hangup' });
  mta = await MtaInstance.create({ address: MTA_ADDRESS, service: 'MIN_PROCS=1\nMAX_PROCS=1' });
  mta.inst.write(
    'etc/imta.cnf',
    `! host that hangs up
localhost            $U%localhost@localhost
.                    $U%$H@tcp-daemon

l
localhost

tcp_local smtp nomx daemon ${PEER_ADDRESS} port ${peer.port} backoff "PT1S" "PT1H"
tcp-daemon
`,
  );
  mta.inst.write('etc/option.dat', 'INTERNAL_IP=127.0.0.0/8\nLOCAL_HOST=mta.tries.test\nSMTP_HOST_RETRY=4\n');
  // One job, so one delivery thread and one host reachability cache.
  mta.inst.write('etc/job_controller.cnf', '[POOL=DEFAULT]\nJOB_LIMIT=1\n');
  const r = await mta.cli('start-msg', [], 60_000);
  assert.equal(r.code, 0, r.stderr);
  await mta.processes();
});

after(async () => {
  await mta?.cleanup();
  await peer?.close();
});

test('tries counted without trying: a retry skipped inside the host-retry window is no try; the message is tried again when the window ends', { timeout: 60_000 }, async () => {
  await sendMail(mta, CLIENT_ADDRESS, [{ from: 'a@sender.test', to: ['someone@down.test'], subject: 'tries' }]);
  const deferrals = () => mailLog(mta).filter((r) => r.event === 'Q');
  // First try (a connection), then the retry a second later inside the window (skipped, no connection).
  await waitFor(() => deferrals().length >= 2, { timeoutMs: 15_000, what: 'the first try and the skipped retry' });
  assert.equal(peer.connections.length, 1, 'the skipped retry made no connection');
  assert.match(deferrals()[1]!.status, /not tried again until/);
  const [skipped] = await queuedMessages(mta);
  assert.equal(skipped!.attempts, 1, 'the skipped retry is not a try');
  const wait = Date.parse(skipped!.next_attempt ?? '') - Date.now();
  assert.ok(wait < 5_000, `due again when the host-retry window ends, not on the next backoff step (an hour): ${skipped!.next_attempt}`);

  // The window ends: a second real connection, the second try.
  await waitFor(() => peer.connections.length >= 2, { timeoutMs: 15_000, what: 'a second real connection after the window' });
  await waitFor(async () => (await queuedMessages(mta))[0]?.attempts === 2, { timeoutMs: 10_000, what: 'the second try counted' });
  const [tried] = await queuedMessages(mta);
  assert.ok(Date.parse(tried!.next_attempt ?? '') - Date.now() > 50 * 60_000, 'now the second backoff step');
});
