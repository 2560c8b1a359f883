// Mail loops seen from a queued message's header (pure): more Received: lines than the hop
// limit (option.dat MAX_RECEIVED_LINES, Postfix's hopcount_limit), or a Delivered-To: line naming the
// address it is being delivered to again (the line local delivery adds, as Postfix's local
// does). Either way the message is returned with 5.4.6, not delivered once more. Also the I/O
// helpers that take the header section off a queued message without reading all of it.
import { Readable } from 'node:stream';
import { fieldValue, parseAddressList, splitMessage } from '../common/rfc5322-header.js';

export interface HeaderFacts {
  /** Received: fields in the header section. */
  received: number;
  /** Delivered-To: addresses, lower-case. */
  deliveredTo: Set<string>;
}

/** A header section larger than this is not read further for the checks (its first part counts). */
const MAX_HEADER_READ = 1024 * 1024;

const BLANK_LINE = Buffer.from('\r\n\r\n');

/** The header section (up to and with the empty line) of a message's first bytes. */
export function headerSectionOf(message: Buffer): Buffer {
  const end = message.indexOf(BLANK_LINE);
  return end < 0 ? message.subarray(0, MAX_HEADER_READ) : message.subarray(0, end + 4);
}

export function headerFacts(header: Buffer): HeaderFacts {
  const { fields } = splitMessage(header.toString('latin1'));
  const deliveredTo = new Set<string>();
  let received = 0;
  for (const f of fields) {
    if (f.name === 'received') received++;
    else if (f.name === 'delivered-to') for (const a of parseAddressList(fieldValue(f))) deliveredTo.add(a.toLowerCase());
  }
  return { received, deliveredTo };
}

/** The status that returns a message with too many hops, or null. */
export function tooManyHops(facts: HeaderFacts, limit: number): string | null {
  if (facts.received <= limit) return null;
  return `554 5.4.6 too many hops: ${facts.received} Received: header lines, more than ${limit} (MAX_RECEIVED_LINES): mail loop?`;
}

/** The status that returns a message delivered to `address` before (a Delivered-To: line names it), or null. */
export function forwardingLoop(facts: HeaderFacts, address: string): string | null {
  return facts.deliveredTo.has(address.toLowerCase()) ? `554 5.4.6 mail forwarding loop for <${address}>` : null;
}

/** The local users among `users` that a Delivered-To: line names as user@domain, for any of `domains`. */
export function deliveredBefore(facts: HeaderFacts, users: readonly string[], domains: readonly string[]): string[] {
  return users.filter((user) => domains.some((d) => d !== '' && facts.deliveredTo.has(`${user}@${d}`.toLowerCase())));
}

/**
 * The header section of a streamed message, and a stream that gives the whole message again
 * (what was read first, then the rest). Destroying the returned stream destroys the source.
 */
export async function peekHeader(stream: NodeJS.ReadableStream): Promise<{ header: Buffer; stream: Readable }> {
  const source = stream as AsyncIterable<Buffer | string> & NodeJS.ReadableStream;
  const it = source[Symbol.asyncIterator]();
  const read: Buffer[] = [];
  let size = 0;
  let ended = false;
  for (;;) {
    const next = await it.next();
    if (next.done) {
      ended = true;
      break;
    }
    const chunk = typeof next.value === 'string' ? Buffer.from(next.value, 'latin1') : next.value;
    read.push(chunk);
    size += chunk.length;
    // Look for the empty line in the newest chunk and the three octets before it.
    const tail = Buffer.concat(read.length > 1 ? [read[read.length - 2]!.subarray(-3), chunk] : [chunk]);
    if (tail.includes(BLANK_LINE) || size >= MAX_HEADER_READ) break;
  }
  const first = Buffer.concat(read);
  const rest = async function* () {
    try {
      yield first;
      if (ended) return;
      for (;;) {
        const next = await it.next();
        if (next.done) return;
        yield typeof next.value === 'string' ? Buffer.from(next.value, 'latin1') : next.value;
      }
    } finally {
      await it.return?.();
    }
  };
  const whole = Readable.from(rest(), { objectMode: false });
  // Destroyed before it was read, the generator never runs its finally: close the source here too.
  whole.once('close', () => (stream as Partial<Readable>).destroy?.());
  return { header: headerSectionOf(first), stream: whole };
}
