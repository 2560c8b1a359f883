// What `imsimta cnbuild` says of etc/aliases beyond its syntax: each alias expanded as the local
// channel would expand it (expand.ts over the files source), and every member that would get
// nothing (an unknown user, a loop, a program or file target, an `:include:` file that is
// missing or unreadable) a warning at the alias's line, so a typo is found before the list's
// owner gets a notice for every message. Each member is reported once, for the alias that
// names it (through its `:include:` files), not again for every alias that contains that one;
// a loop is reported for each alias in it.
// With LDAP configured, members are looked up there at delivery: unknown ones are not reported
// here (cnbuild does not ask the directory), the rest is.
import { readFileSync } from 'node:fs';
import { aliasEntries } from '../config/aliases.js';
import type { Diagnostic, InstanceConfig } from '../config/types.js';
import { expandRecipient } from './expand.js';
import { filesRecipients } from './files-recipients.js';
import { joinAddress } from './local-part.js';
import { localityOf } from './locality.js';

/** Warnings per alias before the rest are counted. */
const MAX_PER_ALIAS = 20;

export async function checkAliasMembers(config: InstanceConfig, file: string): Promise<Diagnostic[]> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return []; // reported by the configuration's own check
  }
  const lines = new Map<string, number>();
  for (const e of aliasEntries(text)) if ('name' in e) lines.set(e.name, e.line);
  const directory = filesRecipients(config);
  const locality = localityOf(config.imta, { localHost: config.options.localHost });
  const withLdap = Boolean(config.options.ldap);
  const domain = config.options.localHost;
  const out: Diagnostic[] = [];
  for (const [name, line] of lines) {
    if (!config.aliases.has(name)) continue;
    const address = joinAddress(name, domain);
    let count = 0;
    for await (const item of expandRecipient(directory, address, { isLocal: (a) => locality.isLocal(a) })) {
      if (item.kind !== 'failed' || (withLdap && item.reason === 'unknown')) continue;
      // The alias that names the member: the last list of its chain (an include file is its alias's).
      // A loop is every looping alias's own problem.
      const owner = [...item.via].reverse().find((v) => !v.startsWith(':include:'));
      if (item.reason !== 'loop' && owner !== undefined && owner.toLowerCase() !== address.toLowerCase()) continue;
      if (++count <= MAX_PER_ALIAS) out.push({ file, line, severity: 'warning', message: `alias ${name}: ${item.why}${item.reason === 'unknown' ? ' (its mail would be returned to the list owner or sender)' : ''}` });
    }
    if (count > MAX_PER_ALIAS) out.push({ file, line, severity: 'warning', message: `alias ${name}: ${count - MAX_PER_ALIAS} more members that get nothing` });
  }
  return out;
}
