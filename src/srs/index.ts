// The Sender Rewriting Scheme: forwarded mail's envelope sender encoded at SRS_DOMAIN (SRS0/SRS1,
// as libsrs2 and postsrsd), bounces to such an address decoded back, the channel keywords that
// decide when, and the secrets' rotation (imsimta srs keygen).
import type { InstanceConfig } from '../config/types.js';
import type { SrsSettings } from './srs.js';

export { srsForward, srsReverse, isSrsLocalPart, timestamp, type SrsSettings } from './srs.js';
export { senderForCopy, srsRequested } from './decision.js';
export { addSrsSecret, withNewSecret } from './keygen.js';

/** The instance's SRS settings (SRS_DOMAIN, SRS_MAXAGE, etc/srs.secrets); null when there is no secret. */
export function srsSettingsOf(config: Pick<InstanceConfig, 'options' | 'srs'>): SrsSettings | null {
  const secrets = config.srs?.secrets ?? [];
  if (secrets.length === 0) return null;
  return { domain: config.options.srs?.domain ?? config.options.localHost, maxAgeDays: config.options.srs?.maxAgeDays ?? 21, secrets };
}
export { copySenders } from './copy-sender.js';
