// The message as it is stored once the end-of-DATA checks are done (pure): our fields on top of
// the client's header section, the filters' header requests carried out on it (our fields hidden
// from their counts, as milter-message.ts showed it), their recipient changes (an added recipient
// routed by the caller through the rewrite rules, as any RCPT is), the sender they set and the
// body they replaced. Unchanged fields keep their bytes, so a DKIM signature over them still
// verifies downstream.
import { applyModifications, type Modification } from '../milter/index.js';
import { splitMessage, type HeaderField } from '../common/rfc5322-header.js';
import type { AcceptedRecipient } from './envelope-plan.js';

export interface FinalMessage {
  /** The whole header section, the empty line ending it included. */
  header: Buffer;
  /** The body a filter replaced it with; null = the body as received. */
  body: Buffer | null;
  /** The envelope sender ('' for the null sender). */
  from: string;
  recipients: AcceptedRecipient[];
  /** Recipients a filter added that the rewrite rules could not route (left out). */
  unroutable: string[];
  /** Recipients a filter removed. */
  removed: AcceptedRecipient[];
}

export function finalMessage(input: {
  own: readonly HeaderField[];
  fields: readonly HeaderField[];
  modifications: readonly Modification[];
  recipients: readonly AcceptedRecipient[];
  from: string;
  /** An address a filter added, routed as RCPT would route it; null when it cannot be. */
  route(address: string): AcceptedRecipient | null;
}): FinalMessage {
  const edited = applyModifications(
    { headers: [...input.own, ...input.fields], hiddenHeaders: input.own.length, recipients: input.recipients, addressOf: (r: AcceptedRecipient) => r.original },
    input.modifications,
  );
  const recipients = [...edited.kept];
  const unroutable: string[] = [];
  for (const added of edited.added) {
    const r = input.route(added.address);
    if (r) recipients.push(r);
    else unroutable.push(added.address);
  }
  return {
    header: Buffer.from(`${edited.headers.map((h) => h.raw).join('')}\r\n`, 'latin1'),
    body: edited.body,
    from: edited.sender ? edited.sender.address : input.from,
    recipients,
    unroutable,
    removed: edited.removed,
  };
}

/**
 * The header section at the start of a message of `total` octets whose first octets are `head`:
 * its fields and where the body starts. Null when the section does not end within `head` while
 * the message goes on (a header section longer than the caller reads).
 */
export function readHeaderSection(head: Buffer, total: number): { fields: HeaderField[]; bodyOffset: number } | null {
  const text = head.toString('latin1');
  const { fields, body } = splitMessage(text);
  const bodyOffset = text.length - body.length;
  const ended = bodyOffset < text.length || text.endsWith('\r\n\r\n') || text === '\r\n';
  if (!ended && head.length < total) return null;
  return { fields, bodyOffset };
}
