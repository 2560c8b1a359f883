// The milter wire protocol (Sendmail 8 / libmilter, version 6) as pure functions: packet framing,
// the MTA's commands encoded, the filter's answers decoded, and the reverse of both (a filter's
// view) for tests and tracing. No I/O here. Every packet is a 4-byte big-endian length, a command
// byte and data; strings are NUL-terminated bytes. Names follow libmilter's mfdef.h and Postfix's
// src/milter/milter8.c, which this implements from the MTA side.

// ------------------------------------------------------------------ constants

/** Commands from the MTA to the filter. */
export const SMFIC = {
  ABORT: 'A',
  BODY: 'B',
  CONNECT: 'C',
  MACRO: 'D',
  BODYEOB: 'E',
  HELO: 'H',
  HEADER: 'L',
  MAIL: 'M',
  EOH: 'N',
  OPTNEG: 'O',
  QUIT: 'Q',
  RCPT: 'R',
  DATA: 'T',
  UNKNOWN: 'U',
  QUIT_NC: 'K',
} as const;

/** Answers from the filter to the MTA. */
export const SMFIR = {
  ADDRCPT: '+',
  DELRCPT: '-',
  ACCEPT: 'a',
  REPLBODY: 'b',
  CONTINUE: 'c',
  DISCARD: 'd',
  CONN_FAIL: 'f',
  CHGHEADER: 'm',
  PROGRESS: 'p',
  REJECT: 'r',
  TEMPFAIL: 't',
  SHUTDOWN: '4',
  ADDHEADER: 'h',
  INSHEADER: 'i',
  REPLYCODE: 'y',
  QUARANTINE: 'q',
  SKIP: 's',
  CHGFROM: 'e',
  ADDRCPT_PAR: '2',
  SETSYMLIST: 'l',
} as const;

/** Actions (modifications) a filter may ask for, negotiated in SMFIC_OPTNEG. */
const SMFIF = {
  ADDHDRS: 1 << 0,
  CHGBODY: 1 << 1,
  ADDRCPT: 1 << 2,
  DELRCPT: 1 << 3,
  CHGHDRS: 1 << 4,
  QUARANTINE: 1 << 5,
  CHGFROM: 1 << 6,
  ADDRCPT_PAR: 1 << 7,
  SETSYMLIST: 1 << 8,
} as const;

/** Protocol flags: events the filter does not want (NO*) or will not answer (NR_*). */
export const SMFIP = {
  NOCONNECT: 1 << 0,
  NOHELO: 1 << 1,
  NOMAIL: 1 << 2,
  NORCPT: 1 << 3,
  NOBODY: 1 << 4,
  NOHDRS: 1 << 5,
  NOEOH: 1 << 6,
  NR_HDR: 1 << 7,
  NOUNKNOWN: 1 << 8,
  NODATA: 1 << 9,
  SKIP: 1 << 10,
  RCPT_REJ: 1 << 11,
  NR_CONN: 1 << 12,
  NR_HELO: 1 << 13,
  NR_MAIL: 1 << 14,
  NR_RCPT: 1 << 15,
  NR_DATA: 1 << 16,
  NR_UNKN: 1 << 17,
  NR_EOH: 1 << 18,
  NR_BODY: 1 << 19,
  HDR_LEADSPC: 1 << 20,
} as const;

/** Address families in SMFIC_CONNECT. */
export const SMFIA = { UNKNOWN: 'U', UNIX: 'L', INET: '4', INET6: '6' } as const;
export type AddressFamily = (typeof SMFIA)[keyof typeof SMFIA];

/** Macro stages a filter may name in its symbol lists (SMFIM_*), in wire order. */
export const MACRO_STAGES = ['connect', 'helo', 'mail', 'rcpt', 'data', 'eom', 'eoh'] as const;
export type MacroStage = (typeof MACRO_STAGES)[number];

/** The protocol version this client speaks. */
export const MILTER_VERSION = 6;
/** Largest body chunk sent in one SMFIC_BODY (libmilter's MILTER_CHUNK_SIZE). */
export const MAX_BODY_CHUNK = 65535;

/** Every modification this MTA carries out; a filter asking for more is refused. */
export const MTA_ACTIONS =
  SMFIF.ADDHDRS | SMFIF.CHGBODY | SMFIF.ADDRCPT | SMFIF.DELRCPT | SMFIF.CHGHDRS | SMFIF.QUARANTINE | SMFIF.CHGFROM | SMFIF.ADDRCPT_PAR | SMFIF.SETSYMLIST;

/** The events a filter may decline, per protocol version (Postfix's MILTER8_V*_PROTO_MASK). */
const V2_EVENTS = SMFIP.NOCONNECT | SMFIP.NOHELO | SMFIP.NOMAIL | SMFIP.NORCPT | SMFIP.NOBODY | SMFIP.NOHDRS | SMFIP.NOEOH;
const V3_EVENTS = V2_EVENTS | SMFIP.NOUNKNOWN;
const V4_EVENTS = V3_EVENTS | SMFIP.NODATA;
/** Events that can be left out (sent only when the filter's version has them). */
const NOSEND_MASK = V4_EVENTS;
const NOREPLY_MASK =
  SMFIP.NR_CONN | SMFIP.NR_HELO | SMFIP.NR_MAIL | SMFIP.NR_RCPT | SMFIP.NR_DATA | SMFIP.NR_UNKN | SMFIP.NR_HDR | SMFIP.NR_EOH | SMFIP.NR_BODY;
/** The protocol flags this MTA offers in SMFIC_OPTNEG (all of version 6). */
export const MTA_PROTOCOL = V4_EVENTS | SMFIP.SKIP | SMFIP.RCPT_REJ | NOREPLY_MASK | SMFIP.HDR_LEADSPC;

/**
 * Events that must not be sent to a filter speaking an older version (Postfix sends only the
 * events defined for the version the filter answered with; an unknown version counts as the
 * next lower known one).
 */
export function eventsOutsideVersion(version: number): number {
  const known = version >= 6 ? MTA_PROTOCOL : version >= 4 ? V4_EVENTS : version >= 3 ? V3_EVENTS : V2_EVENTS;
  return NOSEND_MASK & ~known;
}

// ------------------------------------------------------------------ framing

/** A packet on the wire: its command byte (as a one-character string) and its data. */
export interface Packet {
  command: string;
  data: Buffer;
}

/** The other side broke the protocol (framing or packet contents). */
export class MilterProtocolError extends Error {
  override name = 'MilterProtocolError';
}

export function encodePacket(command: string, ...parts: Buffer[]): Buffer {
  const length = 1 + parts.reduce((n, p) => n + p.length, 0);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(length, 0);
  head.write(command, 4, 'latin1');
  return Buffer.concat([head, ...parts]);
}

/**
 * Splits a byte stream into packets. Bytes go in with push(), whole packets come out of next().
 * A length of 0 or above `maxLength` (command byte included) is a protocol error: the reader
 * refuses it as soon as the length is seen, before any of the data is buffered.
 */
export class PacketReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxLength: number) {}

  push(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.chunks.push(bytes);
    this.buffered += bytes.length;
    this.checkLength();
  }

  /** The next whole packet, or null when more bytes are needed. */
  next(): Packet | null {
    if (this.buffered < 4) return null;
    const length = this.peekLength();
    if (this.buffered < 4 + length) return null;
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const command = String.fromCharCode(all[4]!);
    const data = Buffer.from(all.subarray(5, 4 + length));
    const rest = all.subarray(4 + length);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    this.checkLength();
    return { command, data };
  }

  /** Bytes received but not yet returned as a packet. */
  get pending(): number {
    return this.buffered;
  }

  private peekLength(): number {
    if (this.chunks[0]!.length < 4) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.readUInt32BE(0);
  }

  private checkLength(): void {
    if (this.buffered < 4) return;
    const length = this.peekLength();
    if (length < 1) throw new MilterProtocolError('bad packet length 0');
    if (length > this.maxLength) throw new MilterProtocolError(`packet length ${length} exceeds ${this.maxLength}`);
  }
}

// ------------------------------------------------------------------ MTA → filter

const NUL = Buffer.from([0]);

/** A NUL-terminated string. Strings from the SMTP dialogue are UTF-8; header text is latin1 bytes. */
function cstr(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  // A NUL inside would end the string early and shift every later field: cut it there.
  const nul = b.indexOf(0);
  return Buffer.concat([nul >= 0 ? b.subarray(0, nul) : b, NUL]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

export function encodeOptneg(version: number, actions: number, protocol: number): Buffer {
  return encodePacket(SMFIC.OPTNEG, u32(version), u32(actions), u32(protocol));
}

/** SMFIC_MACRO: the macros for the event `command` (name, value pairs; names as `j` or `{daemon_name}`). */
export function encodeMacros(command: string, macros: ReadonlyArray<readonly [string, string]>): Buffer {
  return encodePacket(SMFIC.MACRO, Buffer.from(command, 'latin1'), ...macros.flatMap(([n, v]) => [cstr(n), cstr(v)]));
}

export interface ConnectEvent {
  /** The client's host name, or `[address]` when it has none. */
  hostname: string;
  family: AddressFamily;
  /** TCP port (0 for a local socket); absent for an unknown family. */
  port: number;
  /** The client's address (or socket path); absent for an unknown family. */
  address: string;
}

export function encodeConnect(e: ConnectEvent): Buffer {
  if (e.family === SMFIA.UNKNOWN) return encodePacket(SMFIC.CONNECT, cstr(e.hostname), Buffer.from(e.family, 'latin1'));
  const port = Buffer.alloc(2);
  port.writeUInt16BE(e.port & 0xffff, 0);
  return encodePacket(SMFIC.CONNECT, cstr(e.hostname), Buffer.from(e.family, 'latin1'), port, cstr(e.address));
}

export function encodeHelo(name: string): Buffer {
  return encodePacket(SMFIC.HELO, cstr(name));
}

/** SMFIC_MAIL / SMFIC_RCPT: `<address>` then the ESMTP parameters, each NUL-terminated. */
export function encodeEnvelope(command: typeof SMFIC.MAIL | typeof SMFIC.RCPT, argv: readonly string[]): Buffer {
  return encodePacket(command, ...argv.map(cstr));
}

/** SMFIC_HEADER: name and value as bytes (latin1 text); folded lines separated by LF. */
export function encodeHeader(name: string, value: string): Buffer {
  return encodePacket(SMFIC.HEADER, cstr(Buffer.from(name, 'latin1')), cstr(Buffer.from(value, 'latin1')));
}

export function encodeBody(chunk: Buffer): Buffer {
  if (chunk.length > MAX_BODY_CHUNK) throw new RangeError(`body chunk of ${chunk.length} bytes exceeds ${MAX_BODY_CHUNK}`);
  return encodePacket(SMFIC.BODY, chunk);
}

/** A command with no data (DATA, EOH, BODYEOB, ABORT, QUIT). */
export function encodeBare(command: string): Buffer {
  return encodePacket(command);
}

// ------------------------------------------------------------------ filter → MTA

/** A reply the filter set (SMFIR_REPLYCODE), parsed: one code and enhanced code, one or more text lines. */
export interface MilterReply {
  code: number;
  /** Enhanced status code (RFC 3463); the class of `code` with `.7.1` when the filter gave none. */
  enhanced: string;
  lines: string[];
}

export interface OptnegAnswer {
  version: number;
  actions: number;
  protocol: number;
  /** Macro lists the filter asked for (SMFIR_SETSYMLIST in the negotiation), by stage. */
  macroLists: Partial<Record<MacroStage, string[]>>;
}

/** A filter's answer to an event, or one of its end-of-message requests. */
export type FilterAnswer =
  | { type: 'continue' | 'accept' | 'reject' | 'tempfail' | 'discard' | 'shutdown' | 'progress' | 'skip' | 'connfail' }
  | { type: 'replycode'; reply: MilterReply }
  | { type: 'quarantine'; reason: string }
  | { type: 'addheader'; name: string; value: string }
  | { type: 'insheader'; index: number; name: string; value: string }
  | { type: 'chgheader'; index: number; name: string; value: string }
  | { type: 'addrcpt'; address: string; args: string | null }
  | { type: 'delrcpt'; address: string }
  | { type: 'chgfrom'; address: string; args: string | null }
  | { type: 'replbody'; chunk: Buffer };

/** Reads a packet's fields in order, refusing short or over-long data as Postfix does. */
class FieldReader {
  private pos = 0;
  constructor(
    private readonly data: Buffer,
    private readonly what: string,
  ) {}

  u32(): number {
    if (this.pos + 4 > this.data.length) throw new MilterProtocolError(`${this.what}: packet too short for a 32-bit number`);
    const n = this.data.readUInt32BE(this.pos);
    this.pos += 4;
    return n;
  }

  /** A NUL-terminated string; its bytes decoded as `encoding`. */
  string(encoding: BufferEncoding): string {
    const end = this.data.indexOf(0, this.pos);
    if (end < 0) throw new MilterProtocolError(`${this.what}: string without its NUL terminator`);
    const s = this.data.toString(encoding, this.pos, end);
    this.pos = end + 1;
    return s;
  }

  get remaining(): number {
    return this.data.length - this.pos;
  }

  end(): void {
    if (this.remaining > 0) throw new MilterProtocolError(`${this.what}: ${this.remaining} bytes of left-over data`);
  }
}

const BARE_ANSWERS: Record<string, FilterAnswer['type']> = {
  [SMFIR.CONTINUE]: 'continue',
  [SMFIR.ACCEPT]: 'accept',
  [SMFIR.REJECT]: 'reject',
  [SMFIR.TEMPFAIL]: 'tempfail',
  [SMFIR.DISCARD]: 'discard',
  [SMFIR.SHUTDOWN]: 'shutdown',
  [SMFIR.PROGRESS]: 'progress',
  [SMFIR.SKIP]: 'skip',
  [SMFIR.CONN_FAIL]: 'connfail',
};

/** Printable name of a command or answer byte for messages (`'y' (0x79)`). */
export function describeCommand(c: string): string {
  const code = c.charCodeAt(0);
  const shown = code >= 0x21 && code <= 0x7e ? `'${c}'` : '?';
  return `${shown} (0x${code.toString(16).padStart(2, '0')})`;
}

/**
 * Decodes one answer packet. Header names and values are latin1 (bytes kept as they are);
 * addresses and arguments UTF-8. Throws MilterProtocolError for an unknown answer or bad data.
 */
export function decodeAnswer(p: Packet): FilterAnswer {
  const bare = BARE_ANSWERS[p.command];
  const what = `answer ${describeCommand(p.command)}`;
  if (bare) {
    if (p.data.length !== 0) throw new MilterProtocolError(`${what}: followed by ${p.data.length} data bytes`);
    return { type: bare } as FilterAnswer;
  }
  const r = new FieldReader(p.data, what);
  switch (p.command) {
    case SMFIR.REPLYCODE: {
      // Raw bytes with (usually) a final NUL; Postfix takes the buffer and drops one final NUL.
      const text = p.data.toString('latin1').replace(/\0$/, '');
      const reply = parseReplyCode(text);
      if (!reply) throw new MilterProtocolError(`${what}: malformed reply ${JSON.stringify(text.slice(0, 100))}`);
      return { type: 'replycode', reply };
    }
    case SMFIR.QUARANTINE:
      return { type: 'quarantine', reason: printable(p.data.toString('latin1').replace(/\0$/, '')).slice(0, 100) };
    case SMFIR.ADDHEADER: {
      const name = r.string('latin1');
      const value = r.string('latin1');
      r.end();
      return { type: 'addheader', name, value };
    }
    case SMFIR.INSHEADER:
    case SMFIR.CHGHEADER: {
      const index = r.u32();
      const name = r.string('latin1');
      const value = r.string('latin1');
      r.end();
      return { type: p.command === SMFIR.INSHEADER ? 'insheader' : 'chgheader', index, name, value };
    }
    case SMFIR.ADDRCPT: {
      const address = r.string('utf8');
      r.end();
      return { type: 'addrcpt', address, args: null };
    }
    case SMFIR.ADDRCPT_PAR:
    case SMFIR.CHGFROM: {
      const address = r.string('utf8');
      const args = r.remaining > 0 ? r.string('utf8') : null;
      r.end();
      return { type: p.command === SMFIR.CHGFROM ? 'chgfrom' : 'addrcpt', address, args };
    }
    case SMFIR.DELRCPT: {
      const address = r.string('utf8');
      r.end();
      return { type: 'delrcpt', address };
    }
    case SMFIR.REPLBODY:
      return { type: 'replbody', chunk: p.data };
    default:
      throw new MilterProtocolError(`unknown ${what}`);
  }
}

/** The filter's SMFIC_OPTNEG answer: version, actions, protocol, then optional macro lists. */
export function decodeOptneg(p: Packet): OptnegAnswer {
  if (p.command !== SMFIC.OPTNEG) throw new MilterProtocolError(`negotiation: expected 'O', got ${describeCommand(p.command)}`);
  const r = new FieldReader(p.data, 'negotiation');
  const version = r.u32();
  const actions = r.u32();
  const protocol = r.u32();
  const macroLists: Partial<Record<MacroStage, string[]>> = {};
  while (r.remaining > 0) {
    const stage = MACRO_STAGES[r.u32()];
    const names = r.string('latin1');
    // An unknown stage number is ignored, as Postfix does.
    if (stage) macroLists[stage] = names.split(/[\s,]+/).filter(Boolean);
  }
  return { version, actions, protocol, macroLists };
}

const REPLY_LINE = /^([45])(\d\d)([ -])(.*)$/;
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)/;
/** Most lines and characters per line kept from a filter's reply. */
const MAX_REPLY_LINES = 32;
const MAX_REPLY_LINE = 450;

/**
 * Parses SMFIR_REPLYCODE text as Postfix's milter8_valid_smtp_reply() accepts it: lines
 * `ddd-text` CRLF … `ddd text`, a 4xx or 5xx code, the same code on every line, an enhanced code
 * (if any) of the same class. Sendmail treats the text as a format string, so `%%` is `%` and a
 * lone `%` is dropped. Null when malformed.
 */
export function parseReplyCode(text: string): MilterReply | null {
  if (text.includes('\0')) return null;
  const raw = text.split('\r\n');
  if (raw.some((l) => l.includes('\n') || l.includes('\r'))) return null;
  let code = 0;
  let enhanced: string | null = null;
  const lines: string[] = [];
  for (let i = 0; i < raw.length; i++) {
    const m = REPLY_LINE.exec(raw[i]!);
    if (!m) return null;
    const final = i === raw.length - 1;
    if (m[3] !== (final ? ' ' : '-')) return null;
    const lineCode = Number(m[1]! + m[2]!);
    if (code && lineCode !== code) return null;
    code = lineCode;
    let rest = m[4]!;
    if (/^\d/.test(rest) && !rest.startsWith(m[1]!)) return null;
    const e = ENHANCED.exec(rest);
    if (e) {
      if (e[1] !== m[1]) return null;
      enhanced ??= `${e[1]}.${e[2]}.${e[3]}`;
      rest = rest.slice(e[0].length);
    }
    if (lines.length < MAX_REPLY_LINES) lines.push(printable(rest.replace(/%(%?)/g, '$1')).slice(0, MAX_REPLY_LINE));
  }
  return { code, enhanced: enhanced ?? `${Math.floor(code / 100)}.7.1`, lines };
}

/** Control characters out of text from a filter that ends up in a reply or a log line. */
function printable(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, ' ');
}

// ------------------------------------------------------------------ the filter's side (tests, traces)

/** An MTA command as a filter reads it. */
export type MtaCommand =
  | { type: 'optneg'; version: number; actions: number; protocol: number }
  | { type: 'macro'; for: string; macros: Array<[string, string]> }
  | { type: 'connect'; hostname: string; family: string; port: number | null; address: string | null }
  | { type: 'helo'; name: string }
  | { type: 'mail' | 'rcpt'; argv: string[] }
  | { type: 'header'; name: string; value: string }
  | { type: 'body'; chunk: Buffer }
  | { type: 'data' | 'eoh' | 'eob' | 'abort' | 'quit' | 'quit_nc' }
  | { type: 'unknown'; command: string };

function strings(data: Buffer, encoding: BufferEncoding): string[] {
  const out = data.toString(encoding).split('\0');
  if (out.pop() !== '') throw new MilterProtocolError('string without its NUL terminator');
  return out;
}

/** Decodes a packet the MTA sent (what a filter sees). */
export function decodeCommand(p: Packet): MtaCommand {
  const r = new FieldReader(p.data, `command ${describeCommand(p.command)}`);
  switch (p.command) {
    case SMFIC.OPTNEG: {
      const version = r.u32();
      const actions = r.u32();
      const protocol = r.u32();
      r.end();
      return { type: 'optneg', version, actions, protocol };
    }
    case SMFIC.MACRO: {
      if (p.data.length < 1) throw new MilterProtocolError('macro packet without its command');
      const list = p.data.length > 1 ? strings(p.data.subarray(1), 'utf8') : [];
      if (list.length % 2) throw new MilterProtocolError('macro name without a value');
      const macros: Array<[string, string]> = [];
      for (let i = 0; i < list.length; i += 2) macros.push([list[i]!, list[i + 1]!]);
      return { type: 'macro', for: String.fromCharCode(p.data[0]!), macros };
    }
    case SMFIC.CONNECT: {
      const hostname = r.string('utf8');
      if (r.remaining < 1) throw new MilterProtocolError('connect without a family');
      const family = String.fromCharCode(p.data[p.data.length - r.remaining]!);
      if (family === SMFIA.UNKNOWN) return { type: 'connect', hostname, family, port: null, address: null };
      const at = p.data.length - r.remaining + 1;
      if (p.data.length < at + 2) throw new MilterProtocolError('connect without a port');
      const port = p.data.readUInt16BE(at);
      const address = strings(p.data.subarray(at + 2), 'utf8');
      if (address.length !== 1) throw new MilterProtocolError('connect with a bad address');
      return { type: 'connect', hostname, family, port, address: address[0]! };
    }
    case SMFIC.HELO:
      return { type: 'helo', name: strings(p.data, 'utf8').join('') };
    case SMFIC.MAIL:
    case SMFIC.RCPT:
      return { type: p.command === SMFIC.MAIL ? 'mail' : 'rcpt', argv: strings(p.data, 'utf8') };
    case SMFIC.HEADER: {
      const [name, value, ...extra] = strings(p.data, 'latin1');
      if (value === undefined || extra.length) throw new MilterProtocolError('header packet is not name and value');
      return { type: 'header', name: name!, value };
    }
    case SMFIC.BODY:
      return { type: 'body', chunk: p.data };
    case SMFIC.DATA:
    case SMFIC.EOH:
    case SMFIC.BODYEOB:
    case SMFIC.ABORT:
    case SMFIC.QUIT:
    case SMFIC.QUIT_NC: {
      r.end();
      const names: Record<string, MtaCommand['type']> = { T: 'data', N: 'eoh', E: 'eob', A: 'abort', Q: 'quit', K: 'quit_nc' };
      return { type: names[p.command] } as MtaCommand;
    }
    default:
      return { type: 'unknown', command: p.command };
  }
}

/** Encodes a filter's answer (what a filter sends): the inverse of decodeAnswer, for test filters. */
export function encodeAnswer(a: FilterAnswer | { type: 'optneg'; answer: OptnegAnswer }): Buffer {
  switch (a.type) {
    case 'optneg': {
      const lists = Object.entries(a.answer.macroLists).map(([stage, names]) =>
        Buffer.concat([u32(MACRO_STAGES.indexOf(stage as MacroStage)), cstr(names.join(' '))]),
      );
      return encodePacket(SMFIC.OPTNEG, u32(a.answer.version), u32(a.answer.actions), u32(a.answer.protocol), ...lists);
    }
    case 'replycode': {
      const { code, enhanced, lines } = a.reply;
      const text = lines.map((l, i) => `${code}${i === lines.length - 1 ? ' ' : '-'}${enhanced} ${l}`).join('\r\n');
      return encodePacket(SMFIR.REPLYCODE, cstr(text));
    }
    case 'quarantine':
      return encodePacket(SMFIR.QUARANTINE, cstr(a.reason));
    case 'addheader':
      return encodePacket(SMFIR.ADDHEADER, cstr(Buffer.from(a.name, 'latin1')), cstr(Buffer.from(a.value, 'latin1')));
    case 'insheader':
    case 'chgheader':
      return encodePacket(
        a.type === 'insheader' ? SMFIR.INSHEADER : SMFIR.CHGHEADER,
        u32(a.index),
        cstr(Buffer.from(a.name, 'latin1')),
        cstr(Buffer.from(a.value, 'latin1')),
      );
    case 'addrcpt':
      return a.args === null ? encodePacket(SMFIR.ADDRCPT, cstr(a.address)) : encodePacket(SMFIR.ADDRCPT_PAR, cstr(a.address), cstr(a.args));
    case 'chgfrom':
      return a.args === null ? encodePacket(SMFIR.CHGFROM, cstr(a.address)) : encodePacket(SMFIR.CHGFROM, cstr(a.address), cstr(a.args));
    case 'delrcpt':
      return encodePacket(SMFIR.DELRCPT, cstr(a.address));
    case 'replbody':
      return encodePacket(SMFIR.REPLBODY, a.chunk);
    default: {
      const command = Object.entries(BARE_ANSWERS).find(([, t]) => t === a.type)![0];
      return encodePacket(command);
    }
  }
}

/** Encodes an MTA command from its decoded form: the inverse of decodeCommand (tests, traces). */
export function encodeCommand(c: MtaCommand): Buffer {
  switch (c.type) {
    case 'optneg':
      return encodeOptneg(c.version, c.actions, c.protocol);
    case 'macro':
      return encodeMacros(c.for, c.macros);
    case 'connect':
      return encodeConnect({ hostname: c.hostname, family: c.family as AddressFamily, port: c.port ?? 0, address: c.address ?? '' });
    case 'helo':
      return encodeHelo(c.name);
    case 'mail':
      return encodeEnvelope(SMFIC.MAIL, c.argv);
    case 'rcpt':
      return encodeEnvelope(SMFIC.RCPT, c.argv);
    case 'header':
      return encodeHeader(c.name, c.value);
    case 'body':
      return encodeBody(c.chunk);
    case 'unknown':
      return encodePacket(c.command);
    default: {
      const command = { data: SMFIC.DATA, eoh: SMFIC.EOH, eob: SMFIC.BODYEOB, abort: SMFIC.ABORT, quit: SMFIC.QUIT, quit_nc: SMFIC.QUIT_NC }[c.type];
      return encodeBare(command);
    }
  }
}
