// `imsimta test -alias [--source files|ldap] [--json] [ADDRESS…]`: what the directory makes of
// each address (addresses from the arguments, else one per line on stdin): the user or group it
// is, then everything mail to it becomes: mailboxes, addresses routed by the rewrite rules,
// discards, and members that fail (unknown, loops, include files that cannot be read) with the
// reason. The source is LDAP when option.dat sets LDAP_HOST, else the files of etc/ and
// mailbox/. Exit 0 when every address is known and expands without a failure, 1 otherwise, 75
// when the directory could not answer.
import { createInterface } from 'node:readline';
import { parseArgs } from '../args.js';
import { CommandError, UsageError, firstLine } from '../errors.js';
import { resolveRoot } from '../../common/instance.js';
import { loadInstanceConfigOrThrow } from '../../config/load.js';
import type { InstanceConfig } from '../../config/types.js';
import { expandRecipient, filesRecipients, LdapDirectory, localityOf, type ExpandedRecipient, type RecipientDirectory, type RecipientLookup } from '../../directory/index.js';

const USAGE = 'imsimta test -alias [--source files|ldap] [--json] [ADDRESS…]';
const EX_TEMPFAIL = 75;

export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['source'], ['alias', 'json']);
  let config: InstanceConfig;
  try {
    config = loadInstanceConfigOrThrow(resolveRoot(args.values.get('root')));
  } catch (err) {
    throw new CommandError(firstLine((err as Error).message));
  }
  const source = (args.values.get('source') ?? (config.options.ldap ? 'ldap' : 'files')).toLowerCase();
  if (source !== 'files' && source !== 'ldap') throw new UsageError(`--source is files or ldap (${USAGE})`);
  if (source === 'ldap' && !config.options.ldap) throw new CommandError('--source ldap: option.dat does not set LDAP_HOST');
  const directory = source === 'ldap' ? new LdapDirectory(config.options.ldap!) : filesRecipients(config);
  const locality = localityOf(config.imta);
  const isLocal = (address: string) => locality.localUserOf(address) !== null;
  const json = args.flags.has('json');
  let worst = 0;
  const show = async (address: string) => {
    const code = await showAddress(directory, address, isLocal, json);
    worst = code === EX_TEMPFAIL || worst === EX_TEMPFAIL ? EX_TEMPFAIL : Math.max(worst, code);
  };
  try {
    if (args.positionals.length > 0) {
      for (const address of args.positionals) await show(address);
    } else {
      const interactive = process.stdin.isTTY === true;
      const rl = createInterface({ input: process.stdin, output: interactive ? process.stdout : undefined, terminal: interactive });
      if (interactive) rl.setPrompt('Address: ');
      if (interactive) rl.prompt();
      for await (const line of rl) {
        if (line.trim()) await show(line.trim());
        if (interactive) rl.prompt();
      }
    }
  } finally {
    if (directory instanceof LdapDirectory) await directory.close();
  }
  return worst;
}

async function showAddress(directory: RecipientDirectory, address: string, isLocal: (a: string) => boolean, json: boolean): Promise<number> {
  const lookup = await directory.findRecipient(address);
  const items: ExpandedRecipient[] = [];
  if (lookup.kind === 'user' || lookup.kind === 'group') for await (const item of expandRecipient(directory, address, { isLocal })) items.push(item);
  const code = lookup.kind === 'unavailable' || items.some((i) => i.kind === 'unavailable') ? EX_TEMPFAIL : lookup.kind === 'none' || items.some((i) => i.kind === 'failed') ? 1 : 0;
  if (json) process.stdout.write(`${JSON.stringify({ address, source: directory.source, lookup, expansion: items })}\n`);
  else process.stdout.write(`${address}: ${describeLookup(lookup)}\n${items.map((i) => `  ${describeItem(i)}\n`).join('')}`);
  return code;
}

function describeLookup(l: RecipientLookup): string {
  switch (l.kind) {
    case 'user':
      return `user ${l.user} <${l.address}> (delivery options: ${l.deliveryOptions.join(', ')}${l.mailbox ? `; mailbox ${l.mailbox}` : ''}${l.forwarding.length ? `; forwarding to ${l.forwarding.join(', ')}` : ''})`;
    case 'group':
      return `group <${l.address}> (${l.id}${l.owner ? `; owner ${l.owner}` : ''})`;
    case 'none':
      return 'no such user or group';
    case 'unavailable':
      return `the directory cannot answer now: ${l.why}`;
  }
}

function describeItem(i: ExpandedRecipient): string {
  const via = 'via' in i && i.via.length > 0 ? `   (via ${i.via.join(' → ')})` : '';
  switch (i.kind) {
    case 'mailbox':
      return `mailbox ${i.mailbox} <${i.address}>${via}`;
    case 'route':
      return `route <${i.address}>${i.list?.owner ? ` from <${i.list.owner}>` : ''}${via}`;
    case 'discard':
      return `discard${via}`;
    case 'failed':
      return `FAILED ${i.member}: ${i.why}${via}`;
    case 'unavailable':
      return `UNAVAILABLE: ${i.why} (the whole expansion would be tried again later)`;
  }
}
