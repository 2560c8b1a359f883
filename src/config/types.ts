// Typed, validated configuration: the plain data every other part reads.
// Parsers in this folder turn the files of etc/ into these shapes and
// report every problem as a Diagnostic with file:line.
import type { KeyObject } from 'node:crypto';
import type { Cidr } from '../common/cidr.js';
import type { MappingTable, MappingsConfig } from '../mappings/types.js';
import type { MilterOptions } from './milter-options.js';
import type { ScryptHash } from './hash-format.js';

export type Severity = 'error' | 'warning';

export interface Diagnostic {
  file: string; // path as given to the parser (usually absolute)
  line: number; // 1-based; 0 when the problem is about the whole file
  severity: Severity;
  message: string;
}

/** `file:line: severity: message`, the one-line form operators see. */
export function formatDiagnostic(d: Diagnostic): string {
  return `${visible(d.file)}:${d.line}: ${d.severity}: ${visible(d.message)}`;
}

/** Control characters quoted from a damaged file (CR, ESC…) shown as `\xNN`, so a diagnostic stays one line on a terminal. */
function visible(text: string): string {
  return text.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

// ---------------------------------------------------------------- imta.cnf

export interface RewriteRule {
  pattern: string; // as written (matching is case-insensitive)
  template: string; // as written (case kept)
  file: string;
  line: number;
}

export type MxMode = 'mx' | 'nomx' | 'randommx' | 'nonrandommx' | 'defaultmx';
export type CopyMode = 'single' | 'single_sys' | 'multiple';
export type TlsMode = 'notls' | 'maytls' | 'musttls';

/** One channel block of imta.cnf with its keywords resolved (defaults applied). */
export interface Channel {
  name: string;
  /** Every keyword as written (lower-cased name → arguments), after the `defaults` block was merged in. */
  keywords: Record<string, string[]>;
  /** Host lines: the first is the official host (or tag); every one is a routing name. */
  officialHost: string;
  hosts: string[];
  file: string;
  line: number;

  smtp: boolean;
  lmtp: boolean;
  mx: MxMode;
  daemon: string[] | null; // smart hosts, tried in order
  port: number | null;
  copies: CopyMode;
  addrsPerFile: number | null; // null = unlimited
  subdirs: number; // 0 = flat
  maxJobs: number; // default 100
  pool: string | null; // null = the first pool of job_controller.cnf
  threadDepth: number; // default 10
  filesPerJob: number; // 0 = one job
  addrsPerJob: number; // 0 = one job
  backoffMs: number[] | null; // null = Messaging Server's built-in schedule
  noticesMs: number[] | null; // null = the l channel's, else 3 6 9 12 days
  immediate: boolean; // false with `periodic`
  tlsClient: TlsMode; // from maytls/musttls/maytlsclient/musttlsclient
  tlsServer: TlsMode; // from maytls/musttls/maytlsserver/musttlsserver
  pipelining: boolean; // false with `nopipelining`
  masterDebug: boolean;
  slaveDebug: boolean;
  /** Envelope sender used for deliveries from this channel (fml's SMTP_SENDER); null = keep. */
  senderRewrite: string | null;
  /** Most RCPT per SMTP transaction (`recipientlimit`-like; default 100). */
  rcptPerTransaction: number;
  /** Most simultaneous outbound connections of one job (MAX_CLIENT_THREADS-like; default 20). */
  maxClientConnections: number;
  /** `dkimsign`: messages queued to this channel get a DKIM signature when etc/dkim/keys has a key for their From: domain. */
  dkimSign: boolean;
  /**
   * `verp`: each recipient of a message with a non-empty envelope sender gets its own envelope
   * sender, `owner+member=domain@owner.domain` (src/delivery/verp.ts), so one RCPT per
   * transaction. Absent = false (`noverp`).
   */
  verp?: boolean;
  /** Messaging Server's SRS keywords (sourcesrs, destinationsrs, addresssrs; default all off). */
  srs?: SrsChannelFlags;
  /** SMTP AUTH on the channel (maysaslserver, mustsaslserver, saslswitchchannel…); absent = the defaults (nosasl). */
  sasl?: ChannelSasl;
}

export type SaslMode = 'none' | 'may' | 'must';

/** A channel's SMTP AUTH keywords (Messaging Server's names where it has them). */
export interface ChannelSasl {
  /** nosasl/nosaslserver (default), maysaslserver: AUTH offered, mustsaslserver: no MAIL before AUTH. */
  server: SaslMode;
  /** nosaslclient (default), maysaslclient: AUTH to the server when it offers it, mustsaslclient: no mail without it. */
  client: SaslMode;
  /** saslswitchchannel: the channel an authenticated session's mail comes in on (null: nosaslswitchchannel). */
  switchChannel: string | null;
  /** saslcleartext (tsubame's): AUTH offered without TLS too (default nosaslcleartext: only over TLS). */
  cleartext: boolean;
  /** senderloginmatch (default) / nosenderloginmatch (tsubame's): an authenticated user may use only its own addresses in MAIL FROM. */
  senderLoginMatch: boolean;
  /** disconnectbadauthlimit: failed AUTH commands in one session before it is closed with 421 (default 3). */
  badAuthLimit: number;
}

/** When a forwarded copy's envelope sender is SRS-encoded: all three must hold (see src/srs/decision.ts). */
export interface SrsChannelFlags {
  /** `sourcesrs`: mail that came in on this channel may be rewritten. */
  source: boolean;
  /** `destinationsrs`: copies queued to this channel may be rewritten. */
  destination: boolean;
  /** `addresssrs`: a MAIL FROM address that rewrites to this channel (a sender outside) is rewritten. */
  address: boolean;
}

export interface ImtaConfig {
  rules: RewriteRule[];
  channels: Channel[];
  /** Channel by name (lower-case key). */
  channelByName: Map<string, Channel>;
  /** Every host line of every channel (lower-case key) → channel name. First definition wins. */
  hostTable: Map<string, string>;
}

// ---------------------------------------------------------- dispatcher.cnf

export type AcceptMode = 'shared' | 'handoff';

export interface DispatcherService {
  name: string;
  /** Every port the service listens on: PORT's, then TLS_PORT's. */
  ports: number[];
  /** TLS_PORT: the ports of `ports` where TLS starts at connect (RFC 8314 implicit TLS, SMTPS); absent = none. */
  tlsPorts?: number[];
  interfaceAddress: string | null; // null = all interfaces
  minProcs: number;
  maxProcs: number;
  minConns: number;
  maxConns: number;
  maxHandoffs: number;
  backlog: number;
  maxLifeTimeSec: number;
  maxLifeConns: number;
  maxIdleTimeSec: number; // 0 = never retire for idleness
  maxShutdown: number;
  /**
   * ACCEPT_MODE: `shared`, the server processes accept from the listening socket themselves (the
   * default); `handoff`, the dispatcher accepts every connection and hands it to a process.
   */
  acceptMode: AcceptMode;
  /** PARAMETER=KEY=value pairs, e.g. CHANNEL=tcp_submit; keys upper-case. */
  parameters: Record<string, string>;
  /** The channel the server runs as for this service (PARAMETER CHANNEL=…, default tcp_local). */
  channel: string;
  lmtp: boolean; // PARAMETER LMTP=1 or service name LMTP
  /** DNS blocklist checks of connecting clients (ENABLE_RBL, DNS_VERIFY_DOMAIN, …); absent = off. */
  rbl?: BlocklistConfig;
  /** PROXY_PROTOCOL, PROXY_TRUSTED, PROXY_TIMEOUT: connections come through a load balancer; absent = off. */
  proxy?: ProxyProtocolConfig | null;
  file: string;
  line: number;
}

/** A service behind a load balancer that opens each connection with a PROXY protocol header. */
export interface ProxyProtocolConfig {
  /** PROXY_PROTOCOL: 1 takes either version, V1 or V2 only that one. */
  versions: 'v1' | 'v2' | 'any';
  /** PROXY_TRUSTED: the balancers' addresses; every connection must come from one of them. */
  trusted: Cidr[];
  /** PROXY_TIMEOUT: the whole header must arrive within this (ms; default 5 s, as Postfix's smtpd_upstream_proxy_timeout). */
  timeoutMs: number;
  /** The longest version 2 header taken, octets (1024). */
  maxBytes: number;
}

/** A service's DNS blocklist settings (dispatcher.cnf, global or per service). */
export interface BlocklistConfig {
  /** ENABLE_RBL=1: the zones are checked (default 0: not checked). */
  enabled: boolean;
  /** DNS_VERIFY_DOMAIN zones in the order written, lower-case, without a trailing dot. */
  zones: string[];
  /** RBL_TIMEOUT: how long one client's check may take, in ms (default 5 s). */
  timeoutMs: number;
  /** RBL_FAIL_CLOSED=1: a zone that cannot be checked refuses the client temporarily (default 0: accept and log). */
  failClosed: boolean;
}

export interface DispatcherConfig {
  /** The services in force (listened on). */
  services: DispatcherService[];
  /** Services (or their TLS ports) left off because they need TLS and option.dat sets no certificate; absent = none. */
  off?: ServiceOff[];
}

/** A service, or some of its ports, that cannot run for want of a certificate (config/services-in-force.ts). */
export interface ServiceOff {
  service: string;
  /** The ports not listened on (the whole service's, or its TLS_PORT ones). */
  ports: number[];
  /** Whether the whole service is off (else only `ports`). */
  whole: boolean;
  /** Why, and how to turn it on: one line for the log and cnbuild. */
  message: string;
  file: string;
  line: number;
}

// ------------------------------------------------------ job_controller.cnf

export interface PoolConfig {
  name: string;
  jobLimit: number;
}

export interface ChannelJobSection {
  /** Exact channel name, or a prefix when `wildcard` (from `[CHANNEL=tcp_*]`). */
  pattern: string;
  wildcard: boolean;
  masterCommand: string | null;
  maxLifeAgeSec: number | null;
  maxLifeConns: number | null;
}

export interface JobControllerConfig {
  maxMessages: number; // default 100000
  synchTimeSec: number; // default 4 h
  rebuildParallelChannel: number; // default 12
  pools: PoolConfig[]; // in file order; the first is the default pool
  channels: ChannelJobSection[];
  /** Job life limits from the globals (defaults for every [CHANNEL]). */
  maxLifeAgeSec: number;
  maxLifeConns: number;
  /** How often channels marked `periodic` are run (PERIODIC_INTERVAL; default 30 min; optional for hand-built configs). */
  periodicIntervalSec?: number;
}

// ---------------------------------------------------------- option.dat

export type { Cidr };

export interface OptionsConfig {
  /** Every KEY=value as written (upper-case keys). */
  raw: Record<string, string>;
  /** Clients allowed to relay (INTERNAL_IP; default 127.0.0.0/8, ::1). */
  internalIp: Cidr[];
  /** DNS servers as ip or ip:port (DNS_SERVERS; empty = the system's). */
  dnsServers: string[];
  /** This host's name (LOCAL_HOST; default os.hostname()). */
  localHost: string;
  /** Message size limit in octets (MAX_MESSAGE_SIZE; default 10240000). */
  maxMessageSize: number;
  /** Recipients per message (MAX_RECIPIENTS; default 1000). */
  maxRecipients: number;
  /** Messages per SMTP session (MAX_MESSAGES_PER_SESSION; default 1000). */
  maxMessagesPerSession: number;
  /** Bad commands before disconnect (MAX_BAD_COMMANDS; default 10). */
  maxBadCommands: number;
  /** Concurrent connections from one client IP (MAX_CONNS_PER_IP; default 50). */
  maxConnsPerIp: number;
  /** Milliseconds before the greeting for external clients (BANNER_PURGE_DELAY, seconds in the file; default 0.1 s). */
  bannerPurgeDelayMs: number;
  /** The same for INTERNAL_IP clients (BANNER_PURGE_DELAY_INTERNAL; default 0). */
  bannerPurgeDelayInternalMs: number;
  /** Idle SMTP command timeout in ms (SMTP_TIMEOUT, seconds; default 300). */
  smtpTimeoutMs: number;
  /** ms a command line, a TLS handshake or the DATA budget may take (SMTP_COMMAND_DEADLINE, seconds; default SMTP_TIMEOUT; 0 = none). */
  smtpCommandDeadlineMs: number;
  /** Octets per second DATA must average (SMTP_MIN_DATA_RATE; default 500). */
  smtpMinDataRate: number;
  /** Errors in a session after which every reply is delayed (SMTP_SOFT_ERROR_LIMIT; default 10; 0 = never). */
  smtpSoftErrorLimit: number;
  /** Errors in a session after which it is closed with 421 (SMTP_HARD_ERROR_LIMIT; default 20; 0 = never). */
  smtpHardErrorLimit: number;
  /** The delay past the soft limit, ms (SMTP_ERROR_SLEEP_TIME, seconds; default 1). */
  smtpErrorSleepMs: number;
  /** NOOP/VRFY/ETRN/RSET commands before each counts as an error (SMTP_JUNK_COMMAND_LIMIT; default 100; 0 = no limit). */
  smtpJunkCommandLimit: number;
  /** Received: lines a message may carry, ours included, before it is taken for a mail loop (MAX_RECEIVED_LINES; default 50). */
  maxReceivedLines: number;
  tlsKeyFile: string | null; // TLS_KEY
  tlsCertFile: string | null; // TLS_CERT
  /** Domains whose deferred mail is indexed for ETRN (FAST_FLUSH_DOMAINS); null = derived from rewrite rules. */
  fastFlushDomains: string[] | null;
  /** Who may use ETRN (ETRN_ALLOW, CIDRs; empty = anyone). */
  etrnAllow: Cidr[];
  /** Who may use `ETRN #channel` (ETRN_CHANNEL_ALLOW, CIDRs; default: INTERNAL_IP; empty = no one). */
  etrnChannelAllow: Cidr[];
  /** ETRN commands a client address may give per minute (ETRN_RATE_LIMIT; default 10; 0 = no limit). */
  etrnRateLimit: number;
  /** Loopback HTTP port for metrics and status (METRICS_PORT; null = off). */
  metricsPort: number | null;
  /** VERP delimiters, two characters (VERP_DELIMITERS; default "+=", Postfix's); absent in hand-built configurations = the default. */
  verpDelimiters?: string;
  /** The LDAP directory (LDAP_HOST and the other LDAP_* options); null or absent = no LDAP. */
  ldap?: LdapOptions | null;
  /** SRS_DOMAIN and SRS_MAXAGE; absent = the defaults (LOCAL_HOST, 21 days). */
  srs?: SrsOptions;
  /** Failed SMTP AUTH limits (SASL_*); absent = the defaults (config/sasl-options.ts). */
  sasl?: SaslOptions;
  /** SPAMFILTERn_MILTER slots and the MILTER_* options; absent in hand-built configurations = no filters. */
  milter?: MilterOptions;
  /** FARM_* options (shaping shared through Redis); absent in hand-built configurations = a node alone. */
  farm?: FarmOptions;
}

/** A node of a farm (option.dat FARM_*): see src/config/farm-options.ts. */
export interface FarmOptions {
  /** FARM_REDIS_URL; null = no farm: shaping is this node's alone. */
  redisUrl: string | null;
  /** FARM_NODE_NAME (default LOCAL_HOST). */
  nodeName: string;
  /** FARM_NODE_COUNT (default 1): a node's share of a limit while Redis is unreachable is the limit divided by it. */
  nodeCount: number;
  /** FARM_LEASE_TTL in ms (default 30 s): a node's leases expire this long after its last renewal. */
  leaseTtlMs: number;
}

/** How failed SMTP AUTH is slowed down and stopped (option.dat SASL_*; as Dovecot's auth penalty and Postfix's anvil). */
export interface SaslOptions {
  /** Failed AUTH from one client address within the window before its AUTH gets 421 (SASL_FAILURES_PER_ADDRESS; 0 = no limit). */
  failuresPerAddress: number;
  /** Failed AUTH for one login name within the window before AUTH as it gets 421 (SASL_FAILURES_PER_USER; 0 = no limit). */
  failuresPerUser: number;
  /** How long a failure counts, ms (SASL_FAILURE_WINDOW, seconds). */
  windowMs: number;
  /** Pause before every failed AUTH's reply, ms (SASL_FAILURE_DELAY, seconds). */
  failureDelayMs: number;
  /** Pause before the 421 of a client past a limit, ms (SASL_PENALTY_DELAY, seconds). */
  penaltyDelayMs: number;
}

/** The Sender Rewriting Scheme's options (option.dat). */
export interface SrsOptions {
  /** SRS_DOMAIN: the domain of rewritten senders; bounces to it must reach this MTA (default LOCAL_HOST). */
  domain: string;
  /** SRS_MAXAGE: days a rewritten sender stays valid for bounces (default 21, libsrs2's). */
  maxAgeDays: number;
}

/** Where and how the directory's LDAP source searches (option.dat, docs/CONFIGURATION.md "Users from LDAP"). */
export interface LdapOptions {
  /** Servers in order of preference, as URLs: ldap://host:port or ldaps://host:port (LDAP_HOST, LDAP_PORT). */
  servers: string[];
  /** DN the pooled connections bind as (LDAP_USERNAME); null = anonymous. */
  bindDn: string | null;
  /** File holding the bind password (LDAP_PASSWORD_FILE), absolute; read for each new connection. */
  passwordFile: string | null;
  /** Base DN of the users and groups (LDAP_USER_ROOT). */
  userRoot: string;
  /** A filter every recipient and login search must also match (LDAP_SEARCH_FILTER), or null. */
  searchFilter: string | null;
  /** Deadline of one connection attempt or operation in ms (LDAP_TIMEOUT, seconds). */
  timeoutMs: number;
  /** Pooled connections for searches (LDAP_CONNECTIONS) and for password checks (LDAP_AUTH_CONNECTIONS). */
  connections: number;
  authConnections: number;
  /** Wait before reconnecting after a failed attempt, doubling from min to max ms (LDAP_RECONNECT_MIN/MAX, seconds). */
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** Lookup cache (ALIAS_ENTRY_CACHE_SIZE, _TIMEOUT, _NEGATIVE, _NEGATIVE_TIMEOUT). */
  cache: { size: number; ttlMs: number; negative: boolean; negativeTtlMs: number };
  /** Object classes of users and groups: any one set, every class of the set (LDAP_USER_OBJECT_CLASSES, LDAP_GROUP_OBJECT_CLASSES). */
  userObjectClasses: string[][];
  groupObjectClasses: string[][];
  attributes: LdapAttributes;
  /** Where the hosted domains of `$V`/`$Z` are read (docs/CONFIGURATION.md "Hosted domains"). */
  domains: LdapDomainOptions;
}

/** The hosted-domain search: every entry of the object classes under the root, its domain names. */
export interface LdapDomainOptions {
  /** Base DN searched (LDAP_DOMAIN_ROOT; default: the dc= suffix of LDAP_USER_ROOT, else LDAP_USER_ROOT). */
  root: string;
  /** Object classes of domain entries: any one set, every class of it (LDAP_DOMAIN_OBJECT_CLASSES). */
  objectClasses: string[][];
  /** Attributes holding a domain's names (LDAP_ATTR_DOMAIN1_SCHEMA2, LDAP_ATTR_DOMAIN2_SCHEMA2). */
  attributes: string[];
  /** How often the set is read again, in ms (DOMAIN_MATCH_CACHE_TIMEOUT, seconds). */
  refreshMs: number;
}

/** Attribute names (Messaging Server's schema by default; each option names another). */
export interface LdapAttributes {
  uid: string; // LDAP_UID
  mail: string; // LDAP_PRIMARY_ADDRESS
  alternateAddress: string; // LDAP_ALIAS_ADDRESSES
  equivalentAddress: string; // LDAP_EQUIVALENCE_ADDRESSES
  forwardingAddress: string; // LDAP_FORWARDING_ADDRESS
  deliveryOption: string; // LDAP_DELIVERY_OPTION
  groupRfc822Member: string; // LDAP_GROUP_RFC822
  groupDnMember: string; // LDAP_GROUP_DN
  errorsTo: string; // LDAP_ERRORS_TO
}

// ------------------------------------------------------------- mappings

export type { MappingTable, MappingsConfig };

// ---------------------------------------------------------------- users

/** One user of etc/users (parsed by users.ts). */
export interface UserEntry {
  /** Lower case; also the local part the user owns at each local domain. */
  name: string;
  /** null: locked (`*` or `!…`): never authenticates. */
  hash: ScryptHash | null;
  /** Addresses the user may send as besides name@each local domain, as written. */
  addresses: string[];
  /** `admin`: may send as any address. */
  admin: boolean;
  file: string;
  line: number;
}

export interface UsersConfig {
  /** The file read; null when there is none (no users: nobody can authenticate). */
  file: string | null;
  /** By name (lower case). */
  users: Map<string, UserEntry>;
}

// ------------------------------------------------------------------ dkim

export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

/** One line of etc/dkim/keys: a signing domain, its selector and its private key (read and checked). */
export interface DkimKey {
  /** The signing domain (d=), lower-case A-labels. */
  domain: string;
  /** Written `*.domain`: signs mail from the domain's subdomains too (and only those). */
  subdomains: boolean;
  selector: string;
  algorithm: DkimAlgorithm;
  /** Absolute path of the PEM file. */
  keyFile: string;
  privateKey: KeyObject;
  /** Length of a signature made with this key (RSA: the modulus length; Ed25519: 64). */
  signatureBytes: number;
  file: string;
  line: number;
}

/** etc/srs.secrets: the SRS secrets, the first signs and all verify; none when the file does not exist. */
export interface SrsSecretsConfig {
  file: string | null;
  /** HMAC keys: a KeyObject never shows its bytes in a log or a dump. */
  secrets: KeyObject[];
}

/** etc/dkim/keys: the signing keys; none when the file does not exist. */
export interface DkimConfig {
  file: string | null;
  keys: DkimKey[];
}

// ------------------------------------------------------------ shaping.cnf

/** A rate limit: `count` events per `perMs` milliseconds (`100/min` is 100 per 60000). */
export interface RateLimit {
  count: number;
  perMs: number;
  /** As written, for messages and snapshots. */
  text: string;
}

/** How a destination is shaped (etc/shaping.cnf; defaults in src/config/shaping-cnf.ts). */
export interface ShapingLimits {
  /** Most connections open at once (MAX_CONNECTIONS). */
  maxConnections: number;
  /** Connections allowed at first, growing with each delivery up to maxConnections (INITIAL_CONNECTIONS). */
  initialConnections: number;
  /** Messages (transactions) per connection before it is closed and another opened (MAX_MESSAGES_PER_CONNECTION; 0 = no limit). */
  maxMessagesPerConnection: number;
  /** Messages started per unit of time (MAX_MESSAGE_RATE), or null for no limit. */
  maxMessageRate: RateLimit | null;
  /** Messages that may start at once within the rate (MESSAGE_RATE_BURST); null = one second's worth, at least 1. */
  messageRateBurst: number | null;
  /** Connections opened per unit of time (MAX_CONNECTION_RATE), or null for no limit. */
  maxConnectionRate: RateLimit | null;
  /** The first pause after a throttling reply (THROTTLE_PAUSE), ms. */
  throttlePauseMs: number;
  /** The longest pause, reached by doubling on repeated throttling (THROTTLE_PAUSE_MAX), ms. */
  throttlePauseMaxMs: number;
  /** How long the message rate takes to climb back after a pause (RECOVERY_TIME), ms. */
  recoveryMs: number;
  /** Replies whose text matches this (case-blind regular expression) throttle, besides every 421 (THROTTLE_PATTERN). */
  throttlePattern: string;
  /** Replies whose text matches this are never taken for throttling (THROTTLE_IGNORE). */
  throttleIgnore: string;
}

/** Which destinations one state serves: all matched ones together, each MX host, or each recipient domain. */
export type ShapingScope = 'group' | 'host' | 'domain';

/** One `[DESTINATION=name]` section of etc/shaping.cnf. */
export interface ShapingSection {
  name: string;
  /** Recipient domains, exact (lower-case A-labels). */
  domains: string[];
  /** Recipient domains written `*.example.com`: their subdomains (the parent, here `example.com`). */
  domainSuffixes: string[];
  /** MX host names, exact. */
  mxHosts: string[];
  /** MX host suffixes (`*.google.com` is `google.com`): the host itself or any host under it. */
  mxSuffixes: string[];
  scope: ShapingScope;
  limits: ShapingLimits;
  file: string;
  line: number;
}

/** etc/shaping.cnf: per-destination traffic shaping of outbound SMTP. */
export interface ShapingConfig {
  /** The file read, or null when there is none (every destination then gets the defaults). */
  file: string | null;
  /** The globals: the limits of every MX host no section matches (each host on its own), and the defaults of every section. */
  defaults: ShapingLimits;
  sections: ShapingSection[];
}

// ------------------------------------------------------------- instance

export interface InstanceConfig {
  root: string;
  imta: ImtaConfig;
  dispatcher: DispatcherConfig;
  jobController: JobControllerConfig;
  options: OptionsConfig;
  aliases: Map<string, string[]>; // etc/aliases: local part (lower-case) → targets
  mappings: MappingsConfig; // etc/mappings
  /** etc/users: who may authenticate and send as which addresses. */
  users: UsersConfig;
  dkim: DkimConfig; // etc/dkim/keys
  /** etc/shaping.cnf (absent in hand-built configurations: the defaults). */
  shaping?: ShapingConfig;
  /** etc/srs.secrets; absent = no SRS secrets. */
  srs?: SrsSecretsConfig;
  /** etc/client_auth: what channels with maysaslclient/mustsaslclient authenticate with; absent = none. */
  clientAuth?: ClientAuthConfig;
  diagnostics: Diagnostic[];
}

/** etc/client_auth (config/client-auth.ts): SMTP AUTH credentials per outbound channel. */
export interface ClientAuthConfig {
  file: string | null;
  /** By channel name (lower case). */
  byChannel: Map<string, ClientCredentials>;
}

/** Messaging Server's AUTH_USERNAME and AUTH_PASSWORD of one channel. */
export interface ClientCredentials {
  username: string;
  password: string;
  file: string;
  line: number;
}
