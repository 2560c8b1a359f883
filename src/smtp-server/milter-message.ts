// The message through the session's milters at the end of DATA: its header section as it will be
// stored (our Authentication-Results and Received: fields on top, hidden from the filters as
// Postfix hides its own Received: line, so that a filter's `delete the first
// Authentication-Results` cannot take ours) and its body read from the spool, once per filter.
// A refusal answers with the filter's reply; a quarantine holds the message (its `.HELD` queue
// files wait for `imsimta qm release`); a discard accepts it and queues nothing; the filters'
// changes are noted in `edits` and carried out by the data stage before the message is written
// (message-edits.ts), so that the queue files, and the DKIM signer that sees them, get the final
// message.
import type { MessageCommand } from './data-checks.js';
import { fromMilter, milterRule } from './milter-checks.js';
import { NEXT, type Verdict } from './stages.js';

/** The fields above the client's header section, in order: our Authentication-Results, our Received:. */
export function ownFields(cmd: Pick<MessageCommand, 'edits' | 'received'>) {
  return cmd.edits.authResults ? [cmd.edits.authResults, cmd.received] : [cmd.received];
}

export function milterMessage(cmd: MessageCommand): Verdict | Promise<Verdict> {
  const milter = cmd.session.policy.milter;
  const content = cmd.content;
  if (!milter || !content) return NEXT;
  const own = ownFields(cmd);
  return milter
    .message({ headers: [...own, ...content.fields], hidden: own.length, body: () => content.spool.read(content.bodyOffset) })
    .then(({ verdict, modifications }): Verdict => {
      if (verdict.kind === 'quarantine') {
        cmd.session.policy.tx.hold ??= `${milterRule(verdict.filter)} quarantine${verdict.reason ? `: ${verdict.reason}` : ''}`;
      }
      if (verdict.kind === 'continue' || verdict.kind === 'quarantine') cmd.edits.modifications = modifications;
      return fromMilter(verdict, cmd.session);
    });
}
