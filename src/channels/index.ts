// Which master program delivers a channel: `smtp`/`lmtp` channels use the SMTP/LMTP engine,
// `l` delivers into local Maildirs, `bitbucket` discards (as delivered), `hold` leaves the files
// held, `bounces` records the bounces that come back to VERP addresses (bounces.ts). Other
// channels have no master program here: their messages wait in the queue.
import type { Channel } from '../config/types.js';
import type { ChannelJob, ChannelJobFactory, DeliveryItem, MessageOutcome } from './types.js';
import { everyPendingAs } from './outcomes.js';
import { createSmtpJob } from './smtp.js';
import { createLocalJob } from './local.js';
import { createBouncesJob } from './bounces.js';
import { queueStoreFor } from '../queue/instance-store.js';
import { instancePaths } from '../common/instance.js';

export type ChannelProgram = 'smtp' | 'local' | 'bitbucket' | 'hold' | 'bounces';

/** The program for a channel, or null when it has none. */
export function channelProgram(channel: Pick<Channel, 'name' | 'smtp' | 'lmtp'>): ChannelProgram | null {
  const name = channel.name.toLowerCase();
  if (channel.smtp || channel.lmtp) return 'smtp';
  if (name === 'l' || name === 'native') return 'local';
  if (name === 'bitbucket' || name.startsWith('bitbucket_')) return 'bitbucket';
  if (name === 'hold') return 'hold';
  if (name === 'bounces' || name.startsWith('bounces_')) return 'bounces';
  return null;
}

export function channelJobFactory(channel: Pick<Channel, 'name' | 'smtp' | 'lmtp'>): ChannelJobFactory | null {
  switch (channelProgram(channel)) {
    case 'smtp':
      return createSmtpJob;
    case 'local':
      return createLocalJob;
    case 'bitbucket':
      return createBitbucketJob;
    case 'hold':
      return createHoldJob;
    case 'bounces':
      return createBouncesJob;
    default:
      return null;
  }
}

/** Every pending recipient is taken as delivered: the message is discarded. */
const createBitbucketJob: ChannelJobFactory = async (): Promise<ChannelJob> => ({
  async deliver(items: DeliveryItem[]): Promise<MessageOutcome[]> {
    return everyPendingAs(items, 'delivered', '250 2.0.0 discarded (bitbucket channel)');
  },
  async close() {},
});

/**
 * The hold channel parks messages: each file is renamed to `.HELD` (never scheduled until
 * `qm release`) and no recipient outcome is reported, so the job controller forgets it.
 */
const createHoldJob: ChannelJobFactory = async (ctx): Promise<ChannelJob> => {
  const store = queueStoreFor(instancePaths(ctx.root), ctx.config, ctx.logger);
  return {
    async deliver(items: DeliveryItem[]): Promise<MessageOutcome[]> {
      const out: MessageOutcome[] = [];
      for (const item of items) {
        try {
          await store.hold(item.ref);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
        out.push({ ref: item.ref, recipients: [] });
      }
      return out;
    },
    async close() {
      await store.close();
    },
  };
};
