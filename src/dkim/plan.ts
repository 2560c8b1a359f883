// Which copies of a message are signed: those queued to a channel with the `dkimsign` keyword,
// when etc/dkim/keys has keys at all. One MessageSigner serves them all, so a message is signed
// once however many channels and recipients it has, and never again on a later attempt.
import type { InstanceConfig } from '../config/types.js';
import { MessageSigner } from './message-signer.js';

/** The QueueStoreOptions.prefixesFor of an instance: per draft (of the queue), the signer, or null when its channel does not sign. */
export function dkimPrefixesFor(config: Pick<InstanceConfig, 'imta' | 'dkim'> | null, drafts: ReadonlyArray<{ channel: string }>): Array<MessageSigner | null> {
  if (!config || config.dkim.keys.length === 0) return drafts.map(() => null);
  const signs = drafts.map((d) => config.imta.channelByName.get(d.channel.toLowerCase())?.dkimSign === true);
  if (!signs.includes(true)) return drafts.map(() => null);
  const signer = new MessageSigner(config.dkim);
  return signs.map((s) => (s ? signer : null));
}
