// Reading mail.log leniently, for the report and the status page's charts: any event letter
// (the ones a later build adds are counted, not dropped), the nine fields split on single spaces
// without a regex, and the status's trailing `key=value` tokens (tls=…, and what later builds
// append) taken off the reason text. Fast: `imsimta report` parses a million lines with it.
// Pure. The strict reader of the fields as they are written is parseMailLogLine (mail-log.ts).

export interface LooseMailLogRecord {
  /** ISO time as written (`2026-12-07T13:05:09.123Z`); compared and bucketed as text. */
  time: string;
  /** One character; E, D, Q, R, J, X … as written. */
  event: string;
  id: string;
  source: string;
  destination: string;
  size: number;
  /** `` for the null sender `<>`. */
  from: string;
  recipient: string;
  /** The status text without the trailing tokens. */
  status: string;
  /** Trailing `key=value` tokens of the status (`tls`, …), absent when there are none. */
  tokens?: Record<string, string>;
}

/** A trailing token: a lower-case key (letters, digits, `_`, `-`), `=`, then no space. */
const TOKEN = /^[a-z][a-z0-9_-]*=\S*$/;

/** null for a line that does not have the nine fields (a torn or foreign line). */
export function parseLooseMailLogLine(line: string): LooseMailLogRecord | null {
  // Eight separators before the status; the status itself may contain spaces.
  const cut: number[] = [];
  let from = 0;
  for (let i = 0; i < 8; i++) {
    const at = line.indexOf(' ', from);
    if (at < 0) return null;
    cut.push(at);
    from = at + 1;
  }
  const event = line.slice(cut[0]! + 1, cut[1]);
  const time = line.slice(0, cut[0]);
  if (event.length !== 1 || time.length < 10 || time.charCodeAt(4) !== 45 /* - */) return null;
  const size = Number(line.slice(cut[4]! + 1, cut[5]));
  if (!Number.isFinite(size)) return null;
  const field = (a: number, b: number) => {
    const s = line.slice(a + 1, b);
    return s === '-' ? '' : s;
  };
  const rawFrom = line.slice(cut[5]! + 1, cut[6]);
  let status = line.slice(cut[7]! + 1);
  let tokens: Record<string, string> | undefined;
  // Tokens come last: take them off from the end while they look like tokens.
  for (let end = status.length; end > 0; ) {
    const space = status.lastIndexOf(' ', end - 1);
    const word = status.slice(space + 1, end);
    if (!TOKEN.test(word)) break;
    const eq = word.indexOf('=');
    (tokens ??= {})[word.slice(0, eq)] = word.slice(eq + 1);
    status = status.slice(0, Math.max(0, space));
    end = status.length;
    if (space < 0) break;
  }
  return {
    time,
    event,
    id: field(cut[1]!, cut[2]!),
    source: field(cut[2]!, cut[3]!),
    destination: field(cut[3]!, cut[4]!),
    size,
    from: rawFrom === '<>' || rawFrom === '-' ? '' : rawFrom,
    recipient: field(cut[6]!, cut[7]!),
    status: status === '-' ? '' : status,
    ...(tokens ? { tokens } : {}),
  };
}

/** The domain of an address (lower case), `` when there is none. */
export function addressDomain(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase();
}

/**
 * Tells, record by record, when a new message starts: the records of one message's event (its
 * recipients) are written together, so a run of records with the same letter and queue id is one
 * message. A message received for several channels is queued as several files, the others' ids
 * the first's and two characters more: one message received. J records carry no id: each is one.
 */
export class MessageRuns {
  private event = '';
  private id = '';
  private receivedId = '';

  /** `message`: the record starts a message's event; `received`: for E, it starts a message received. */
  next(r: Pick<LooseMailLogRecord, 'event' | 'id'>): { message: boolean; received: boolean } {
    const message = !(r.event === this.event && r.id === this.id && r.id !== '');
    this.event = r.event;
    this.id = r.id;
    if (r.event !== 'E') return { message, received: false };
    const sameFile = !message;
    const sibling = this.receivedId !== '' && r.id.length === this.receivedId.length + 2 && r.id.startsWith(this.receivedId);
    if (message && !sibling) this.receivedId = r.id;
    return { message, received: !sameFile && !sibling };
  }
}

/**
 * A copy of a piece of a line that a table keeps beyond the line: V8 makes a substring of 13
 * characters or more share the characters of the text it was cut from, so a kept slice would
 * keep a whole chunk of the log (a megabyte) alive.
 */
export function detach(s: string): string {
  return s.length < 13 ? s : Buffer.from(s, 'utf8').toString('utf8');
}
