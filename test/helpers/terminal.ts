// Runs an operator command on a new pseudo-terminal (test/helpers/pty-run.py: stdin, stdout and
// stderr all on it), answering prompts as they show; resolves with what the terminal showed.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { binDir, repoRoot } from './instance.js';

export interface PtyRun {
  /** Everything the terminal showed (stdout and stderr mixed, as a person sees them). */
  transcript: string;
  code: number;
  timed_out: boolean;
}

/** `bin/COMMAND ARGS` on a terminal; each [prompt, answer] is answered once the prompt shows. */
export function onTerminal(command: string, args: string[], opts: { answers?: Array<[string, string]>; timeoutS?: number } = {}): Promise<PtyRun> {
  const script = join(repoRoot, 'test/helpers/pty-run.py');
  const timeoutS = opts.timeoutS ?? 30;
  const argv = [script, String(timeoutS), ...(opts.answers ?? []).flat(), '--', join(binDir, command), ...args];
  return new Promise((resolve, reject) => {
    execFile('python3', argv, { timeout: (timeoutS + 15) * 1000, killSignal: 'SIGKILL', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`pty-run: ${err.message}\n${stderr}`));
      resolve(JSON.parse(stdout) as PtyRun);
    });
  });
}
