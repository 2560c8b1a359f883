// SPF in the SMTP stages, for clients outside INTERNAL_IP that did not authenticate: at MAIL the
// check of the MAIL FROM domain (postmaster@HELO for the null sender) is started, and decided
// there (spfmailfrom, the default), at the first accepted RCPT (spfrcptto), or at the end of DATA
// with the message's other results (spfdata, data-checks.ts). With spfhelo the HELO name is
// checked too, once per name, and decided at MAIL (the first command after HELO that can be
// refused: as Postfix's smtpd_delay_reject, HELO itself is always answered 250). A refusal's J
// record names `SPF`; SPF_SMTP_STATUS_* say which results refuse (550 5.7.23 / 451 4.7.23 …).
import { checkSpf, spfDecision, type PolicyDecision } from '../policy/index.js';
import { isTrustedClient } from './inbound-policy.js';
import type { MailCommand } from './mail-checks.js';
import { replyFromLine } from './policy-replies.js';
import type { RcptCommand } from './rcpt-checks.js';
import { NEXT, refuseBy, type Verdict } from './stages.js';

function verdictOf(d: PolicyDecision, cmd: { services: MailCommand['services']; smtp: MailCommand['smtp'] }, destination?: string): Verdict {
  if (d.action !== 'refuse') {
    if (d.reason) cmd.services.logger.info({ client: cmd.smtp.remoteAddress }, d.reason);
    return NEXT;
  }
  cmd.services.logger.info({ client: cmd.smtp.remoteAddress }, d.reason ?? 'SPF refusal');
  return refuseBy('SPF', replyFromLine(d.reply!), destination === undefined ? {} : { destination });
}

/** MAIL: spfhelo's check of the HELO name, then the MAIL FROM check started (and decided, with spfmailfrom). */
export function spfAtMail(cmd: MailCommand): Verdict | Promise<Verdict> {
  const { smtp, session, services } = cmd;
  if (isTrustedClient(session, smtp)) return NEXT;
  if (services.policy.authFor(session.sourceChannel).spf.stage === 'none') return NEXT;
  return checkAtMail(cmd);
}

async function checkAtMail(cmd: MailCommand): Promise<Verdict> {
  const { smtp, session, services } = cmd;
  const auth = services.policy.authFor(session.sourceChannel);
  const helo = smtp.hostNameAppearsAs || null;
  const params = { ip: smtp.remoteAddress, helo, mailFrom: cmd.address.address };
  if (auth.spf.helo && helo) {
    let checked = session.policy.heloSpf;
    if (checked?.name !== helo) session.policy.heloSpf = checked = { name: helo, outcome: await checkSpf(services.policy.dns, params, auth, 'helo') };
    const heloVerdict = verdictOf(spfDecision(checked.outcome, auth.spf, 'helo'), cmd);
    if (heloVerdict.kind !== 'next') return heloVerdict;
  }
  const spf = checkSpf(services.policy.dns, params, auth);
  session.policy.tx.spf = spf;
  if (auth.spf.stage !== 'mail') return NEXT;
  return verdictOf(spfDecision(await spf, auth.spf, 'mail'), cmd);
}

/** RCPT (spfrcptto): the check started at MAIL, decided here; a refusal refuses every recipient. */
export function spfAtRcpt(cmd: RcptCommand): Verdict | Promise<Verdict> {
  const { smtp, session, services } = cmd;
  const spf = session.policy.tx.spf;
  if (!spf || isTrustedClient(session, smtp)) return NEXT;
  const auth = services.policy.authFor(session.sourceChannel);
  if (auth.spf.stage !== 'rcpt') return NEXT;
  return spf.then((outcome) => verdictOf(spfDecision(outcome, auth.spf, 'rcpt'), cmd, cmd.route.channel.name));
}
