// The end-of-DATA stage: the checks a message goes through once it has arrived whole and clean
// (within the size, line and hop limits), before it is committed to the queue and answered 250,
// in order (see stages.ts for the verdicts). A refusal discards what was written and is a J
// record per recipient in mail.log. Empty today: milters (src/milter) and message verification
// (src/policy verifyMessage: DKIM, DMARC, ARC) belong here; they will need the message content
// as a field of MessageCommand (the data is streamed into the queue files as it arrives).
import type { SMTPServerSession } from 'smtp-server';
import type { AcceptedRecipient } from './envelope-plan.js';
import type { InboundSession } from './inbound-session.js';
import type { Check, StageServices } from './stages.js';

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
}

type MessageCheck = Check<MessageCommand>;

export const DATA_CHECKS: readonly MessageCheck[] = [];
