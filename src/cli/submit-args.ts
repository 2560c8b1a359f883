// The command line of `imsimta submit`, sendmail's options: what is not understood is a usage error.
import type { SubmitOptions } from '../queue/local-submission.js';
import { UsageError } from './errors.js';

/** sendmail's options that change nothing here (delivery modes, error modes, verbosity). */
const IGNORED = new Set(['-bm', '-odi', '-odb', '-odq', '-oem', '-oee', '-oep', '-oeq', '-oew', '-v', '-U', '-n', '-m', '-om', '-oom']);

/**
 * sendmail-style arguments: `-f sender` or `-fsender`, `-r` (the same), `-F name`, `-t`, `-i`,
 * `-oi`, `--root DIR`; other arguments are recipients (each may be a comma list).
 */
export function parseSubmitArgs(argv: string[]): SubmitOptions {
  const o: SubmitOptions = { root: null, from: null, fullName: null, extract: false, ignoreDots: false, recipients: [] };
  const value = (i: number, flag: string) => {
    const v = argv[i];
    if (v === undefined) throw new UsageError(`option ${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      o.recipients.push(...argv.slice(i + 1));
      break;
    }
    if (a === '--root' || a === '-root') o.root = value(++i, a);
    else if (a.startsWith('--root=')) o.root = a.slice(7);
    else if (a === '-t') o.extract = true;
    else if (a === '-i' || a === '-oi') o.ignoreDots = true;
    else if (a === '-f' || a === '-r') o.from = value(++i, a);
    else if (/^-[fr]./.test(a)) o.from = a.slice(2);
    else if (a === '-F') o.fullName = value(++i, a);
    else if (a.startsWith('-F')) o.fullName = a.slice(2);
    else if (IGNORED.has(a) || /^-o[A-Za-z]/.test(a) || /^-[BN]/.test(a)) continue;
    else if (a.startsWith('-') && a !== '-') throw new UsageError(`unknown option ${a}`);
    else o.recipients.push(a);
  }
  if (o.from !== null) {
    const f = o.from.trim();
    o.from = f === '<>' ? '' : f.replace(/^<(.*)>$/, '$1');
  }
  return o;
}
