// The envelope of a queued message: plain data shared by the SMTP server (which writes it),
// the job controller (which schedules it) and the channel jobs (which deliver it).

export type RecipientState = 'pending' | 'delivered' | 'failed';

export interface QueuedRecipient {
  /** The envelope To after rewriting (what the channel delivers to). */
  address: string;
  /** The address as the client gave it in RCPT TO. */
  original: string;
  /** DSN ORCPT (e.g. `rfc822;user@example.com`), or null. */
  orcpt: string | null;
  /** DSN NOTIFY values (`NEVER`, `SUCCESS`, `FAILURE`, `DELAY`), or null when not given. */
  notify: string[] | null;
  state: RecipientState;
  /** Last status text (remote reply or local reason), or null. */
  status: string | null;
  /** Delay warnings already sent for this recipient (so each notices age warns once). */
  warnings?: number;
  /**
   * Channel l only: the mailbox (directory under mailbox/) a list or alias expansion resolved this
   * recipient to. Such a recipient is delivered there as it is, never looked up or expanded again.
   */
  mailbox?: string;
}

export interface MailParams {
  size?: number;
  body?: '7BIT' | '8BITMIME' | 'BINARYMIME';
  ret?: 'FULL' | 'HDRS';
  envid?: string;
  smtputf8?: boolean;
  /**
   * XVERP (Postfix's MAIL parameter): the message asked that each recipient get its own envelope
   * sender, made with these two delimiters (src/delivery/verp.ts). Absent = not asked.
   */
  verp?: string;
}

export interface Envelope {
  /** Unique queue id (also the core of the file name). */
  id: string;
  /** Destination channel: the queue directory this file lives in. */
  channel: string;
  /** Envelope From ('' = the null reverse path). */
  from: string;
  mailParams: MailParams;
  /** The channel the message came in on (e.g. tcp_local, tcp_intranet, l for submit). */
  sourceChannel: string;
  /** Client IP and HELO name, when it came over SMTP. */
  clientAddress: string | null;
  clientHelo: string | null;
  /** When the MTA accepted the message. */
  arrival: Date;
  /** Failed delivery attempts so far. */
  attempts: number;
  /** When the next attempt is due; null = at once. */
  nextAttempt: Date | null;
  recipients: QueuedRecipient[];
  held: boolean;
}

/** Where a queued message is on disk. */
export interface QueueRef {
  id: string;
  channel: string;
  path: string;
}

/**
 * A queue file a commit made durable, with what was written in it: told this, the job controller
 * admits the message without reading the file back (the "enqueued" notice carries it).
 */
export interface CommittedFile extends QueueRef {
  envelope: Envelope;
  /** Message size in bytes (what follows the envelope, prefix fields included). */
  size: number;
}

/** A new queue file as an "enqueued" notice names it: with its envelope and size when the writer has them. */
export type NoticedFile = QueueRef & { envelope?: Envelope; size?: number };

/** What a writer hands the store: an envelope before the store assigned its id (attempts 0, no next attempt). */
export type EnvelopeDraft = Omit<Envelope, 'id' | 'attempts' | 'nextAttempt' | 'held'> & {
  /** Write the file held (`.HELD`, never scheduled), as the hold channel does. Default false. */
  held?: boolean;
};

/** A queue file as seen by a directory scan: from its name and stat only, contents not read. */
export type ScanEntry = QueueRef & {
  held: boolean;
  /** Failed attempts, from the file name's complemented base-36 prefix. */
  attempts: number;
  /** When the file was made: the creation time in its id when the id carries one (no stat), else the file's mtime. */
  mtimeMs: number;
};

/**
 * Header fields computed from a whole message and written in front of it in some of its queue
 * files (the DKIM-Signature, src/dkim/). The queue reserves `length` bytes as soon as it is
 * known, streams the message behind them, and fills them in with finish() at commit.
 */
export interface MessagePrefix {
  /** Sees every message byte, in order. */
  update(chunk: Buffer): void;
  /** Bytes finish() will give: null while it cannot tell yet, 0 for none. */
  readonly length: number | null;
  /** The queue must start writing before the length is known: then there is no prefix (length 0). */
  giveUp(): void;
  /** After the last update(): exactly `length` bytes; throws when it cannot make them. */
  finish(): Buffer;
}
