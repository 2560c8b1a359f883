// An envelope as JSON carries it (the "enqueued" notice: the SMTP server tells the job controller
// what it wrote, so that the file is not read back): envelopeFromWire() takes it back to an
// Envelope, its times as Dates again, or gives null when anything does not fit, and then the
// reader reads the file as it would have without it. A field it does not know gives null too: a
// field added to the envelope and not here makes the job controller read the file, never lose it.
import type { Envelope, MailParams, QueuedRecipient, RecipientState } from './types.js';
import { verpDelimitersProblem } from '../config/verp-options.js';

type Json = Record<string, unknown>;

const STATES: ReadonlySet<string> = new Set<RecipientState>(['pending', 'delivered', 'failed']);
const ENVELOPE_KEYS: ReadonlySet<string> = new Set(['id', 'channel', 'from', 'mailParams', 'sourceChannel', 'clientAddress', 'clientHelo', 'arrival', 'attempts', 'nextAttempt', 'recipients', 'held']);
const RECIPIENT_KEYS: ReadonlySet<string> = new Set(['address', 'original', 'orcpt', 'notify', 'state', 'status', 'warnings', 'mailbox']);
const PARAM_KEYS: ReadonlySet<string> = new Set(['size', 'body', 'ret', 'envid', 'smtputf8', 'verp']);

/** Only keys of `known`. */
const knownKeys = (v: Json, known: ReadonlySet<string>): boolean => Object.keys(v).every((k) => known.has(k));

const isRecord = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === 'string';
const stringOrNull = (v: unknown): v is string | null => v === null || typeof v === 'string';

/** An instant as JSON writes a Date (ISO text), or null when it is not one. */
function instant(v: unknown): Date | null {
  if (!isString(v)) return null;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

function recipient(v: unknown): QueuedRecipient | null {
  if (!isRecord(v) || !knownKeys(v, RECIPIENT_KEYS)) return null;
  const { address, original, orcpt, notify, state, status, warnings, mailbox } = v;
  if (!isString(address) || !isString(original) || !stringOrNull(orcpt) || !stringOrNull(status)) return null;
  if (!isString(state) || !STATES.has(state)) return null;
  if (notify !== null && !(Array.isArray(notify) && notify.every(isString))) return null;
  if (warnings !== undefined && typeof warnings !== 'number') return null;
  if (mailbox !== undefined && !isString(mailbox)) return null;
  return { address, original, orcpt, notify, state: state as RecipientState, status, ...(warnings !== undefined ? { warnings } : {}), ...(mailbox !== undefined ? { mailbox } : {}) };
}

function mailParams(v: unknown): MailParams | null {
  if (!isRecord(v) || !knownKeys(v, PARAM_KEYS)) return null;
  const out: MailParams = {};
  if (v.size !== undefined) {
    if (typeof v.size !== 'number') return null;
    out.size = v.size;
  }
  if (v.body !== undefined) {
    if (v.body !== '7BIT' && v.body !== '8BITMIME' && v.body !== 'BINARYMIME') return null;
    out.body = v.body;
  }
  if (v.ret !== undefined) {
    if (v.ret !== 'FULL' && v.ret !== 'HDRS') return null;
    out.ret = v.ret;
  }
  if (v.envid !== undefined) {
    if (!isString(v.envid)) return null;
    out.envid = v.envid;
  }
  if (v.smtputf8 !== undefined) {
    if (typeof v.smtputf8 !== 'boolean') return null;
    out.smtputf8 = v.smtputf8;
  }
  if (v.verp !== undefined) {
    if (!isString(v.verp) || verpDelimitersProblem(v.verp) !== null) return null;
    out.verp = v.verp;
  }
  return out;
}

/** The envelope in `v` (a parsed JSON value), or null when it is not a whole envelope. */
export function envelopeFromWire(v: unknown): Envelope | null {
  if (!isRecord(v) || !knownKeys(v, ENVELOPE_KEYS)) return null;
  const { id, channel, from, sourceChannel, clientAddress, clientHelo, attempts, held } = v;
  if (!isString(id) || !isString(channel) || !isString(from) || !isString(sourceChannel)) return null;
  if (!stringOrNull(clientAddress) || !stringOrNull(clientHelo) || typeof attempts !== 'number' || typeof held !== 'boolean') return null;
  const arrival = instant(v.arrival);
  const nextAttempt = v.nextAttempt === null ? null : instant(v.nextAttempt);
  if (!arrival || (v.nextAttempt !== null && !nextAttempt)) return null;
  const params = mailParams(v.mailParams);
  if (!params || !Array.isArray(v.recipients)) return null;
  const recipients: QueuedRecipient[] = [];
  for (const r of v.recipients) {
    const q = recipient(r);
    if (!q) return null;
    recipients.push(q);
  }
  return { id, channel, from, mailParams: params, sourceChannel, clientAddress, clientHelo, arrival, attempts, nextAttempt, recipients, held };
}
