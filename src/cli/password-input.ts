// Reads a password for a command: from a terminal without echo (the terminal in raw mode, so
// nothing typed is shown; backspace, Ctrl-U, Ctrl-C and Ctrl-D work as in passwd), or, when
// standard input is not a terminal, as its one line (for scripts).
import type { ReadStream } from 'node:tty';
import type { Writable } from 'node:stream';
import { CommandError } from './errors.js';

/** Most bytes read from a pipe: a password is one short line. */
const MAX_STDIN_BYTES = 64 * 1024;

/** The first line of a non-terminal input; anything but an empty rest is refused (it was not meant as one password). */
export async function readPasswordLine(input: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of input) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += b.length;
    if (size > MAX_STDIN_BYTES) throw new CommandError(`standard input holds more than ${MAX_STDIN_BYTES} bytes: give the password alone on one line`);
    chunks.push(b);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text === '') throw new CommandError('no password on standard input (give it on one line, or run on a terminal to be asked)');
  const newline = text.indexOf('\n');
  const line = (newline < 0 ? text : text.slice(0, newline)).replace(/\r$/, '');
  const rest = newline < 0 ? '' : text.slice(newline + 1);
  if (rest.trim() !== '') throw new CommandError('standard input holds more than one line: give the password alone on one line');
  return line;
}

/**
 * Reads lines typed on a terminal without echoing them; keeps what was typed ahead for the next
 * prompt. The terminal stays in raw mode from the first prompt until close(): switched back in
 * between, it would echo what is typed ahead.
 */
export class HiddenPrompt {
  private pending = '';
  private raw = false;

  constructor(
    private readonly input: ReadStream,
    private readonly output: Writable,
  ) {}

  /** Gives the terminal back as it was. */
  close(): void {
    if (!this.raw) return;
    this.input.setRawMode(false);
    this.input.pause();
    this.raw = false;
  }

  ask(prompt: string): Promise<string> {
    const input = this.input;
    // Raw before the prompt shows: an answer typed as soon as it appears is not echoed.
    if (!this.raw) {
      input.setRawMode(true);
      input.setEncoding('utf8');
      this.raw = true;
    }
    this.output.write(prompt);
    return new Promise<string>((resolve, reject) => {
      let typed = '';
      const finish = (err: Error | null) => {
        input.off('data', onData);
        input.off('end', onEnd);
        input.pause();
        this.output.write('\n');
        if (err) reject(err);
        else resolve(typed);
      };
      const consume = (text: string): boolean => {
        const chars = [...text];
        for (let i = 0; i < chars.length; i++) {
          const c = chars[i]!;
          if (c === '\r' || c === '\n') {
            // A CR LF pair (or a paste) ends one line; the rest waits for the next prompt.
            const skip = c === '\r' && chars[i + 1] === '\n' ? 2 : 1;
            this.pending = chars.slice(i + skip).join('');
            finish(null);
            return true;
          }
          if (c === '\u0003') {
            finish(new CommandError('interrupted: nothing changed', 130));
            return true;
          }
          if (c === '\u0004') {
            if (typed === '') finish(new CommandError('no password given: nothing changed'));
            else finish(null);
            return true;
          }
          if (c === '\u007f' || c === '\b') typed = [...typed].slice(0, -1).join('');
          else if (c === '\u0015') typed = '';
          else if (c >= ' ') typed += c;
        }
        return false;
      };
      const onData = (chunk: string) => void consume(chunk);
      const onEnd = () => finish(new CommandError('the terminal closed: nothing changed'));
      const ahead = this.pending;
      this.pending = '';
      if (consume(ahead)) return;
      input.on('data', onData);
      input.on('end', onEnd);
      input.resume();
    });
  }
}
