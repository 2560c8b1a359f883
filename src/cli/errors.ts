// Errors a command reports to the operator as one line, never as a stack trace.

/** Wrong command or option: one usage line on stderr, exit 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
}

/** The command could not do its work (unreadable file, bad config, MTA down…): exit 1. */
export class CommandError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

/** The first line of an error's text: what an operator's one-line message shows. */
export function firstLine(text: string): string {
  return text.split('\n')[0] ?? text;
}
