// Checks the DATA stream as it arrives (after smtp-server removed the dot-stuffing and the final
// CRLF.CRLF): CRLF is the only line ending allowed (a bare LF or bare CR refuses the message, as
// Postfix's `smtpd_forbid_bare_newline = reject` does, so no `<LF>.<LF>` reaches a downstream
// server), text lines are at most `maxLineLength` octets (RFC 5321 §4.5.3.1.6), and the message
// is at most `maxBytes` octets, and its header carries fewer `Received:` fields than
// `maxReceivedLines` (ours, put in front, makes one more; RFC 5321 §6.3 loop detection). After
// the first violation the rest is drained and dropped.
export type DataViolation = 'bare-lf' | 'bare-cr' | 'line-too-long' | 'too-big' | 'too-many-hops';

export interface DataLimits {
  /** Octets per line, CRLF not counted (998 per RFC 5322); 0 = no limit. */
  maxLineLength: number;
  /** Octets per message; 0 = no limit. */
  maxBytes: number;
  /** Received: fields the message may have once ours is in front (MAX_RECEIVED_LINES); 0 or absent = no limit. */
  maxReceivedLines?: number;
}

const CR = 0x0d;
const LF = 0x0a;

/** Incremental scanner: feed chunks in order, then call finish(). The first violation sticks. */
export class DataScanner {
  violation: DataViolation | null = null;
  /** Octets seen (all of them, also after a violation). */
  bytes = 0;
  private lineLength = 0;
  /** The previous chunk ended with CR: the next octet must be LF. */
  private pendingCR = false;
  private readonly received = new ReceivedCounter();

  constructor(private readonly limits: DataLimits) {}

  /** Received: fields counted in the header so far. */
  get receivedLines(): number {
    return this.received.count;
  }

  scan(chunk: Buffer): DataViolation | null {
    this.bytes += chunk.length;
    if (this.violation) return this.violation;
    if (this.limits.maxBytes > 0 && this.bytes > this.limits.maxBytes) return (this.violation = 'too-big');
    const maxReceived = this.limits.maxReceivedLines ?? 0;
    if (maxReceived > 0 && !this.received.done && this.received.feed(chunk) + 1 > maxReceived) return (this.violation = 'too-many-hops');
    let i = 0;
    if (this.pendingCR && chunk.length > 0) {
      if (chunk[0] !== LF) return (this.violation = 'bare-cr');
      this.pendingCR = false;
      this.lineLength = 0;
      i = 1;
    }
    while (i < chunk.length) {
      const cr = chunk.indexOf(CR, i);
      const lf = chunk.indexOf(LF, i);
      const next = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      if (next < 0) {
        this.lineLength += chunk.length - i;
        if (this.tooLong()) return (this.violation = 'line-too-long');
        break;
      }
      this.lineLength += next - i;
      if (this.tooLong()) return (this.violation = 'line-too-long');
      // Every CR consumes the LF after it, so an LF found here has no CR before it.
      if (chunk[next] === LF) return (this.violation = 'bare-lf');
      if (next + 1 === chunk.length) {
        this.pendingCR = true;
        break;
      }
      if (chunk[next + 1] !== LF) return (this.violation = 'bare-cr');
      this.lineLength = 0;
      i = next + 2;
    }
    return null;
  }

  /** End of the data: a CR still waiting for its LF is a bare CR. */
  finish(): DataViolation | null {
    if (!this.violation && this.pendingCR) this.violation = 'bare-cr';
    return this.violation;
  }

  private tooLong(): boolean {
    return this.limits.maxLineLength > 0 && this.lineLength > this.limits.maxLineLength;
  }
}

const COLON = 0x3a;
/** A field name is compared while the line is at most this long (`Received` and some space before the colon). */
const NAME_WINDOW = 24;

/**
 * Counts the `Received:` fields of a message header as it streams in, whatever the chunking;
 * it stops at the empty line that ends the header. A field name may have white space before
 * its colon (RFC 5322 obsolete syntax) and any case; a continuation line (starting with white
 * space) is never a field.
 */
export class ReceivedCounter {
  count = 0;
  /** The header has ended: nothing more to count. */
  done = false;
  /** The start of the current line, while it may still be a field name; null = skipping to its end. */
  private start: string | null = '';

  /** Returns the count so far. */
  feed(chunk: Buffer): number {
    let i = 0;
    while (i < chunk.length && !this.done) {
      if (this.start === null) {
        const lf = chunk.indexOf(LF, i);
        if (lf < 0) break;
        this.start = '';
        i = lf + 1;
        continue;
      }
      const c = chunk[i++]!;
      if (c === LF) {
        // an empty line (CRLF alone, or a bare LF, which the scanner refuses anyway) ends the header
        if (this.start === '' || this.start === '\r') this.done = true;
        this.start = '';
      } else if (c === COLON) {
        if (this.start.trimEnd().toLowerCase() === 'received') this.count++;
        this.start = null;
      } else if (this.start.length >= NAME_WINDOW) {
        this.start = null;
      } else {
        this.start += String.fromCharCode(c);
      }
    }
    return this.count;
  }
}
