// One milter's protocol state for one SMTP connection, as Postfix's milter8.c keeps it:
// negotiation, the events with the macros and skips the filter asked for, its answers, and its
// end-of-message requests. A filter that fails (down, slow, garbage) is closed and from then on
// answers every event with the configured default action (sticky, as in Postfix); a filter that
// rejected the connection answers every later event with that rejection. Nothing here throws.
import { FilterConnection, MilterIoError, type WireTrace } from './connection.js';
import { evaluateMacros, type MacroFacts } from './macros.js';
import {
  decodeAnswer,
  decodeOptneg,
  describeCommand,
  encodeBare,
  encodeBody,
  encodeConnect,
  encodeEnvelope,
  encodeHeader,
  encodeHelo,
  encodeMacros,
  encodeOptneg,
  eventsOutsideVersion,
  MAX_BODY_CHUNK,
  MILTER_VERSION,
  MilterProtocolError,
  MTA_ACTIONS,
  MTA_PROTOCOL,
  SMFIC,
  SMFIP,
  type ConnectEvent,
  type FilterAnswer,
  type MacroStage,
  type MilterReply,
} from './protocol.js';
import { FIELD_NAME, headerValueFromFilter, type MilterHeader, type Modification } from './modifications.js';
import type { DefaultAction, FilterSpec, FilterTimeouts, MilterSettings } from './settings.js';

/** What one filter decided about one event; null = go on. */
export type Decision =
  | { kind: 'reject' | 'tempfail' | 'shutdown'; reply: MilterReply; byDefault: boolean; detail: string | null }
  | { kind: 'discard'; byDefault: false; detail: null }
  | { kind: 'quarantine'; reason: string; byDefault: boolean; detail: string | null };

type State =
  /** Negotiated, connect event not yet sent. */
  | 'ready'
  /** Between messages or in a transaction's envelope. */
  | 'envelope'
  /** Sending a message's content. */
  | 'message'
  /** The filter accepted the connection: no more events. */
  | 'accept-connection'
  /** The filter rejected the connection: its rejection answers every event. */
  | 'reject-connection'
  /** The filter accepted (or discarded) this message: no more events until the next one. */
  | 'accept-message'
  /** Failed: the default action answers every event. */
  | 'error';

/** How many timeouts' worth of SMFIR_PROGRESS a filter may send before it counts as stuck. */
const MAX_PROGRESS_FACTOR = 10;

/** Postfix's replies for the filter's bare answers and for default actions. */
const REPLIES = {
  reject: { code: 550, enhanced: '5.7.1', lines: ['Command rejected'] },
  tempfail: { code: 451, enhanced: '4.7.1', lines: ['Service unavailable - try again later'] },
  shutdown: { code: 421, enhanced: '4.7.0', lines: ['Service unavailable - closing connection'] },
  defaultReject: { code: 550, enhanced: '5.5.0', lines: ['Service unavailable'] },
  defaultShutdown: { code: 421, enhanced: '4.7.1', lines: ['Service unavailable - try again later'] },
} satisfies Record<string, MilterReply>;

/** The decision a default action stands for (null for accept). */
export function defaultDecision(action: DefaultAction, detail: string): Decision | null {
  switch (action) {
    case 'accept':
      return null;
    case 'reject':
      return { kind: 'reject', reply: REPLIES.defaultReject, byDefault: true, detail };
    case 'shutdown':
      return { kind: 'shutdown', reply: REPLIES.defaultShutdown, byDefault: true, detail };
    case 'quarantine':
      return { kind: 'quarantine', reason: 'default_action', byDefault: true, detail };
    default:
      return { kind: 'tempfail', reply: REPLIES.tempfail, byDefault: true, detail };
  }
}

/** A reply set by the filter: 421 closes the connection, other 4xx are temporary, 5xx permanent. */
function replyDecision(reply: MilterReply): Decision {
  const kind = reply.code === 421 ? 'shutdown' : reply.code >= 500 ? 'reject' : 'tempfail';
  return { kind, reply, byDefault: false, detail: null };
}

/** A message's content as filters get it. */
export interface FilterContent {
  headers: readonly MilterHeader[];
  /** The body after the header section, CRLF lines; opened anew for each filter that wants it. */
  body: () => AsyncIterable<Uint8Array | string>;
}

export interface ContentResult {
  decision: Decision | null;
  modifications: Modification[];
  /** Set when the filter asked for quarantine (SMFIR_QUARANTINE) without refusing the message. */
  quarantine: string | null;
}

interface EventOptions {
  /** The SMFIP_NO* flag that lets the filter decline this event (0: always sent). */
  noSend: number;
  /** The SMFIP_NR_* flag by which the filter said it does not answer this event. */
  noReply: number;
  macros: MacroStage | null;
  timeoutMs: number;
  /** Collects end-of-message requests (SMFIC_BODYEOB only). */
  eom?: { mods: Modification[]; bodyChunks: Buffer[]; bodyBytes: number };
}

export interface FilterLog {
  warn(obj: object, msg: string): void;
}

export class MilterFilter {
  private conn: FilterConnection | null = null;
  private state: State = 'ready';
  /** The answer to every event once the filter failed or rejected the connection. */
  private sticky: Decision | null = null;
  private version = 0;
  private protocol = 0;
  /** Events not sent because the filter's protocol version lacks them. */
  private outsideVersion = 0;
  private macroLists: Record<MacroStage, readonly string[]>;
  /** After SMFIR_SKIP: events of this command are not sent until another command is. */
  private skipCommand: string | null = null;
  private quarantine: string | null = null;
  /** close() was called: a failure of the call in flight is ours, not the filter's. */
  private closing = false;
  private readonly timeouts: FilterTimeouts;
  private readonly defaultAction: DefaultAction;

  constructor(
    readonly spec: FilterSpec,
    private readonly settings: MilterSettings,
    private readonly log: FilterLog | undefined,
  ) {
    this.timeouts = { ...settings.timeouts, ...spec.timeouts };
    this.defaultAction = spec.defaultAction ?? settings.defaultAction;
    this.macroLists = { ...settings.macros };
  }

  get name(): string {
    return this.spec.name;
  }

  /** What the filter answered in the negotiation (version 0 before it, or after it failed). */
  get negotiated(): { version: number; protocol: number; macroLists: Readonly<Record<MacroStage, readonly string[]>> } {
    return { version: this.version, protocol: this.protocol, macroLists: this.macroLists };
  }

  /** The filter still wants events for this connection. */
  get active(): boolean {
    return this.state === 'envelope' || this.state === 'ready' || this.state === 'message' || this.state === 'accept-message';
  }

  /** Connects and negotiates (SMFIC_OPTNEG). On failure the filter is in its default action. */
  async negotiate(trace?: WireTrace): Promise<void> {
    try {
      this.conn = await FilterConnection.open(this.spec.address, {
        timeoutMs: this.timeouts.connectMs,
        maxPacketBytes: this.settings.maxPacketBytes,
        trace,
      });
      await this.conn.write(encodeOptneg(MILTER_VERSION, MTA_ACTIONS, MTA_PROTOCOL), this.timeouts.commandMs);
      const answer = decodeOptneg(await this.conn.read(this.timeouts.commandMs));
      if (answer.version > MILTER_VERSION || answer.version < 2) throw new MilterProtocolError(`filter speaks protocol version ${answer.version}, not 2 to 6`);
      if ((answer.actions & MTA_ACTIONS) !== answer.actions) {
        throw new MilterProtocolError(`filter asks for actions 0x${answer.actions.toString(16)} beyond 0x${MTA_ACTIONS.toString(16)}`);
      }
      this.version = answer.version;
      this.protocol = answer.protocol;
      this.outsideVersion = eventsOutsideVersion(answer.version);
      for (const [stage, names] of Object.entries(answer.macroLists)) this.macroLists[stage as MacroStage] = names;
    } catch (err) {
      this.failed(err, 'negotiation');
    }
  }

  /** SMFIC_CONNECT. */
  async connect(e: ConnectEvent, facts: MacroFacts): Promise<Decision | null> {
    if (this.state !== 'ready') return this.sticky;
    this.state = 'envelope';
    return this.event(SMFIC.CONNECT, encodeConnect(e), facts, { noSend: SMFIP.NOCONNECT, noReply: SMFIP.NR_CONN, macros: 'connect', timeoutMs: this.timeouts.commandMs });
  }

  /** SMFIC_HELO. */
  async helo(name: string, facts: MacroFacts): Promise<Decision | null> {
    if (this.state !== 'envelope' && this.state !== 'accept-message') return this.sticky;
    return this.event(SMFIC.HELO, encodeHelo(name), facts, { noSend: SMFIP.NOHELO, noReply: SMFIP.NR_HELO, macros: 'helo', timeoutMs: this.timeouts.commandMs });
  }

  /** SMFIC_MAIL: `argv` is `<sender>` and the ESMTP parameters. */
  async mail(argv: readonly string[], facts: MacroFacts): Promise<Decision | null> {
    if (this.state !== 'envelope') return this.sticky;
    return this.event(SMFIC.MAIL, encodeEnvelope(SMFIC.MAIL, argv), facts, { noSend: SMFIP.NOMAIL, noReply: SMFIP.NR_MAIL, macros: 'mail', timeoutMs: this.timeouts.commandMs });
  }

  /** SMFIC_RCPT; a recipient the MTA refused is reported only to a filter that asked (SMFIP_RCPT_REJ). */
  async rcpt(argv: readonly string[], facts: MacroFacts, refused: boolean): Promise<Decision | null> {
    if (this.state !== 'envelope') return this.sticky;
    if (refused && !(this.protocol & SMFIP.RCPT_REJ)) return this.sticky;
    return this.event(SMFIC.RCPT, encodeEnvelope(SMFIC.RCPT, argv), facts, { noSend: SMFIP.NORCPT, noReply: SMFIP.NR_RCPT, macros: 'rcpt', timeoutMs: this.timeouts.commandMs });
  }

  /** SMFIC_DATA. */
  async data(facts: MacroFacts): Promise<Decision | null> {
    if (this.state !== 'envelope') return this.sticky;
    return this.event(SMFIC.DATA, encodeBare(SMFIC.DATA), facts, { noSend: SMFIP.NODATA, noReply: SMFIP.NR_DATA, macros: 'data', timeoutMs: this.timeouts.commandMs });
  }

  /** Headers, end of headers, body chunks and end of message; the filter's verdict and requests. */
  async content(content: FilterContent, facts: MacroFacts): Promise<ContentResult> {
    const result: ContentResult = { decision: null, modifications: [], quarantine: null };
    if (this.state !== 'envelope') {
      result.decision = this.state === 'accept-message' ? null : this.sticky;
      if (this.state === 'accept-message') this.state = 'envelope';
      return result;
    }
    this.state = 'message';
    const timeoutMs = this.timeouts.contentMs;
    const done = () => this.state !== 'message' || result.decision !== null;
    const leadingSpace = (this.protocol & SMFIP.HDR_LEADSPC) !== 0;
    for (const h of content.headers) {
      result.decision = await this.event(
        SMFIC.HEADER,
        encodeHeader(h.name, leadingSpace ? h.value : h.value.replace(/^ /, '')),
        facts,
        { noSend: SMFIP.NOHDRS, noReply: SMFIP.NR_HDR, macros: 'eoh', timeoutMs },
      );
      if (done()) break;
    }
    if (!done()) result.decision = await this.event(SMFIC.EOH, encodeBare(SMFIC.EOH), facts, { noSend: SMFIP.NOEOH, noReply: SMFIP.NR_EOH, macros: 'eoh', timeoutMs });
    if (!done() && !(this.protocol & SMFIP.NOBODY)) result.decision = await this.sendBody(content, facts, timeoutMs, done);
    if (!done()) {
      const eom = { mods: [] as Modification[], bodyChunks: [] as Buffer[], bodyBytes: 0 };
      result.decision = await this.event(SMFIC.BODYEOB, encodeBare(SMFIC.BODYEOB), facts, { noSend: 0, noReply: 0, macros: 'eom', timeoutMs, eom });
      result.modifications = eom.mods.map((m) => (m.type === 'replace-body' ? { ...m, body: Buffer.concat(eom.bodyChunks) } : m));
    }
    if (this.state === 'message' || this.state === 'accept-message') this.state = 'envelope';
    result.quarantine = this.quarantine;
    this.quarantine = null;
    // A refused or discarded message keeps none of the filter's requests.
    if (result.decision) result.modifications = [];
    return result;
  }

  /** SMFIC_ABORT: the transaction ended without a message (RSET, refusal, client gone). */
  async abort(): Promise<void> {
    this.quarantine = null;
    this.skipCommand = null;
    if (this.state !== 'envelope' && this.state !== 'message' && this.state !== 'accept-message') return;
    this.state = 'envelope';
    try {
      await this.conn!.write(encodeBare(SMFIC.ABORT), this.timeouts.commandMs);
    } catch (err) {
      this.failed(err, 'abort');
    }
  }

  /** SMFIC_QUIT and close; the socket is gone after this whatever the state. */
  close(): void {
    this.closing = true;
    const polite = this.state === 'envelope' || this.state === 'message' || this.state === 'accept-message';
    this.conn?.close(polite ? encodeBare(SMFIC.QUIT) : undefined);
    this.conn = null;
    if (this.state !== 'error') this.state = 'accept-connection';
  }

  private async sendBody(content: FilterContent, facts: MacroFacts, timeoutMs: number, done: () => boolean): Promise<Decision | null> {
    const opts: EventOptions = { noSend: SMFIP.NOBODY, noReply: SMFIP.NR_BODY, macros: 'eom', timeoutMs };
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let decision: Decision | null = null;
    const sendChunk = async (chunk: Buffer) => {
      decision = await this.event(SMFIC.BODY, encodeBody(chunk), facts, opts);
      // A verdict ends the message; SMFIR_SKIP ends the body (on to the end of the message).
      return decision === null && !done() && this.skipCommand !== SMFIC.BODY;
    };
    try {
      for await (const part of content.body()) {
        let bytes = typeof part === 'string' ? Buffer.from(part, 'latin1') : Buffer.from(part.buffer, part.byteOffset, part.byteLength);
        while (bytes.length > 0) {
          const take = Math.min(bytes.length, MAX_BODY_CHUNK - pendingBytes);
          pending.push(bytes.subarray(0, take));
          pendingBytes += take;
          bytes = bytes.subarray(take);
          if (pendingBytes === MAX_BODY_CHUNK) {
            const chunk = Buffer.concat(pending);
            pending = [];
            pendingBytes = 0;
            if (!(await sendChunk(chunk))) return decision;
          }
        }
      }
    } catch (err) {
      // The caller's body stream failed: not the filter's doing, so it stays usable for the
      // next message; this one is abandoned.
      const detail = `reading the message body: ${(err as Error).message}`;
      await this.abort();
      return { kind: 'tempfail', reply: REPLIES.tempfail, byDefault: true, detail };
    }
    if (pendingBytes > 0) await sendChunk(Buffer.concat(pending));
    if (this.skipCommand === SMFIC.BODY) this.skipCommand = null;
    return decision;
  }

  /** Sends one event (after its macros) and reads the answer(s); Postfix's milter8_event(). */
  private async event(command: string, packet: Buffer, facts: MacroFacts, opts: EventOptions): Promise<Decision | null> {
    if (this.state === 'error' || !this.conn) return this.sticky;
    if (opts.noSend & this.outsideVersion) return this.sticky;
    if (this.skipCommand !== null) {
      if (this.skipCommand === command) return this.sticky;
      this.skipCommand = null;
    }
    try {
      const out: Buffer[] = [];
      const macros = opts.macros ? evaluateMacros(this.macroLists[opts.macros], facts) : [];
      if (macros.length) out.push(encodeMacros(command, macros));
      const skipEvent = (opts.noSend & this.protocol) !== 0;
      if (!skipEvent) out.push(packet);
      if (out.length) await this.conn.write(out.length === 1 ? out[0]! : Buffer.concat(out), opts.timeoutMs);
      if (skipEvent || (opts.noReply & this.protocol) !== 0) return this.sticky;
      return await this.answers(command, opts);
    } catch (err) {
      return this.failed(err, `event ${describeCommand(command)}`);
    }
  }

  private async answers(command: string, opts: EventOptions): Promise<Decision | null> {
    const connectionStage = command === SMFIC.CONNECT || command === SMFIC.HELO;
    // A connection-level refusal stays: every later event gets it, and the filter is closed.
    const refuseConnection = (d: Decision) => {
      this.conn?.close();
      this.conn = null;
      this.state = 'reject-connection';
      this.sticky = d;
      return d;
    };
    // SMFIR_PROGRESS restarts the wait, but not for ever.
    const giveUpAt = Date.now() + opts.timeoutMs * MAX_PROGRESS_FACTOR;
    for (;;) {
      const left = giveUpAt - Date.now();
      if (left <= 0) throw new MilterIoError(`still in progress after ${opts.timeoutMs * MAX_PROGRESS_FACTOR} ms`);
      const answer = decodeAnswer(await this.conn!.read(Math.min(opts.timeoutMs, left)));
      switch (answer.type) {
        case 'progress':
          continue;
        case 'continue':
          return this.sticky;
        case 'accept':
          if (connectionStage) {
            this.conn?.close();
            this.conn = null;
            this.state = 'accept-connection';
          } else {
            this.state = 'accept-message';
          }
          return this.sticky;
        case 'discard':
          if (connectionStage) {
            this.log?.warn({ milter: this.name }, 'milter: DISCARD is not allowed for connect or HELO; ignored');
            return this.sticky;
          }
          this.state = 'accept-message';
          return { kind: 'discard', byDefault: false, detail: null };
        case 'reject': {
          const d: Decision = { kind: 'reject', reply: REPLIES.reject, byDefault: false, detail: null };
          return connectionStage ? refuseConnection(d) : d;
        }
        case 'tempfail': {
          const d: Decision = { kind: 'tempfail', reply: REPLIES.tempfail, byDefault: false, detail: null };
          return connectionStage ? refuseConnection(d) : d;
        }
        case 'shutdown':
          return refuseConnection({ kind: 'shutdown', reply: REPLIES.shutdown, byDefault: false, detail: null });
        case 'replycode': {
          const d = replyDecision(answer.reply);
          return connectionStage || d.kind === 'shutdown' ? refuseConnection(d) : d;
        }
        case 'quarantine':
          // Not a verdict: the final answer still follows.
          this.quarantine = answer.reason || 'quarantined by milter';
          continue;
        case 'skip':
          this.skipCommand = command;
          return this.sticky;
        default:
          if (!opts.eom) throw new MilterProtocolError(`unexpected answer '${answer.type}' to event ${describeCommand(command)}`);
          this.request(answer, opts.eom);
          continue;
      }
    }
  }

  /** One end-of-message request, checked and turned into a Modification. */
  private request(answer: FilterAnswer, eom: NonNullable<EventOptions['eom']>): void {
    if (eom.mods.length >= this.settings.maxModifications) throw new MilterProtocolError(`more than ${this.settings.maxModifications} modification requests`);
    const leadingSpace = (this.protocol & SMFIP.HDR_LEADSPC) !== 0;
    const filter = this.name;
    const checkName = (name: string) => {
      if (!FIELD_NAME.test(name)) throw new MilterProtocolError(`bad header name ${JSON.stringify(name.slice(0, 80))}`);
    };
    switch (answer.type) {
      case 'addheader':
        checkName(answer.name);
        eom.mods.push({ filter, type: 'add-header', name: answer.name, value: headerValueFromFilter(answer.value, leadingSpace) });
        return;
      case 'insheader':
        checkName(answer.name);
        eom.mods.push({ filter, type: 'insert-header', index: answer.index, name: answer.name, value: headerValueFromFilter(answer.value, leadingSpace) });
        return;
      case 'chgheader':
        checkName(answer.name);
        if (answer.index > 0x7fffffff) throw new MilterProtocolError(`bad header index ${answer.index}`);
        eom.mods.push(
          answer.value === ''
            ? { filter, type: 'delete-header', name: answer.name, occurrence: answer.index }
            : { filter, type: 'change-header', name: answer.name, occurrence: answer.index, value: headerValueFromFilter(answer.value, leadingSpace) },
        );
        return;
      case 'addrcpt':
        eom.mods.push({ filter, type: 'add-recipient', address: answer.address, args: answer.args });
        return;
      case 'delrcpt':
        eom.mods.push({ filter, type: 'delete-recipient', address: answer.address });
        return;
      case 'chgfrom':
        eom.mods.push({ filter, type: 'change-sender', address: answer.address, args: answer.args });
        return;
      case 'replbody': {
        eom.bodyBytes += answer.chunk.length;
        if (eom.bodyBytes > this.settings.maxReplacedBodyBytes) throw new MilterProtocolError(`replacement body larger than ${this.settings.maxReplacedBodyBytes} bytes`);
        // All chunks make one replacement, at the place of the first (filled in by content()).
        if (eom.bodyChunks.length === 0) eom.mods.push({ filter, type: 'replace-body', body: Buffer.alloc(0) });
        eom.bodyChunks.push(answer.chunk);
        return;
      }
      default:
        throw new MilterProtocolError(`unexpected answer '${answer.type}'`);
    }
  }

  /** The filter is unusable: close it; the default action answers this and every later event. */
  private failed(err: unknown, during: string): Decision | null {
    const detail = `${during}: ${(err as Error).message}`;
    if (!(err instanceof MilterIoError) && !(err instanceof MilterProtocolError)) {
      this.log?.warn({ milter: this.name, err }, 'milter: unexpected error');
    }
    if (!this.closing) this.log?.warn({ milter: this.name, detail, action: this.defaultAction }, 'milter: filter failed, using its default action');
    this.conn?.close();
    this.conn = null;
    this.state = 'error';
    this.sticky = defaultDecision(this.defaultAction, detail);
    return this.sticky;
  }
}

