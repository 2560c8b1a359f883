// Expands one local recipient into what mail to it becomes, for any directory source: a user's
// mailbox and forwarding addresses, a group's members (nested groups, `:include:` files, DN
// members), streamed so that a 100,000-member list is never in memory at once. Loops (a group
// that contains itself, directly or through others; forwarding that comes back) and members
// that cannot be delivered to are reported as `failed` items for the caller to log and to tell
// the list's owner, never dropped in silence; a directory that cannot answer ends the expansion
// with one `unavailable` item (the caller defers the whole message: what came before it is
// incomplete). Each group is expanded once per expansion (a member of two nested lists gets
// one copy); a mailbox or routed address reached twice is given once, up to `dedupeLimit`
// distinct ones (beyond it, memory stays bounded and duplicates go through).
import { addressParts, joinAddress } from './local-part.js';
import { unquoteLocalPart } from '../rewrite/index.js';
import { readIncludeFile } from './include-file.js';
import { prefetch } from './prefetch.js';
import type { GroupRecipient, ListMember, RecipientDirectory, RecipientLookup } from './types.js';

/** The innermost list an item came through: its address and owner (envelope sender of list mail, where errors go). */
export interface ListContext {
  address: string;
  owner: string | null;
}

export type FailureReason = 'unknown' | 'loop' | 'include' | 'invalid' | 'too-deep' | 'no-delivery';

export type ExpandedRecipient =
  /** Deliver into mailbox/<mailbox>/. `address` is the user's address as the directory knows it. */
  | { kind: 'mailbox'; mailbox: string; address: string; list: ListContext | null; via: readonly string[] }
  /** An address this directory does not hold (remote, or another channel's): route it with the rewrite rules. */
  | { kind: 'route'; address: string; list: ListContext | null; via: readonly string[] }
  /** `/dev/null`. */
  | { kind: 'discard'; list: ListContext | null; via: readonly string[] }
  /** A member that gets nothing; `why` is for the log and the owner's report. */
  | { kind: 'failed'; member: string; reason: FailureReason; why: string; list: ListContext | null; via: readonly string[] }
  /** The directory could not answer: stop, defer the whole message. Always the last item. */
  | { kind: 'unavailable'; why: string };

export interface ExpandOptions {
  /** Whether an address is this host's (the rewrite rules route it to channel l): such members are looked up; others are routed as they are. */
  isLocal: (address: string) => boolean;
  /** Nesting (groups, forwarding, include files) deeper than this fails (default 20). */
  maxDepth?: number;
  /** Member lookups run ahead of the one being handled (default 16). */
  lookahead?: number;
  /** Distinct mailboxes and routed addresses remembered to give each once (default 10,000). */
  dedupeLimit?: number;
  /** Reads an `:include:` file (default readIncludeFile). */
  readInclude?: (path: string) => AsyncIterable<ListMember>;
}

interface Node {
  key: string;
  name: string;
}

/** The directory cannot answer: ends the expansion, caught by expandRecipient (an Error, as only errors are thrown). */
class Unavailable extends Error {
  constructor(readonly why: string) {
    super(why);
  }
}

/** Everything mail to `address` becomes, as a stream. */
export async function* expandRecipient(directory: RecipientDirectory, address: string, opts: ExpandOptions): AsyncGenerator<ExpandedRecipient, void, undefined> {
  const expander = new Expander(directory, opts);
  try {
    yield* expander.visit(await safeLookup(directory, address), address, [], null);
  } catch (err) {
    if (!(err instanceof Unavailable)) throw err;
    yield { kind: 'unavailable', why: err.why };
  }
}

async function safeLookup(directory: RecipientDirectory, address: string): Promise<RecipientLookup> {
  try {
    return await directory.findRecipient(address);
  } catch (err) {
    return { kind: 'unavailable', why: `lookup of ${address} failed: ${(err as Error).message}` };
  }
}

class Expander {
  private readonly maxDepth: number;
  private readonly lookahead: number;
  private readonly dedupeLimit: number;
  private readonly readInclude: (path: string) => AsyncIterable<ListMember>;
  private readonly expandedGroups = new Set<string>();
  private readonly given = new Set<string>();

  constructor(
    private readonly directory: RecipientDirectory,
    private readonly opts: ExpandOptions,
  ) {
    this.maxDepth = opts.maxDepth ?? 20;
    this.lookahead = opts.lookahead ?? 16;
    this.dedupeLimit = opts.dedupeLimit ?? 10_000;
    this.readInclude = opts.readInclude ?? readIncludeFile;
  }

  async *visit(lookup: RecipientLookup, member: string, chain: readonly Node[], list: ListContext | null): AsyncGenerator<ExpandedRecipient, void, undefined> {
    const via = chain.map((n) => n.name);
    const failed = (reason: FailureReason, why: string): ExpandedRecipient => ({ kind: 'failed', member, reason, why, list, via });
    switch (lookup.kind) {
      case 'unavailable':
        throw new Unavailable(lookup.why);
      case 'none':
        yield failed('unknown', `no such user: ${member}`);
        return;
      case 'user': {
        const node = { key: `user:${lookup.user.toLowerCase()}`, name: lookup.address };
        if (chain.some((n) => n.key === node.key)) return yield failed('loop', loopText(chain, node));
        if (chain.length >= this.maxDepth) return yield failed('too-deep', `nested more than ${this.maxDepth} levels deep`);
        if (lookup.mailbox !== null && this.firstTime(`mailbox:${lookup.mailbox}`)) {
          yield { kind: 'mailbox', mailbox: lookup.mailbox, address: lookup.address, list, via };
        }
        for (const forward of lookup.forwarding) yield* this.member({ kind: 'address', address: forward }, [...chain, node], list, lookup.address);
        if (lookup.mailbox === null && lookup.forwarding.length === 0) {
          yield failed('no-delivery', `${lookup.address} has no delivery option tsubame acts on (${lookup.deliveryOptions.join(', ') || 'none'})`);
        }
        return;
      }
      case 'group': {
        const node = { key: `group:${lookup.id.toLowerCase()}`, name: lookup.address };
        if (chain.some((n) => n.key === node.key)) {
          // `root: root, …`: the alias's own name is its mailbox.
          if (chain[chain.length - 1]!.key === node.key && lookup.selfMailbox !== null) {
            if (this.firstTime(`mailbox:${lookup.selfMailbox}`)) yield { kind: 'mailbox', mailbox: lookup.selfMailbox, address: lookup.address, list, via };
            return;
          }
          return yield failed('loop', loopText(chain, node));
        }
        if (this.expandedGroups.has(node.key)) return; // reached before through another list
        if (chain.length >= this.maxDepth) return yield failed('too-deep', `nested more than ${this.maxDepth} levels deep`);
        this.expandedGroups.add(node.key);
        yield* this.members(this.directory.listMembers(lookup.id), [...chain, node], groupContext(lookup, list), lookup.address);
        return;
      }
    }
  }

  /** The members of a group or an include file, with lookups running ahead. */
  private async *members(source: AsyncIterable<ListMember>, chain: readonly Node[], list: ListContext | null, parentAddress: string): AsyncGenerator<ExpandedRecipient, void, undefined> {
    const domain = addressParts(parentAddress)?.domain ?? null;
    const start = (m: ListMember): Promise<RecipientLookup> | null => {
      const address = this.lookedUpAddress(m, domain);
      return address === null ? null : safeLookup(this.directory, address);
    };
    for await (const { item, result } of prefetch(source, start, this.lookahead)) {
      if (result) {
        const address = this.lookedUpAddress(item, domain)!;
        yield* this.visit(await result, address, chain, list);
      } else yield* this.member(item, chain, list, parentAddress, true);
    }
  }

  /** The address a member is looked up by, or null when it is not looked up (routed, discarded, an include file…). */
  private lookedUpAddress(m: ListMember, domain: string | null): string | null {
    if (m.kind === 'local') return domain === null ? null : joinAddress(unquoteLocalPart(m.name), domain);
    if (m.kind === 'address' && this.opts.isLocal(m.address)) return m.address;
    return null;
  }

  /**
   * A member that is not looked up ahead (forwarding addresses are, one at a time); `notLookedUp`:
   * members() found it is not one to look up (asking isLocal again would rewrite it again).
   */
  private async *member(m: ListMember, chain: readonly Node[], list: ListContext | null, parentAddress: string, notLookedUp = false): AsyncGenerator<ExpandedRecipient, void, undefined> {
    const via = chain.map((n) => n.name);
    switch (m.kind) {
      case 'address':
      case 'local': {
        const address = notLookedUp ? null : this.lookedUpAddress(m, addressParts(parentAddress)?.domain ?? null);
        if (address !== null) return yield* this.visit(await safeLookup(this.directory, address), address, chain, list);
        if (m.kind === 'local') return yield { kind: 'failed', member: m.name, reason: 'invalid', why: `a bare name in ${parentAddress}, which has no domain`, list, via };
        if (this.firstTime(`route:${m.address.toLowerCase()}`)) yield { kind: 'route', address: m.address, list, via };
        return;
      }
      case 'resolved':
        return yield* this.visit(m.lookup, m.member, chain, list);
      case 'discard':
        return yield { kind: 'discard', list, via };
      case 'invalid':
        return yield { kind: 'failed', member: m.member, reason: 'invalid', why: m.why, list, via };
      case 'unavailable':
        throw new Unavailable(m.why);
      case 'include': {
        const node = { key: `include:${m.path}`, name: `:include:${m.path}` };
        if (chain.some((n) => n.key === node.key)) return yield { kind: 'failed', member: node.name, reason: 'loop', why: loopText(chain, node), list, via };
        if (chain.length >= this.maxDepth) return yield { kind: 'failed', member: node.name, reason: 'too-deep', why: `nested more than ${this.maxDepth} levels deep`, list, via };
        for await (const item of this.members(this.readInclude(m.path), [...chain, node], list, parentAddress)) {
          // A file that cannot be read is the include's failure, not an invalid member.
          if (item.kind === 'failed' && item.reason === 'invalid' && item.member === node.name) yield { ...item, reason: 'include' };
          else yield item;
        }
        return;
      }
    }
  }

  /** Whether this mailbox or routed address is given for the first time (remembered up to dedupeLimit). */
  private firstTime(key: string): boolean {
    if (this.given.has(key)) return false;
    if (this.given.size < this.dedupeLimit) this.given.add(key);
    return true;
  }
}

function groupContext(group: GroupRecipient, outer: ListContext | null): ListContext {
  // A list without an owner keeps the envelope sender it was given (the outer list's owner, else the message's).
  return { address: group.address, owner: group.owner ?? outer?.owner ?? null };
}

function loopText(chain: readonly Node[], again: Node): string {
  const from = chain.findIndex((n) => n.key === again.key);
  return `loop: ${[...chain.slice(from).map((n) => n.name), again.name].join(' → ')}`;
}
