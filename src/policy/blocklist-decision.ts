// What the SMTP stage does with a blocklist result (pure): whether a client is checked at all
// (ENABLE_RBL with zones, and not an INTERNAL_IP client), and the reply: a listed client is refused
// with the list's TXT text, Messaging Server's "access_control: host found on DNS list" wording;
// an unchecked zone accepts and logs (fail open, the default) or refuses temporarily (fail closed).
// At connect a refusal is 554 / 421 (RFC 5321 §3.1, as PORT_ACCESS in src/mappings); at MAIL or
// RCPT 550 / 451.
import { ipInCidrs } from '../common/cidr.js';
import type { BlocklistConfig, Cidr } from '../config/types.js';
import type { BlocklistResult } from './blocklist.js';
import { accept, refuse, type PolicyDecision } from './decision.js';

/** Whether `clientIp` is to be checked: the service has ENABLE_RBL=1 and zones, and the client is outside INTERNAL_IP. */
export function blocklistApplies(rbl: BlocklistConfig | undefined, clientIp: string, internalIp: readonly Cidr[]): boolean {
  return !!rbl && rbl.enabled && rbl.zones.length > 0 && !ipInCidrs(clientIp, internalIp);
}

export function blocklistDecision(result: BlocklistResult, opts: { clientIp: string; stage: 'connect' | 'mail' | 'rcpt'; failClosed: boolean }): PolicyDecision {
  const { clientIp, stage } = opts;
  if (result.listed) {
    const why = result.text ?? `listed (${result.code})`;
    return refuse(
      stage === 'connect' ? 554 : 550,
      '5.7.1',
      `access_control: host ${clientIp} found on DNS list ${result.zone}: ${why}`,
      `DNS_VERIFY_DOMAIN ${result.zone} lists ${clientIp} (${result.code})`,
    );
  }
  if (result.unchecked.length === 0) return accept();
  const zones = result.unchecked.map((u) => `${u.zone} (${u.reason})`).join(', ');
  if (!opts.failClosed) return accept(`DNS_VERIFY_DOMAIN ${zones} not checked for ${clientIp}: accepted (RBL_FAIL_CLOSED=0)`);
  return refuse(
    stage === 'connect' ? 421 : 451,
    '4.7.1',
    `access_control: DNS list ${result.unchecked[0]!.zone} could not be checked for ${clientIp}, try again later`,
    `DNS_VERIFY_DOMAIN ${zones} not checked for ${clientIp}: refused (RBL_FAIL_CLOSED=1)`,
  );
}
