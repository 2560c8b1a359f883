// A started test instance whose mail stays queued, so that tests can read back what was
// accepted: the delivery channels are stopped (`imsimta qm stop`, before start) and tcp_local
// points at an address where nothing listens, in case a job runs anyway.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './instance.js';
import { MtaInstance } from './running-instance.js';
import type { DirectoryRow } from '../../src/queue/report.js';

/** One row of `imsimta qm directory --json` (the fields the contract fixes, and size). */
export type QueuedRow = Pick<DirectoryRow, 'id' | 'channel' | 'from' | 'recipients' | 'attempts' | 'next_attempt' | 'held'> & Partial<Pick<DirectoryRow, 'size'>>;

/** Channels the held instance never delivers from. */
const HELD_CHANNELS = ['tcp_local', 'l', 'hold'];

/** localhost → l; held.test → hold; everything else → tcp_local (smart host `nowhere`:port). */
function heldImtaCnf(nowhere: string, nowherePort: number): string {
  return `! held test instance
localhost            $U%localhost@localhost
held.test            $U%$D@hold-daemon
.                    $U%$H@tcp-daemon
[]                   $U%[$L]@tcp-daemon

l
localhost

tcp_local smtp mx daemon ${nowhere} port ${nowherePort}
tcp-daemon

hold
hold-daemon
`;
}

/**
 * A new instance on `address` with held channels and a local user `joe`, not started yet.
 * `nowhere` is an address of the caller's block on which nothing listens.
 */
export async function createHeldInstance(opts: { address: string; nowhere: string; service?: string }): Promise<MtaInstance> {
  const mta = await MtaInstance.create({ address: opts.address, service: opts.service });
  const deadPort = await freePort(opts.nowhere);
  mta.inst.write('etc/imta.cnf', heldImtaCnf(opts.nowhere, deadPort));
  mkdirSync(join(mta.root, 'mailbox', 'joe', 'new'), { recursive: true });
  for (const channel of HELD_CHANNELS) {
    const r = await mta.imsimta(['qm', 'stop', channel]);
    if (r.code !== 0) throw new Error(`qm stop ${channel}: ${r.stderr}`);
  }
  return mta;
}

/** Every queued message, from `imsimta qm directory --json`. */
export async function queuedMessages(mta: MtaInstance): Promise<QueuedRow[]> {
  const r = await mta.imsimta(['qm', 'directory', '--json']);
  if (r.code !== 0) throw new Error(`qm directory: ${r.code} ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as QueuedRow);
}

/** The ids of the first `250 2.0.0 Ok: queued as ID…` reply in a text (a reply or a swaks transcript); empty when there is none. */
export function queuedIdsOf(text: string): string[] {
  const m = /(?:^|\s)250[ -]2\.0\.0 Ok: queued as ([0-9A-Za-z]+(?: [0-9A-Za-z]+)*)[ \t]*\r?$/m.exec(text);
  return m ? m[1]!.split(' ') : [];
}
