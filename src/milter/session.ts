// The milter client as the SMTP server drives it: one MilterSession per SMTP connection runs the
// connection through one or more filters in order (as Postfix's smtpd_milters) and gives a
// verdict per stage, and at the end of the message the verdict plus the filters' modifications.
// A later filter sees the message as the earlier ones changed it. The first refusal stops the
// stage; a filter that accepts drops out of the message (or the connection). No method throws:
// a filter that is down, slow or speaks garbage gives its default action as the verdict, and
// every socket is closed by close() (or as soon as its filter fails).
//
// Use (the SMTP server's side):
//   const m = await MilterSession.open(settings, client);   // connect + negotiate + SMFIC_CONNECT
//   m.connectVerdict                                         // refuse the connection unless 'continue'
//   await m.helo(name, tls)                                  // per HELO/EHLO
//   await m.mail(sender, params, { queueId, auth })          // per MAIL FROM
//   await m.rcpt(recipient, params, { channel })             // per RCPT TO (refused: true to report a refused one)
//   await m.data()                                           // at DATA
//   const { verdict, modifications } = await m.message({ headers, hidden: 1, body })
//   await m.abort()                                          // RSET, or a transaction that ends without message()
//   m.close()                                                // always, when the SMTP connection ends
//                                                            // (a call after it gets tempfail)
// Verdicts: 'continue' (go on; at end of message: accept, applying `modifications` with
// applyModifications()), 'reject' (5xx `reply`), 'tempfail' (4xx `reply`), 'shutdown' (421
// `reply`, then close the SMTP connection), 'discard' (accept and drop the message), and at the
// end of the message 'quarantine' (accept to the hold channel, applying `modifications`). `filter` names the filter that
// decided; `byDefault` says it was the default action (filter down, slow or broken: `detail`).
import net from 'node:net';
import type { HeaderField } from '../common/rfc5322-header.js';
import { defaultDecision, MilterFilter, type Decision, type FilterLog } from './filter.js';
import type { MacroFacts } from './macros.js';
import { bareAddress, editHeaders, milterHeader, replacedBody, visibleHeaders, type Modification } from './modifications.js';
import { SMFIA, type ConnectEvent, type MilterReply } from './protocol.js';
import type { MilterSettings } from './settings.js';

export type MilterVerdict =
  | { kind: 'continue' }
  | { kind: 'reject' | 'tempfail' | 'shutdown'; reply: MilterReply; filter: string; byDefault: boolean; detail: string | null }
  | { kind: 'discard'; filter: string; byDefault: false; detail: null };

export type MessageVerdict = MilterVerdict | { kind: 'quarantine'; reason: string; filter: string; byDefault: boolean; detail: string | null };

export interface MessageResult {
  verdict: MessageVerdict;
  /** The filters' requests, in order; empty unless the verdict is 'continue' or 'quarantine'. */
  modifications: Modification[];
}

/** The SMTP connection as filters learn of it (SMFIC_CONNECT and the connect macros). */
export interface ClientInfo {
  /** `j`: this MTA's host name. */
  hostname: string;
  /** `{daemon_name}`: the service name. */
  daemonName?: string;
  daemonAddress?: string;
  daemonPort?: number;
  /** `v`: the MTA's name and version. */
  version?: string;
  /** The client's IP address; null for a submission that did not come over TCP. */
  clientAddress: string | null;
  clientPort: number | null;
  /** The client's verified host name, or null when it has none. */
  clientName: string | null;
  /** Its reverse-DNS name, verified or not. */
  clientPtr?: string | null;
}

/** The message's content: its header section and body. */
export interface MessageContent {
  /** The header section as it will be stored, the MTA's own Received: line on top included. */
  headers: readonly HeaderField[];
  /** How many fields at the top are the MTA's own and not shown to filters (its Received: line: 1). */
  hidden?: number;
  /**
   * The body (after the empty line), CRLF lines. A Buffer, or a function that opens it (a stream
   * or any async iterable of bytes; strings count as latin1), called once for each filter that
   * reads the body.
   */
  body: Buffer | (() => AsyncIterable<Uint8Array | string>);
}

export interface SessionOptions {
  log?: FilterLog;
  /** Sees every byte exchanged with each filter (fixtures, debugging). */
  trace?: (filter: string, direction: 'mta' | 'filter', bytes: Buffer) => void;
}

const CONTINUE: MilterVerdict = { kind: 'continue' };
/** What a call after close() gets: nothing was filtered, so nothing may pass. */
const CLOSED: MilterVerdict = verdictOf(defaultDecision('tempfail', 'session closed') as Exclude<Decision, { kind: 'quarantine' }>, 'milter-client');

function verdictOf(d: Exclude<Decision, { kind: 'quarantine' }>, filter: string): MilterVerdict {
  return d.kind === 'discard' ? { ...d, filter } : { kind: d.kind, reply: d.reply, filter, byDefault: d.byDefault, detail: d.detail };
}

/** The connect event for `client` (Sendmail's form: `[address]` as the name of a client without one). */
export function connectEvent(client: ClientInfo): ConnectEvent {
  const address = client.clientAddress?.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1') ?? null;
  if (!address) return { hostname: client.clientName ?? 'localhost', family: SMFIA.UNKNOWN, port: 0, address: '' };
  const family = net.isIPv6(address) ? SMFIA.INET6 : SMFIA.INET;
  return { hostname: client.clientName ?? `[${address}]`, family, port: client.clientPort ?? 0, address };
}

export class MilterSession {
  /** The verdict on the connection itself (SMFIC_CONNECT). */
  connectVerdict: MilterVerdict = CONTINUE;
  private facts: MacroFacts;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  private heloSeen = false;
  private inTransaction = false;
  /** A filter discarded the message being received. */
  private discarded: MilterVerdict | null = null;
  /** A filter (or a default action) asked for the message to be held. */
  private held: { reason: string; filter: string; byDefault: boolean; detail: string | null } | null = null;

  private constructor(
    private readonly filters: MilterFilter[],
    client: ClientInfo,
    private readonly log: FilterLog | undefined,
  ) {
    this.facts = {
      hostname: client.hostname,
      daemonName: client.daemonName,
      daemonAddress: client.daemonAddress,
      daemonPort: client.daemonPort,
      version: client.version,
      clientAddress: client.clientAddress,
      clientPort: client.clientPort,
      clientName: client.clientName,
      clientPtr: client.clientPtr,
    };
  }

  /** Connects to every filter (at once), negotiates, and reports the connection to them in order. */
  static async open(settings: MilterSettings, client: ClientInfo, opts: SessionOptions = {}): Promise<MilterSession> {
    const filters = settings.filters.map((spec) => new MilterFilter(spec, settings, opts.log));
    const session = new MilterSession(filters, client, opts.log);
    try {
      await Promise.all(filters.map((f) => f.negotiate(opts.trace ? (dir, bytes) => opts.trace!(f.name, dir, bytes) : undefined)));
      const event = connectEvent(client);
      session.connectVerdict = await session.stage((f) => f.connect(event, session.facts));
    } catch (err) {
      session.connectVerdict = session.internalError(err);
    }
    return session;
  }

  /** Some filter still takes part (none has failed or finished with the connection for good). */
  get active(): boolean {
    return !this.closed && this.filters.some((f) => f.active);
  }

  helo(name: string, tls?: MacroFacts['tls']): Promise<MilterVerdict> {
    return this.run(async () => {
      if (this.heloSeen || this.inTransaction) await this.abortAll();
      this.heloSeen = true;
      this.facts = { ...this.facts, tls: tls ?? null };
      return this.stage((f) => f.helo(name, this.facts));
    });
  }

  /**
   * MAIL FROM: `sender` without angle brackets ('' for the null sender), `params` the ESMTP
   * parameters as written (`SIZE=1000`). `channel` is the source channel (`{mail_mailer}`).
   */
  mail(
    sender: string,
    params: readonly string[] = [],
    more: { queueId?: string; auth?: MacroFacts['auth']; channel?: string; host?: string } = {},
  ): Promise<MilterVerdict> {
    return this.run(async () => {
      if (this.inTransaction) await this.abortAll();
      this.inTransaction = true;
      this.discarded = null;
      this.held = null;
      const bare = bareAddress(sender);
      this.facts = {
        ...this.facts,
        queueId: more.queueId,
        auth: more.auth ?? null,
        mailAddr: bare,
        mailHost: more.host,
        mailMailer: more.channel,
        rcptAddr: undefined,
        rcptHost: undefined,
        rcptMailer: undefined,
      };
      return this.stage((f) => f.mail([`<${bare}>`, ...params], this.facts));
    });
  }

  /**
   * RCPT TO: `recipient` without angle brackets; `channel` (`{rcpt_mailer}`) the destination
   * channel. With `refused: true` the recipient the MTA refused is reported to the filters that
   * asked for such (SMFIP_RCPT_REJ); the verdict is then always 'continue'.
   */
  rcpt(recipient: string, params: readonly string[] = [], more: { channel?: string; host?: string; refused?: boolean } = {}): Promise<MilterVerdict> {
    return this.run(async () => {
      const bare = bareAddress(recipient);
      const refused = more.refused ?? false;
      const facts: MacroFacts = { ...this.facts, rcptAddr: bare, rcptHost: more.host, rcptMailer: refused ? 'error' : more.channel };
      const argv = [`<${bare}>`, ...params];
      if (!refused) return this.stage((f) => f.rcpt(argv, facts, false));
      // Every filter that asked hears of it; what they answer changes nothing.
      for (const f of this.filters) if (!this.closed) await f.rcpt(argv, facts, true);
      return CONTINUE;
    });
  }

  /** DATA (before the 354). `queueId` sets `i` if it was not known at MAIL. */
  data(queueId?: string): Promise<MilterVerdict> {
    return this.run(async () => {
      if (queueId) this.facts = { ...this.facts, queueId };
      if (this.discarded) return this.discarded;
      return this.stage((f) => f.data(this.facts));
    });
  }

  /**
   * The message (headers, end of headers, body in chunks of at most 64 KiB, end of message) through
   * each filter in turn, each seeing the earlier filters' changes; the verdict and the requests.
   * Ends the transaction.
   */
  message(content: MessageContent): Promise<MessageResult> {
    return this.run(
      async () => {
        try {
          return await this.inspect(content);
        } finally {
          await this.abortAll();
        }
      },
      (verdict) => ({ verdict, modifications: [] }),
    );
  }

  /** The transaction ended without message(): RSET, a refused MAIL or DATA, the client gone. Nothing to do outside a transaction. */
  abort(): Promise<void> {
    return this.run(
      () => (this.inTransaction ? this.abortAll() : Promise.resolve()),
      () => undefined,
    );
  }

  /** Quits and closes every filter connection now, even in the middle of another call. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const f of this.filters) f.close();
  }

  private async inspect(content: MessageContent): Promise<MessageResult> {
    if (this.closed) return { verdict: CLOSED, modifications: [] };
    if (this.discarded) return { verdict: this.discarded, modifications: [] };
    const openBody = Buffer.isBuffer(content.body) ? onceBody(content.body) : content.body;
    let headers = [...content.headers];
    const hidden = new Set(headers.slice(0, content.hidden ?? 0));
    let body: () => AsyncIterable<Uint8Array | string> = openBody;
    const modifications: Modification[] = [];
    for (const f of this.filters) {
      // Each filter gets the value with its leading space; the filter strips it unless asked not to.
      const result = await f.content({ headers: visibleHeaders(headers, hidden).map((h) => milterHeader(h, true)), body }, this.facts);
      if (result.quarantine) this.held ??= { reason: result.quarantine, filter: f.name, byDefault: false, detail: null };
      const d = result.decision;
      if (d?.kind === 'quarantine') {
        this.held ??= { reason: d.reason, filter: f.name, byDefault: d.byDefault, detail: d.detail };
      } else if (d) {
        return { verdict: verdictOf(d, f.name), modifications: [] };
      }
      modifications.push(...result.modifications);
      headers = editHeaders(headers, result.modifications, hidden);
      const replaced = replacedBody(result.modifications);
      if (replaced) body = onceBody(replaced);
    }
    if (this.held) return { verdict: { kind: 'quarantine', ...this.held }, modifications };
    return { verdict: CONTINUE, modifications };
  }

  /** One event through the filters in order: the first refusal is the verdict. */
  private async stage(event: (f: MilterFilter) => Promise<Decision | null>): Promise<MilterVerdict> {
    if (this.closed) return CLOSED;
    for (const f of this.filters) {
      if (this.closed) return CLOSED;
      const d = await event(f);
      if (!d) continue;
      if (d.kind === 'quarantine') {
        this.held ??= { reason: d.reason, filter: f.name, byDefault: d.byDefault, detail: d.detail };
        continue;
      }
      const verdict = verdictOf(d, f.name);
      if (d.kind === 'discard') this.discarded = verdict;
      return verdict;
    }
    return CONTINUE;
  }

  private async abortAll(): Promise<void> {
    this.inTransaction = false;
    this.discarded = null;
    this.held = null;
    for (const f of this.filters) await f.abort();
  }

  /**
   * Calls run one at a time, in the order made. An exception (a bug of ours, not a filter's
   * doing, which filter.ts turns into verdicts) becomes a temporary failure, logged.
   */
  private run<T>(fn: () => Promise<T>, onError: (verdict: MilterVerdict) => T = (v) => v as T): Promise<T> {
    const p = this.chain.then(fn);
    this.chain = p.catch(() => undefined);
    return p.catch((err: unknown) => onError(this.internalError(err)));
  }

  private internalError(err: unknown): MilterVerdict {
    this.log?.warn({ err }, 'milter: internal error');
    const d = defaultDecision('tempfail', `internal error: ${(err as Error)?.message ?? String(err)}`)!;
    return verdictOf(d as Exclude<Decision, { kind: 'quarantine' }>, 'milter-client');
  }
}

/** A body held in memory, as an iterable opened once per filter. */
function onceBody(body: Buffer): () => AsyncIterable<Buffer> {
  return async function* () {
    yield body;
  };
}
