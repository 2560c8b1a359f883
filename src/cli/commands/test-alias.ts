// `imsimta test -alias [--source files|ldap] [--json] [ADDRESS…]`: what the directory makes of
// each address (addresses from the arguments, else one per line on stdin): the user or group it
// is, then everything mail to it becomes: mailboxes, addresses routed by the rewrite rules,
// discards, and members that fail (unknown, loops, include files that cannot be read) with the
// reason; an address routed elsewhere is shown with the channel the rewrite rules give it (where
// the local channel queues its copy). The source is LDAP when option.dat sets LDAP_HOST, else the
// files of etc/ and mailbox/ (directory/source.ts). Exit 0 when every address is known and expands without a failure, 1 otherwise, 75
// when the directory could not answer.
import { createInterface } from 'node:readline';
import { parseArgs } from '../args.js';
import { CommandError, UsageError, firstLine } from '../errors.js';
import { resolveRoot } from '../../common/instance.js';
import { loadInstanceConfigOrThrow } from '../../config/load.js';
import type { InstanceConfig } from '../../config/types.js';
import { directorySourceOf, expandRecipient, filesHostedDomains, filesRecipients, localityOf, openDirectory, type ExpandedRecipient, type RecipientDirectory, type RecipientLookup } from '../../directory/index.js';
import { LOCAL_CHANNEL, compileRewriter, routeRecipient } from '../../rewrite/index.js';

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
  const source = (args.values.get('source') ?? directorySourceOf(config)).toLowerCase();
  if (source !== 'files' && source !== 'ldap') throw new UsageError(`--source is files or ldap (${USAGE})`);
  if (source === 'ldap' && !config.options.ldap) throw new CommandError('--source ldap: option.dat does not set LDAP_HOST');
  const opened = source === directorySourceOf(config) ? openDirectory(config) : null;
  const directory: RecipientDirectory = opened ?? filesRecipients(config);
  const hostedDomains = opened?.hostedDomains ?? filesHostedDomains(config);
  await hostedDomains.ready();
  const rewriter = compileRewriter(config.imta, { hostedDomains });
  const locality = localityOf(config.imta, { rewriter, localHost: config.options.localHost });
  const isLocal = (address: string) => locality.isLocal(address);
  const channelOf = (address: string): string | null => {
    const route = routeRecipient(rewriter.rewrite(address, { sourceChannel: LOCAL_CHANNEL, direction: 'to' }), config.imta.channelByName);
    return route.ok ? route.channel.name : null;
  };
  const json = args.flags.has('json');
  let worst = 0;
  const show = async (address: string) => {
    const code = await showAddress(directory, address, { isLocal, channelOf }, json);
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
    await opened?.close();
  }
  return worst;
}

/** An expansion item, with the channel a routed address goes to (null: no rule routes it). */
type ShownItem = ExpandedRecipient | (Extract<ExpandedRecipient, { kind: 'route' }> & { channel: string | null });

async function showAddress(directory: RecipientDirectory, address: string, how: { isLocal: (a: string) => boolean; channelOf: (a: string) => string | null }, json: boolean): Promise<number> {
  const lookup = await directory.findRecipient(address);
  const items: ShownItem[] = [];
  if (lookup.kind === 'user' || lookup.kind === 'group') {
    for await (const item of expandRecipient(directory, address, { isLocal: how.isLocal })) items.push(item.kind === 'route' ? { ...item, channel: how.channelOf(item.address) } : item);
  }
  const unroutable = items.some((i) => i.kind === 'route' && 'channel' in i && i.channel === null);
  const code = lookup.kind === 'unavailable' || items.some((i) => i.kind === 'unavailable') ? EX_TEMPFAIL : lookup.kind === 'none' || unroutable || items.some((i) => i.kind === 'failed') ? 1 : 0;
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

function describeItem(i: ShownItem): string {
  const via = 'via' in i && i.via.length > 0 ? `   (via ${i.via.join(' → ')})` : '';
  switch (i.kind) {
    case 'mailbox':
      return `mailbox ${i.mailbox} <${i.address}>${via}`;
    case 'route': {
      const channel = 'channel' in i ? (i.channel === null ? ' → no channel: no rewrite rule routes it' : ` → channel ${i.channel}`) : '';
      return `route <${i.address}>${channel}${i.list?.owner ? ` from <${i.list.owner}>` : ''}${via}`;
    }
    case 'discard':
      return `discard${via}`;
    case 'failed':
      return `FAILED ${i.member}: ${i.why}${via}`;
    case 'unavailable':
      return `UNAVAILABLE: ${i.why} (the whole expansion would be tried again later)`;
  }
}
