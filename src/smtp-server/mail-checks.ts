// The MAIL stage: the checks a MAIL FROM goes through, in order (see stages.ts for the verdicts).
// A refusal is the reply to MAIL; a policy rule's refusal is also a J record naming it (the
// built-in ones log nothing: no recipient is known yet). mustsaslserver refuses MAIL before AUTH;
// an authenticated user may use only its own addresses as sender (the directory's maySendAs),
// unless the channel has nosenderloginmatch. After the command's own checks: FROM_ACCESS
// (access-checks.ts), SPF (spf-checks.ts), the session's milters (milter-checks.ts). XVERP is a
// parameter of the clients that may use it (xverp.ts).
import type { SMTPServerAddress, SMTPServerSession } from 'smtp-server';
import { checkAddressCharset } from './address-check.js';
import { MAIL_PARAMETERS, MAIL_PARAMETERS_WITH_XVERP, unsupportedParameter } from './esmtp-params.js';
import { fromAccess } from './access-checks.js';
import type { InboundSession } from './inbound-session.js';
import { milterMail } from './milter-checks.js';
import { spfAtMail } from './spf-checks.js';
import { REPLIES, oneLine, type SmtpReply } from './replies.js';
import { mayUseXverp, xverpRefusal } from './xverp.js';
import { NEXT, refuse, type Check, type StageServices, type Verdict } from './stages.js';

export interface MailCommand {
  /** MAIL FROM as smtp-server parsed it (`address` '' for the null sender). */
  address: SMTPServerAddress;
  smtp: SMTPServerSession;
  session: InboundSession;
  services: StageServices;
}

type MailCheck = Check<MailCommand>;

/** musttlsserver: no transaction before STARTTLS. */
function requireTls(mail: MailCommand): Verdict {
  return mail.services.settings.tls.mode === 'must' && !mail.smtp.secure ? refuse(REPLIES.tlsRequired) : NEXT;
}

/** mustsaslserver: no transaction before AUTH (Messaging Server's reply). */
function requireAuth(mail: MailCommand): Verdict {
  return mail.services.settings.sasl.server === 'must' && !mail.session.user ? refuse(REPLIES.authRequired) : NEXT;
}

/** An authenticated user sends as itself: its addresses, any for an admin (Postfix's reject_sender_login_mismatch). */
function senderOwnership(mail: MailCommand): Verdict | Promise<Verdict> {
  const { session, services, address } = mail;
  if (!session.user) return NEXT;
  const channel = services.config.imta.channelByName.get(session.sourceChannel.toLowerCase());
  if (channel?.sasl?.senderLoginMatch === false) return NEXT;
  const user = session.user;
  return services.directory.maySendAs(user, address.address).then((decision): Verdict => {
    if (decision.ok) return NEXT;
    if (decision.reason === 'not-owner') return refuse(senderNotOwned(address.address, user.name));
    services.logger.error({ cid: mail.smtp.id, source: services.directory.source, why: decision.why }, 'directory unavailable for the sender check');
    return { kind: 'error', reply: REPLIES.directoryUnavailable };
  });
}

/** 553 5.7.1, as Postfix words it. */
function senderNotOwned(address: string, user: string): SmtpReply {
  return { code: 553, enhanced: '5.7.1', text: `<${oneLine(address)}>: Sender address rejected: not owned by user ${oneLine(user)}` };
}

/** MAX_MESSAGES_PER_SESSION (421, and smtp-server closes the session). */
function messagesPerSession(mail: MailCommand): Verdict {
  const max = mail.services.settings.maxMessagesPerSession;
  return max > 0 && mail.smtp.transaction > max ? refuse(REPLIES.tooManyMessages) : NEXT;
}

/** Only the parameters the EHLO reply offers (555 for any other; XVERP to the clients that may use it), XVERP's value checked. */
function mailParameters(mail: MailCommand): Verdict {
  const xverp = mayUseXverp(mail.session.internal, Boolean(mail.smtp.user));
  const param = unsupportedParameter(mail.address.args, xverp ? MAIL_PARAMETERS_WITH_XVERP : MAIL_PARAMETERS) ?? (xverp ? xverpRefusal(mail.address) : null);
  return param ? refuse(param) : NEXT;
}

/** A UTF-8 sender needs SMTPUTF8, and must be valid UTF-8. */
function senderCharset(mail: MailCommand): Verdict {
  const problem = mail.address.address === '' ? null : checkAddressCharset(mail.address.address, Boolean(mail.smtp.envelope.smtpUtf8));
  return problem ? refuse(problem) : NEXT;
}

export const MAIL_CHECKS: readonly MailCheck[] = [requireTls, requireAuth, messagesPerSession, mailParameters, senderCharset, senderOwnership, fromAccess, spfAtMail, milterMail];
