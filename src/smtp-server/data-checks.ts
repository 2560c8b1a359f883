// The end-of-DATA stage: the checks a message goes through once it has arrived whole and clean
// (within the size, line and hop limits), before it is committed to the queue and answered 250,
// in order (see stages.ts for the verdicts). A refusal discards what was written and is a J
// record per recipient in mail.log. The checks that read the message get `content` (the message
// spooled: inspected-data.ts) and note what they change in `edits` instead of refusing: SPF, DKIM,
// DMARC and ARC verification (verify-check.ts: the Authentication-Results field, a DMARC p=reject
// refused) and the session's milters (milter-message.ts: their header, recipient and body
// changes, a quarantine). Without content (a session no such check applies to: the data went
// straight into the queue) they have nothing to do.
import type { SMTPServerSession } from 'smtp-server';
import type { Modification } from '../milter/index.js';
import type { MessageSpool } from '../queue/index.js';
import type { HeaderField } from '../common/rfc5322-header.js';
import type { AcceptedRecipient } from './envelope-plan.js';
import type { InboundSession } from './inbound-session.js';
import { milterMessage } from './milter-message.js';
import type { Check, StageServices } from './stages.js';
import { verifyAuthentication } from './verify-check.js';

/** The message as received, spooled for the checks that read it. */
export interface SpooledMessage {
  spool: MessageSpool;
  /** The header fields as the client sent them (a check may drop some: a forged Authentication-Results). */
  fields: HeaderField[];
  /** Where the body starts in the spool (after the empty line ending the header section). */
  bodyOffset: number;
}

/** What the checks change in the message it is stored with. */
export interface MessageEdits {
  /** Our Authentication-Results field (ending in CRLF), put on top; null = none. */
  authResults: HeaderField | null;
  /** The filters' requests (header, recipient, sender and body changes), in order. */
  modifications: Modification[];
}

export interface MessageCommand {
  smtp: SMTPServerSession;
  session: InboundSession;
  services: StageServices;
  /** The envelope sender ('' for the null sender). */
  from: string;
  recipients: readonly AcceptedRecipient[];
  /** The queue id (the one in our Received: line). */
  messageId: string;
  /** Octets of the message as the client sent it. */
  size: number;
  /** Our Received: field, on top of the stored message. */
  received: HeaderField;
  /** The message, when the session's checks read it; null when it went straight into the queue. */
  content: SpooledMessage | null;
  edits: MessageEdits;
}

type MessageCheck = Check<MessageCommand>;

export const DATA_CHECKS: readonly MessageCheck[] = [verifyAuthentication, milterMessage];
