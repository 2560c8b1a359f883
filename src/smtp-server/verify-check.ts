// SPF, DKIM, DMARC and ARC verification at the end of DATA (src/policy verifyMessage), for a
// client outside INTERNAL_IP that did not authenticate, on the message exactly as it arrived:
// one Authentication-Results field with our authserv-id (LOCAL_HOST) goes on top of the stored
// message, and an incoming one claiming that authserv-id is dropped (RFC 8601 §5). The decision:
// a DMARC failure under p=reject refused with 550 5.7.1 (DMARC_REJECT_ACTION may hold or accept it
// instead), spfdata's SPF decision, a hold noted for the data stage; the J record names DMARC or SPF.
import { Readable } from 'node:stream';
import { authservIdOf, verifyMessage } from '../policy/index.js';
import { fieldValue, type HeaderField } from '../common/rfc5322-header.js';
import type { MessageCommand } from './data-checks.js';
import { isTrustedClient } from './inbound-policy.js';
import { replyFromLine } from './policy-replies.js';
import { NEXT, refuseBy, type Verdict } from './stages.js';

/** Whether the session's message gets verified at all (so that the data stage spools it). */
export function verificationApplies(cmd: Pick<MessageCommand, 'smtp' | 'session' | 'services'>): boolean {
  if (isTrustedClient(cmd.session, cmd.smtp)) return false;
  const auth = cmd.services.policy.authFor(cmd.session.sourceChannel);
  return auth.verify || auth.spf.stage !== 'none';
}

export function verifyAuthentication(cmd: MessageCommand): Verdict | Promise<Verdict> {
  if (!cmd.content || !verificationApplies(cmd)) return NEXT;
  return verify(cmd, cmd.content);
}

async function verify(cmd: MessageCommand, content: NonNullable<MessageCommand['content']>): Promise<Verdict> {
  const { smtp, session, services } = cmd;
  const auth = services.policy.authFor(session.sourceChannel);
  const started = session.policy.tx.spf;
  const result = await verifyMessage(
    services.policy.dns,
    {
      ip: smtp.remoteAddress,
      helo: smtp.hostNameAppearsAs || null,
      mailFrom: cmd.from,
      message: Readable.from(content.spool.read()),
      // checked at MAIL; none when the channel has spfnone
      ...(started ? { spf: await started } : auth.spf.stage === 'none' ? { spf: null } : {}),
      heloSpf: session.policy.heloSpf?.outcome ?? null,
    },
    auth,
  );
  const own = auth.authservId.toLowerCase();
  content.fields = content.fields.filter((f) => !(f.name === 'authentication-results' && authservIdOf(fieldValue(f))?.toLowerCase().replace(/\.$/, '') === own));
  const field: HeaderField = { name: 'authentication-results', raw: `${result.authResultsHeader}\r\n` };
  cmd.edits.authResults = field;
  const d = result.decision;
  if (d.action === 'accept') {
    if (d.reason) services.logger.info({ client: smtp.remoteAddress, id: cmd.messageId }, d.reason);
    return NEXT;
  }
  services.logger.info({ client: smtp.remoteAddress, id: cmd.messageId }, d.reason ?? d.action);
  if (d.action === 'hold') {
    session.policy.tx.hold ??= d.reason ?? 'message authentication';
    return NEXT;
  }
  return refuseBy((d.reason ?? '').startsWith('DMARC') ? 'DMARC' : 'SPF', replyFromLine(d.reply!));
}
