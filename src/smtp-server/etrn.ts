// ETRN (RFC 1985) in the SMTP server: the command's checks (sequence, syntax, ETRN_ALLOW, and
// ETRN_CHANNEL_ALLOW for `#channel`), the flush request to the job controller (the same
// {op:'flush'} as `imsimta flush`, marked as ETRN with the client's address), and the reply for
// each outcome. The job controller rate-limits per client (ETRN_RATE_LIMIT), flushes fast-flush
// destinations only (others: Postfix's `459 4.3.0 <domain>: service unavailable`) and answers with
// the RFC 1985 code; this side only words it for the client.
// The verb reaches etrnResponder through TsubameConnection.handler_ETRN (connection.ts).
import type { Cidr } from '../config/types.js';
import { ipInCidrs } from '../common/cidr.js';
import type { Logger } from '../common/logger.js';
import { askJobController } from '../job-controller/client.js';
import type { FlushReply } from '../job-controller/protocol.js';
import { isValidDomain } from '../rewrite/index.js';
import { oneLine, type SmtpReply } from './replies.js';

/** What the connection knows when ETRN arrives. */
export interface EtrnRequest {
  /** The whole command line, e.g. `ETRN @example.com`. */
  line: string;
  remoteAddress: string;
  /** HELO/EHLO was given. */
  greeted: boolean;
  /** MAIL FROM was given and the transaction is not over. */
  inTransaction: boolean;
}

export type EtrnResponder = (request: EtrnRequest) => Promise<SmtpReply>;

/** Asks the job controller to flush for `client`; null when it is not running. */
export type FlushRequester = (target: string, client: string) => Promise<FlushReply | null>;

const SYNTAX = 'Syntax: ETRN domain | ETRN @domain | ETRN #queue';

/** The argument of an ETRN line: the target for the job controller, or the 501 to give. */
export function parseEtrnArgument(line: string): { ok: true; target: string } | { ok: false; reply: SmtpReply } {
  const words = line.trim().split(/\s+/).slice(1);
  const bad = (why: string): { ok: false; reply: SmtpReply } => ({ ok: false, reply: { code: 501, enhanced: '5.5.4', text: `${why}. ${SYNTAX}` } });
  if (words.length === 0) return bad('Argument required');
  if (words.length > 1) return bad('Too many arguments');
  const arg = words[0]!;
  if (arg.length > 255) return bad('Argument too long');
  if (arg.startsWith('#')) {
    return /^#[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}$/.test(arg) ? { ok: true, target: arg } : bad('Bad queue name');
  }
  const domain = (arg.startsWith('@') ? arg.slice(1) : arg).replace(/\.$/, '');
  if (!domain || !isValidDomain(domain)) return bad('Bad domain name');
  return { ok: true, target: (arg.startsWith('@') ? '@' : '') + domain.toLowerCase() };
}

/** The client's reply for the job controller's answer (null: it is not running). */
export function etrnReply(target: string, answer: FlushReply | null): SmtpReply {
  const node = oneLine(target);
  if (!answer) return unableToQueue(node);
  switch (answer.code) {
    case 250:
      return { code: 250, enhanced: '2.0.0', text: `Queuing for node ${node} started` };
    case 251:
      return { code: 251, enhanced: '2.0.0', text: `OK, no messages waiting for node ${node}` };
    case 252:
      return { code: 252, enhanced: '2.0.0', text: `OK, pending messages for node ${node} started` };
    case 253:
      return { code: 253, enhanced: '2.0.0', text: `OK, ${Math.max(0, Math.floor(answer.count))} pending messages for node ${node} started` };
    case 501:
      return { code: 501, enhanced: '5.5.4', text: `Bad node name ${node}. ${SYNTAX}` };
    case 459:
      // Postfix's words for a destination outside the fast-flush list.
      return { code: 459, enhanced: '4.3.0', text: `<${node}>: ${oneLine(answer.reason || 'service unavailable')}` };
    case 458:
      return answer.reason ? { code: 458, enhanced: '4.7.0', text: `Unable to queue messages for node ${node}: ${oneLine(answer.reason)}` } : unableToQueue(node);
    default:
      return unableToQueue(node);
  }
}

function unableToQueue(node: string): SmtpReply {
  return { code: 458, enhanced: '4.3.0', text: `Unable to queue messages for node ${node}` };
}

function notAllowed(node: string, why: string): SmtpReply {
  return { code: 459, enhanced: '4.7.1', text: `Node ${node} not allowed: ${oneLine(why)}` };
}

export interface EtrnOptions {
  /** ETRN_ALLOW: clients that may use ETRN; empty = anyone. */
  allow: readonly Cidr[];
  /** ETRN_CHANNEL_ALLOW: clients that may use `ETRN #channel` (a whole channel); empty = no one. */
  channelAllow: readonly Cidr[];
  requestFlush: FlushRequester;
  logger?: Logger;
}

/** Answers ETRN commands: 503 out of sequence, 501 bad argument, 459 not allowed, else the job controller's outcome (458 when it cannot be asked). */
export function etrnResponder(opts: EtrnOptions): EtrnResponder {
  return async (req) => {
    if (!req.greeted) return { code: 503, enhanced: '5.5.1', text: 'Error: send HELO/EHLO first' };
    if (req.inTransaction) return { code: 503, enhanced: '5.5.1', text: 'Error: MAIL transaction in progress' };
    const parsed = parseEtrnArgument(req.line);
    if (!parsed.ok) return parsed.reply;
    const target = parsed.target;
    if (opts.allow.length > 0 && !ipInCidrs(req.remoteAddress, opts.allow)) {
      opts.logger?.info({ client: req.remoteAddress, target }, 'ETRN refused: client not in ETRN_ALLOW');
      return notAllowed(target, 'client address not in ETRN_ALLOW');
    }
    if (target.startsWith('#') && !ipInCidrs(req.remoteAddress, opts.channelAllow)) {
      opts.logger?.info({ client: req.remoteAddress, target }, 'ETRN #channel refused: client not in ETRN_CHANNEL_ALLOW');
      return notAllowed(target, 'ETRN #channel is not allowed from this client');
    }
    let answer: FlushReply | null;
    try {
      answer = await opts.requestFlush(target, req.remoteAddress);
    } catch (err) {
      opts.logger?.warn({ client: req.remoteAddress, target, err: (err as Error).message }, 'ETRN: the job controller did not answer');
      answer = null;
    }
    const reply = etrnReply(target, answer);
    opts.logger?.info({ client: req.remoteAddress, target, code: reply.code, count: answer?.count ?? null }, 'ETRN');
    return reply;
  };
}

/** Flush requests over the job controller's socket (answered within its ETRN time, or 458: protocol.ts). */
export function jobControllerFlush(socketPath: string): FlushRequester {
  return async (target, client) => {
    const reply = await askJobController(socketPath, { op: 'flush', target, origin: 'etrn', client });
    // A refusal has no code: not a flush reply.
    return reply && 'code' in reply && Number.isInteger(reply.code) ? reply : null;
  };
}
