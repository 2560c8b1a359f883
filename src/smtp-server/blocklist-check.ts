// DNS blocklists at connect (dispatcher.cnf ENABLE_RBL, DNS_VERIFY_DOMAIN): a client outside
// INTERNAL_IP is looked up in every zone at once through the service's cached DNS lookup, within
// RBL_TIMEOUT; a listed client is refused in place of the greeting with the list's TXT text
// (`554 5.7.1 access_control: host … found on DNS list zone: text`), the J record naming the list
// (`rbl:zone`). A zone that cannot answer accepts and logs (the default) or refuses with 421
// (RBL_FAIL_CLOSED=1). Only this session waits for the answers: the lookups are asynchronous.
import { blocklistApplies, blocklistDecision, checkBlocklists } from '../policy/index.js';
import type { ConnectCommand } from './connect-checks.js';
import { replyFromLine } from './policy-replies.js';
import { NEXT, refuseBy, type Verdict } from './stages.js';

export function blocklists(cmd: ConnectCommand): Verdict | Promise<Verdict> {
  const { policy, settings, logger } = cmd.services;
  const ip = cmd.smtp.remoteAddress;
  if (!blocklistApplies(policy.rbl ?? undefined, ip, settings.internalIp)) return NEXT;
  const rbl = policy.rbl!;
  return checkBlocklists(policy.dns, ip, rbl.zones, { timeoutMs: rbl.timeoutMs }).then((result): Verdict => {
    const d = blocklistDecision(result, { clientIp: ip, stage: 'connect', failClosed: rbl.failClosed });
    if (d.action !== 'refuse') {
      if (d.reason) logger.info({ client: ip }, d.reason);
      return NEXT;
    }
    const zone = result.listed ? result.zone : (result.unchecked[0]?.zone ?? rbl.zones[0]!);
    logger.info({ client: ip, zone }, d.reason ?? 'blocklisted');
    return refuseBy(`rbl:${zone}`, replyFromLine(d.reply!));
  });
}
