// Typed, validated configuration: the plain data every other part reads.
// Parsers in this folder turn the four files of etc/ into these shapes and
// report every problem as a Diagnostic with file:line.

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
  // eslint-disable-next-line no-control-regex
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

export interface DispatcherService {
  name: string;
  ports: number[];
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
  /** PARAMETER=KEY=value pairs, e.g. CHANNEL=tcp_submit; keys upper-case. */
  parameters: Record<string, string>;
  /** The channel the server runs as for this service (PARAMETER CHANNEL=…, default tcp_local). */
  channel: string;
  lmtp: boolean; // PARAMETER LMTP=1 or service name LMTP
  file: string;
  line: number;
}

export interface DispatcherConfig {
  services: DispatcherService[];
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

export interface Cidr {
  text: string; // as written
  family: 4 | 6;
  bytes: Uint8Array; // network address
  prefix: number;
}

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
}

// ------------------------------------------------------------- instance

export interface InstanceConfig {
  root: string;
  imta: ImtaConfig;
  dispatcher: DispatcherConfig;
  jobController: JobControllerConfig;
  options: OptionsConfig;
  aliases: Map<string, string[]>; // etc/aliases: local part (lower-case) → targets
  diagnostics: Diagnostic[];
}
