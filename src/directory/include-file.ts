// Reads an `:include:` member file as a stream of members, line by line, so that a list of
// 100,000 addresses is never in memory at once. A file that is missing, unreadable or not a
// regular file is one `invalid` member that says why (the caller reports it to the list's
// owner): never a crash and never a silent drop.
import { open } from 'node:fs/promises';
import { aliasMember, includeLineTargets } from './alias-members.js';
import type { ListMember } from './types.js';

/** Lines longer than this are cut off and reported (a file of one huge line would otherwise be read whole). */
const MAX_LINE = 64 * 1024;

export async function* readIncludeFile(path: string): AsyncGenerator<ListMember> {
  const member = `:include:${path}`;
  let fh;
  try {
    fh = await open(path, 'r');
    const st = await fh.stat();
    if (!st.isFile()) {
      yield { kind: 'invalid', member, why: `cannot read ${path}: not a regular file` };
      return;
    }
  } catch (err) {
    await fh?.close();
    yield { kind: 'invalid', member, why: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
    return;
  }
  try {
    let lineNo = 0;
    for await (const line of fh.readLines({ encoding: 'utf8' })) {
      lineNo++;
      if (line.length > MAX_LINE) {
        yield { kind: 'invalid', member: `${member}:${lineNo}`, why: `line ${lineNo} is longer than ${MAX_LINE} characters` };
        continue;
      }
      for (const target of includeLineTargets(line)) {
        const m = aliasMember(target);
        if (m) yield m;
      }
    }
  } catch (err) {
    yield { kind: 'invalid', member, why: `reading ${path} failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  } finally {
    await fh.close().catch(() => {});
  }
}
