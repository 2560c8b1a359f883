// The session's milter filters (the sourcespamfilterN slots of the channel its mail comes in on)
// at every SMTP stage: connected and told of the client at connect, told the HELO name and the
// sender at MAIL (HELO is always answered 250, as Postfix's smtpd_delay_reject does; the filters
// hear it just before MAIL), each accepted recipient at RCPT, DATA before the message (data-stage.ts)
// and the message itself at the end of DATA (data-checks.ts). A filter's refusal answers with the
// filter's own reply and is a J record naming it (`milter:rspamd`); a filter that is down, slow
// or talks garbage answers with MILTER_DEFAULT_ACTION (tempfail unless configured); `shutdown`
// answers 421 and ends the session; `discard` accepts the message and queues nothing. The
// filters' connections are closed with the session.
import type { SMTPServerSession } from 'smtp-server';
import { MilterSession, type ClientInfo, type MessageVerdict, type MilterVerdict } from '../milter/index.js';
import type { ConnectCommand } from './connect-checks.js';
import type { InboundSession } from './inbound-session.js';
import type { MailCommand } from './mail-checks.js';
import { atConnect, replyFromMilter } from './policy-replies.js';
import type { RcptCommand } from './rcpt-checks.js';
import { NEXT, refuseBy, type StageServices, type Verdict } from './stages.js';

/** How mail.log and the metrics name a filter: `milter:<name>` in the characters a rule name may use. */
export function milterRule(filter: string): string {
  return `milter:${filter.replace(/[^A-Za-z0-9_.\-/:]/g, '_')}`;
}

/** The verdict of a stage as the SMTP stage's; a discard marks the transaction. */
export function fromMilter(v: MilterVerdict | MessageVerdict, session: InboundSession, at: { connect?: boolean; destination?: string } = {}): Verdict {
  switch (v.kind) {
    case 'continue':
    case 'quarantine': // only at the end of the message, where data-checks.ts reads it
      return NEXT;
    case 'discard':
      session.policy.tx.discard ??= `${milterRule(v.filter)} discard`;
      return NEXT;
    default: {
      let reply = replyFromMilter(v.reply);
      if (v.kind === 'shutdown') reply = { ...reply, code: 421, enhanced: reply.enhanced.startsWith('4') ? reply.enhanced : '4.7.0' };
      if (at.connect) reply = atConnect(reply);
      const note = v.byDefault ? `default action${v.detail ? `: ${v.detail}` : ''}` : undefined;
      return refuseBy(milterRule(v.filter), reply, { ...(at.destination !== undefined ? { destination: at.destination } : {}), ...(note ? { note } : {}) });
    }
  }
}

function clientInfo(smtp: SMTPServerSession, services: StageServices): ClientInfo {
  return {
    hostname: services.settings.hostName,
    daemonName: services.settings.service,
    daemonAddress: smtp.localAddress,
    daemonPort: smtp.localPort,
    version: 'tsubame',
    clientAddress: smtp.remoteAddress,
    clientPort: smtp.remotePort,
    // No reverse lookup is made (disableReverseLookup): filters see `[address]`, as Postfix's unknown client.
    clientName: null,
    clientPtr: null,
  };
}

/** Connect: the filters are connected, negotiated with and told of the client. */
export function milterConnect(cmd: ConnectCommand): Verdict | Promise<Verdict> {
  const { session, smtp, services } = cmd;
  const settings = services.policy.miltersFor(session.sourceChannel);
  if (!settings) return NEXT;
  const log = { warn: (obj: object, msg: string) => services.logger.warn({ ...obj, client: smtp.remoteAddress }, msg) };
  return MilterSession.open(settings, clientInfo(smtp, services), { log }).then((milter) => {
    // The client may have left while the filters were being connected to.
    if (session.policy.ended) milter.close();
    else session.policy.milter = milter;
    return fromMilter(milter.connectVerdict, session, { connect: true });
  });
}

function esmtpParams(args: Record<string, string | boolean> | false | undefined): string[] {
  return Object.entries(args || {}).map(([k, v]) => (v === true ? k : `${k}=${String(v)}`));
}

function tlsFacts(smtp: SMTPServerSession) {
  return smtp.secure && smtp.tlsOptions ? { version: smtp.tlsOptions.version ?? 'TLS', cipher: smtp.tlsOptions.name ?? 'unknown' } : null;
}

/** MAIL: the HELO name (when new to the filters), then the sender. */
export function milterMail(cmd: MailCommand): Verdict | Promise<Verdict> {
  const { session, smtp } = cmd;
  const milter = session.policy.milter;
  if (!milter) return NEXT;
  return (async () => {
    const helo = smtp.hostNameAppearsAs || '';
    if (session.policy.milterHelo !== helo) {
      session.policy.milterHelo = helo;
      const v = fromMilter(await milter.helo(helo, tlsFacts(smtp)), session);
      if (v.kind !== 'next') return v;
    }
    const user = typeof smtp.user === 'string' ? smtp.user : '';
    const auth = user ? { type: session.authMechanism ?? 'PLAIN', authen: user } : null;
    return fromMilter(await milter.mail(cmd.address.address, esmtpParams(cmd.address.args), { channel: session.sourceChannel, auth }), session);
  })();
}

/** RCPT: each recipient the other checks accepted. */
export function milterRcpt(cmd: RcptCommand): Verdict | Promise<Verdict> {
  const milter = cmd.session.policy.milter;
  if (!milter) return NEXT;
  const channel = cmd.route.channel.name;
  return milter.rcpt(cmd.address.address, esmtpParams(cmd.address.args), { channel }).then((v) => fromMilter(v, cmd.session, { destination: channel }));
}
