// How many recipients one queue file of a channel holds (Messaging Server's keywords): 1 for
// `single`, N for `addrsperfile N`, else 0 (no limit). Used wherever a message's files are
// planned: the SMTP server's enqueue and the local channel's list copies.
import type { Channel } from '../config/types.js';

export function recipientsPerFile(channel: Pick<Channel, 'copies' | 'addrsPerFile'> | undefined): number {
  if (!channel) return 0;
  if (channel.copies === 'single') return 1;
  return channel.addrsPerFile ?? 0;
}
