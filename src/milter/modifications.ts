// A filter's end-of-message requests (add/insert/change/delete header, add/delete recipient,
// change sender, replace body) as plain data, and the pure functions that carry them out on a
// header section (queue/local-submission's HeaderField list, latin1 text) and a recipient list.
// The MTA's own trace field (its Received: line) is not shown to filters, as in Sendmail and
// Postfix; as there, change/delete requests count only the fields the filters saw, while insert
// positions count every field (index 1 = just below the MTA's Received: line).
import type { HeaderField } from '../common/rfc5322-header.js';
import { normalizeLineEndings } from '../queue/local-submission.js';

/** One request, with the filter that made it. Header names and values are latin1 text. */
export type Modification = { filter: string } & (
  | {
      type: 'add-header';
      name: string;
      /** What follows the colon, as it is written (leading space included); folded lines joined by CRLF. */
      value: string;
    }
  | {
      type: 'insert-header';
      /** Position among all the fields, the hidden ones included: 0 = top; past the end = appended. */
      index: number;
      name: string;
      value: string;
    }
  | {
      /** Replace the value of the `occurrence`-th field of that name the filters saw (1 = first); add it when there is none. */
      type: 'change-header';
      name: string;
      occurrence: number;
      value: string;
    }
  | { type: 'delete-header'; name: string; occurrence: number }
  | { type: 'add-recipient'; address: string; args: string | null }
  | { type: 'delete-recipient'; address: string }
  | { type: 'change-sender'; address: string; args: string | null }
  | {
      /** The new body (what follows the header section), CRLF line ends. */
      type: 'replace-body';
      body: Buffer;
    }
);

/** A header field as a filter sees it (SMFIC_HEADER): name, and value with folded lines joined by LF. */
export interface MilterHeader {
  name: string;
  value: string;
}

/** A valid field name: printable US-ASCII except colon (RFC 5322 §3.6.8). */
export const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

/**
 * What a filter is sent for `field`. Without SMFIP_HDR_LEADSPC the one space after the colon is
 * left out (Sendmail's habit, which filters expect); with it, the value is sent as it is.
 */
export function milterHeader(field: HeaderField, leadingSpace: boolean): MilterHeader {
  const colon = field.raw.indexOf(':');
  const name = field.raw.slice(0, colon).replace(/[ \t]+$/, '');
  let value = field.raw.slice(colon + 1).replace(/\r\n$/, '').replace(/\r\n/g, '\n');
  if (!leadingSpace && value.startsWith(' ')) value = value.slice(1);
  return { name, value };
}

/**
 * A filter's header value as it will be written after the colon: one space in front unless the
 * filter negotiated SMFIP_HDR_LEADSPC; LF or CRLF line breaks become CRLF, and a line that does
 * not start with white space is indented, so that a value can never start a field of its own.
 */
export function headerValueFromFilter(value: string, leadingSpace: boolean): string {
  const lines = value
    .replace(/\r(?!\n)/g, '')
    .split(/\r?\n/)
    .map((line, i) => (i === 0 || /^[ \t]/.test(line) ? line : `\t${line}`))
    .filter((line, i) => i === 0 || line.trim() !== '');
  const text = lines.join('\r\n');
  return leadingSpace ? text : ` ${text}`;
}

function field(name: string, value: string): HeaderField {
  return { name: name.toLowerCase(), raw: `${name}:${value}\r\n` };
}

/**
 * Index in `headers` of the `occurrence`-th field called `name` that is not hidden (1-based; 0
 * counts as 1, as Sendmail does), or -1.
 */
function findOccurrence(headers: readonly HeaderField[], hidden: ReadonlySet<HeaderField>, name: string, occurrence: number): number {
  const lower = name.toLowerCase();
  let seen = 0;
  const wanted = Math.max(1, occurrence);
  for (let i = 0; i < headers.length; i++) {
    if (headers[i]!.name === lower && !hidden.has(headers[i]!) && ++seen === wanted) return i;
  }
  return -1;
}

/**
 * The header section after the requests, in their order (the other requests are left out).
 * `hidden`: how many fields at the top are the MTA's own, not shown to the filters.
 */
export function applyHeaderEdits(headers: readonly HeaderField[], mods: readonly Modification[], hidden = 0): HeaderField[] {
  return editHeaders(headers, mods, new Set(headers.slice(0, hidden)));
}

/** The fields the filters are shown. */
export function visibleHeaders(headers: readonly HeaderField[], hidden: ReadonlySet<HeaderField>): HeaderField[] {
  return headers.filter((h) => !hidden.has(h));
}

/** applyHeaderEdits with the hidden fields named (they keep their identity through the edits). */
export function editHeaders(headers: readonly HeaderField[], mods: readonly Modification[], hidden: ReadonlySet<HeaderField>): HeaderField[] {
  const out = [...headers];
  for (const m of mods) {
    switch (m.type) {
      case 'add-header':
        out.push(field(m.name, m.value));
        break;
      case 'insert-header':
        out.splice(Math.min(Math.max(0, m.index), out.length), 0, field(m.name, m.value));
        break;
      case 'change-header': {
        const i = findOccurrence(out, hidden, m.name, m.occurrence);
        if (i >= 0) out[i] = field(m.name, m.value);
        else out.push(field(m.name, m.value));
        break;
      }
      case 'delete-header': {
        const i = findOccurrence(out, hidden, m.name, m.occurrence);
        if (i >= 0) out.splice(i, 1);
        break;
      }
      default:
        break;
    }
  }
  return out;
}

/** An address as filters write it (`<a@b>` or `a@b`), without its angle brackets. */
export function bareAddress(address: string): string {
  return address.trim().replace(/^<(.*)>$/, '$1');
}

function sameAddress(a: string, b: string): boolean {
  return bareAddress(a).toLowerCase() === bareAddress(b).toLowerCase();
}

export interface RecipientEdits<R> {
  /** The original recipients still there, in their order. */
  kept: R[];
  /** The original recipients a filter deleted. */
  removed: R[];
  /** Recipients a filter added (bare addresses), in order, without duplicates of kept ones. */
  added: Array<{ address: string; args: string | null }>;
}

/**
 * The recipient list after the requests. Addresses compare without angle brackets and without
 * regard to case; an added address already present is not added twice.
 */
export function applyRecipientEdits<R>(recipients: readonly R[], addressOf: (r: R) => string, mods: readonly Modification[]): RecipientEdits<R> {
  let kept = [...recipients];
  const removed: R[] = [];
  let added: Array<{ address: string; args: string | null }> = [];
  for (const m of mods) {
    if (m.type === 'delete-recipient') {
      removed.push(...kept.filter((r) => sameAddress(addressOf(r), m.address)));
      kept = kept.filter((r) => !sameAddress(addressOf(r), m.address));
      added = added.filter((a) => !sameAddress(a.address, m.address));
    } else if (m.type === 'add-recipient') {
      const address = bareAddress(m.address);
      if (!address) continue;
      if (kept.some((r) => sameAddress(addressOf(r), address)) || added.some((a) => sameAddress(a.address, address))) continue;
      added.push({ address, args: m.args });
    }
  }
  return { kept, removed, added };
}

/** The last sender change, if any (address without angle brackets; '' = null sender). */
export function senderChange(mods: readonly Modification[]): { address: string; args: string | null } | null {
  let last: { address: string; args: string | null } | null = null;
  for (const m of mods) if (m.type === 'change-sender') last = { address: bareAddress(m.address), args: m.args };
  return last;
}

/** The last body replacement, if any, with CRLF line ends and a final CRLF. */
export function replacedBody(mods: readonly Modification[]): Buffer | null {
  let last: Buffer | null = null;
  for (const m of mods) if (m.type === 'replace-body') last = m.body;
  if (!last) return null;
  const body = normalizeLineEndings(last);
  return body.length === 0 || body.subarray(-2).equals(Buffer.from('\r\n')) ? body : Buffer.concat([body, Buffer.from('\r\n')]);
}

export interface EditedMessage<R> extends RecipientEdits<R> {
  headers: HeaderField[];
  sender: { address: string; args: string | null } | null;
  body: Buffer | null;
}

/**
 * Every request carried out: the header section (`hiddenHeaders` fields at its top being the
 * MTA's own, as given to MilterSession.message()), the recipients, the sender and the body.
 */
export function applyModifications<R>(
  message: { headers: readonly HeaderField[]; hiddenHeaders?: number; recipients: readonly R[]; addressOf: (r: R) => string },
  mods: readonly Modification[],
): EditedMessage<R> {
  return {
    headers: applyHeaderEdits(message.headers, mods, message.hiddenHeaders ?? 0),
    ...applyRecipientEdits(message.recipients, message.addressOf, mods),
    sender: senderChange(mods),
    body: replacedBody(mods),
  };
}
