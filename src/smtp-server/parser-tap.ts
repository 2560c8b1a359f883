// Lets a connection see its command parser's input as it arrives, and the start and end of the
// DATA phase, without reading the socket itself (the library's parser stays its only reader).
// smtp-server pipes the socket into an SMTPStream (`dest.write(chunk)` per read), switches it to
// data mode in handler_DATA (`startDataMode`) and leaves data mode at the final dot
// (`_endDataMode(chunk, remainder, callback)`); these three are wrapped on the instance.
// test/reliability/slowloris.test.ts fails if a library upgrade changes them.
import type { SMTPStream } from 'smtp-server/lib/smtp-stream.js';

export interface ParserEvents {
  /** Octets from the client, before the parser reads them. */
  input(chunk: Buffer): void;
  /** 354 is about to be sent: the message follows. */
  dataStarted(): void;
  /** The final dot was read; `rest` came after it in the same read. */
  dataEnded(rest: Buffer): void;
}

export function tapParser(parser: SMTPStream, events: ParserEvents): SMTPStream {
  const write = parser.write.bind(parser) as (...args: unknown[]) => boolean;
  parser.write = function (...args: unknown[]): boolean {
    const chunk = args[0];
    if (Buffer.isBuffer(chunk)) events.input(chunk);
    return write(...args);
  } as typeof parser.write;

  const startDataMode = parser.startDataMode.bind(parser);
  parser.startDataMode = function (...args: Parameters<SMTPStream['startDataMode']>) {
    const stream = startDataMode(...args);
    events.dataStarted();
    return stream;
  };

  const endDataMode = parser._endDataMode.bind(parser);
  parser._endDataMode = function (...args: Parameters<SMTPStream['_endDataMode']>) {
    events.dataEnded(args[1] ?? Buffer.alloc(0));
    return endDataMode(...args);
  };
  return parser;
}
