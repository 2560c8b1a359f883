// The channel keywords tsubame knows, with the arguments each takes. Keywords are
// case-insensitive; an unknown one is a warning (Messaging Server treats it as a group name).
// Some keywords exclude each other (EXCLUSIVE_GROUPS): two of one group in a block are an error.
import { AUTH_CHANNEL_KEYWORDS, AUTH_EXCLUSIVE_KEYWORDS } from './auth-options.js';
import { MILTER_CHANNEL_KEYWORDS } from './milter-options.js';

export type KeywordArgs =
  | { kind: 'flag' }
  | { kind: 'integer'; min: number; max?: number }
  | { kind: 'word' } // one bare argument: a channel, pool, host list, address
  | { kind: 'durations'; max: number } // quoted ISO 8601 durations (backoff)
  | { kind: 'ages'; max: number }; // numbers or durations (notices)

const flag: KeywordArgs = { kind: 'flag' };
const count = (min = 0, max?: number): KeywordArgs => ({ kind: 'integer', min, max });
const word: KeywordArgs = { kind: 'word' };

const FLAGS = `smtp nosmtp smtp_cr smtp_crlf smtp_lf smtp_crorlf lmtp submit ehlo noehlo checkehlo
  mx nomx randommx nonrandommx defaultmx single single_sys multiple
  immediate immurgent immnormal immnonurgent periodic master slave bidirectional
  reverse noreverse rules norules bangoverpercent nobangoverpercent percentonly
  master_debug nomaster_debug slave_debug noslave_debug loopcheck noloopcheck
  identnone identnonelimited identnonenumeric identnonesymbolic identtcp identtcplimited identtcpnumeric identtcpsymbolic
  forwardchecknone forwardchecktag forwardcheckdelete
  notls maytls musttls maytlsclient maytlsserver musttlsclient musttlsserver
  nosasl nosaslserver maysaslserver mustsaslserver maysasl mustsasl nosaslclient maysaslclient mustsaslclient nosaslswitchchannel
  saslcleartext nosaslcleartext senderloginmatch nosenderloginmatch
  switchchannel allowswitchchannel noswitchchannel
  holdexquota noexquota cacheeverything cachefailures cachesuccesses nocache
  sendpost copysendpost errsendpost nosendpost warnpost copywarnpost errwarnpost nowarnpost postheadonly postheadbody
  noblocklimit nolinelimit remotehost noremotehost inner noinner defragment nodefragment aliaspostmaster
  pipelining nopipelining exproute noexproute improute noimproute restricted unrestricted
  dequeue_removeroute noreceivedfor receivedfor
  dkimsign nodkimsign verp noverp sourcesrs nosourcesrs destinationsrs nodestinationsrs addresssrs noaddresssrs`.split(/\s+/).concat(AUTH_CHANNEL_KEYWORDS, MILTER_CHANNEL_KEYWORDS);

const INTEGERS: Record<string, KeywordArgs> = {
  port: count(1, 65535),
  maxjobs: count(1),
  subdirs: count(0, 1000),
  threaddepth: count(1),
  filesperjob: count(0),
  addrsperjob: count(0),
  addrsperfile: count(0),
  expandlimit: count(0),
  holdlimit: count(0),
  maxblocks: count(1),
  maxlines: count(1),
  blocklimit: count(0),
  sourceblocklimit: count(0),
  linelimit: count(0),
  transactionlimit: count(1),
  recipientlimit: count(1),
  disconnectrecipientlimit: count(1),
  disconnectrejectlimit: count(1),
  disconnecttransactionlimit: count(1),
  disconnectbadcommandlimit: count(1),
  disconnectbadauthlimit: count(1),
  // tsubame's delivery tunables (MAX_CLIENT_THREADS of Messaging Server's tcp_*_option, per channel here).
  rcptpertransaction: count(1, 1000),
  maxclientthreads: count(1, 10000),
};

const WORDS = `daemon pool tlsswitchchannel saslswitchchannel expandchannel interfaceaddress returnaddress returnpersonal
  envelopesender after`.split(/\s+/);

const DURATION_LISTS = ['backoff', 'urgentbackoff', 'normalbackoff', 'nonurgentbackoff'];
const AGE_LISTS = ['notices', 'urgentnotices', 'normalnotices', 'nonurgentnotices'];

export const CHANNEL_KEYWORDS: ReadonlyMap<string, KeywordArgs> = new Map<string, KeywordArgs>([
  ...FLAGS.map((k) => [k, flag] as [string, KeywordArgs]),
  ...Object.entries(INTEGERS),
  ...WORDS.map((k) => [k, word] as [string, KeywordArgs]),
  ...DURATION_LISTS.map((k) => [k, { kind: 'durations', max: 8 }] as [string, KeywordArgs]),
  ...AGE_LISTS.map((k) => [k, { kind: 'ages', max: 5 }] as [string, KeywordArgs]),
]);

/**
 * Groups of keywords a channel block may write one of (each sets one action; two would leave it to
 * the order of the words). A channel's own keyword replaces one of its group from `defaults`.
 */
const EXCLUSIVE_GROUPS: readonly string[][] = [...AUTH_EXCLUSIVE_KEYWORDS];

/** The exclusive group `keyword` belongs to, or null. */
export function exclusiveGroupOf(keyword: string): readonly string[] | null {
  return EXCLUSIVE_GROUPS.find((g) => g.includes(keyword)) ?? null;
}
