// What one SMTP service needs from the instance configuration, resolved once at start-up
// (plain data; the files are read by the config loader).
import type { Channel, Cidr, InstanceConfig, OptionsConfig, ProxyProtocolConfig, SaslMode, SaslOptions } from '../config/types.js';
import { DEFAULT_BAD_AUTH_LIMIT } from '../config/imta-cnf.js';
import { defaultSaslOptions } from '../config/sasl-options.js';
import type { ErrorLimits } from './error-limits.js';

/** The channel internal clients (INTERNAL_IP) arrive on, as in Messaging Server's shipped imta.cnf. */
const INTRANET_CHANNEL = 'tcp_intranet';
/** RFC 5321 asks for 512; long AUTH/XCLIENT-like lines and generous clients get room, garbage does not. */
const MAX_COMMAND_LENGTH = 2048;
/** RFC 5322 §2.1.1: a line is at most 998 characters, CRLF not counted. */
const MAX_LINE_LENGTH = 998;

export type TlsServerMode = 'none' | 'may' | 'must';

/** The option.dat limits a session applies as they are. */
type SessionLimits = Pick<
  OptionsConfig,
  'maxMessageSize' | 'maxRecipients' | 'maxMessagesPerSession' | 'maxBadCommands' | 'maxConnsPerIp' | 'bannerPurgeDelayMs' | 'bannerPurgeDelayInternalMs'
>;

export interface InboundSettings extends SessionLimits {
  service: string;
  /** The channel this service runs as (the source channel of external clients). */
  channel: string;
  /** The source channel of INTERNAL_IP clients (tcp_intranet when defined, else `channel`). */
  intranetChannel: string;
  lmtp: boolean;
  /** The name in the banner, the EHLO reply and Received: lines. */
  hostName: string;
  /** STARTTLS (`mode`) and the certificate; keyFile/certFile are set when STARTTLS or a TLS_PORT uses them. */
  tls: { mode: TlsServerMode; keyFile: string | null; certFile: string | null };
  /** TLS_PORT: connections arriving on these local ports start with TLS (RFC 8314). */
  implicitTlsPorts: number[];
  /** SMTP AUTH on this service (the service channel's keywords and option.dat's SASL_*). */
  sasl: InboundSasl;
  internalIp: Cidr[];
  socketTimeoutMs: number;
  /** A command line, TLS handshake or DATA budget must finish within this (ms; 0 = no deadline). */
  commandDeadlineMs: number;
  /** Octets per second the DATA phase must average. */
  minDataRate: number;
  maxCommandLength: number;
  maxLineLength: number;
  /** Write a session transcript (channel keyword `slave_debug`). */
  slaveDebug: boolean;
  /** SMTP_SOFT_ERROR_LIMIT, SMTP_HARD_ERROR_LIMIT, SMTP_ERROR_SLEEP_TIME, SMTP_JUNK_COMMAND_LIMIT. */
  errorLimits: ErrorLimits;
  /** Received: lines a message may carry, ours included (MAX_RECEIVED_LINES). */
  maxReceivedLines: number;
  /** The service's PROXY protocol (PROXY_PROTOCOL, PROXY_TRUSTED, PROXY_TIMEOUT); null = connections are the clients'. */
  proxy?: ProxyProtocolConfig | null;
}

export interface InboundSasl {
  /** maysaslserver / mustsaslserver of the service's channel (LMTP: never). */
  server: SaslMode;
  /** saslcleartext: AUTH is offered before TLS too. */
  cleartext: boolean;
  /** The saslswitchchannel of the service's channel (a session's own channel's is asked first). */
  switchChannel: string | null;
  /** disconnectbadauthlimit of the service's channel. */
  badAuthLimit: number;
  limits: SaslOptions;
}

export class SettingsError extends Error {}

export function resolveInboundSettings(config: InstanceConfig, serviceName: string): InboundSettings {
  const service = config.dispatcher.services.find((s) => s.name.toUpperCase() === serviceName.toUpperCase());
  if (!service) throw new SettingsError(`dispatcher.cnf: no [SERVICE=${serviceName}] section`);
  const channel = config.imta.channelByName.get(service.channel.toLowerCase());
  const where = `${service.file}:${service.line}`;
  if (!channel) throw new SettingsError(`${where}: service ${service.name}: channel ${service.channel} is not defined in imta.cnf`);
  const intranet = config.imta.channelByName.get(INTRANET_CHANNEL);
  const o = config.options;

  const mode: TlsServerMode = channel.tlsServer === 'musttls' ? 'must' : channel.tlsServer === 'maytls' ? 'may' : 'none';
  const haveCert = Boolean(o.tlsKeyFile && o.tlsCertFile);
  // Without a certificate the loader already left the TLS ports off (config/services-in-force.ts).
  const implicitTlsPorts = haveCert ? [...(service.tlsPorts ?? [])] : [];
  if (mode === 'must' && !haveCert) {
    throw new SettingsError(`${channel.file}:${channel.line}: channel ${channel.name} has musttlsserver but option.dat sets no TLS_KEY and TLS_CERT`);
  }
  return {
    service: service.name,
    channel: channel.name,
    intranetChannel: intranet ? intranet.name : channel.name,
    lmtp: service.lmtp,
    hostName: bannerHost(channel, o.localHost),
    tls: haveCert && (mode !== 'none' || implicitTlsPorts.length > 0) ? { mode, keyFile: o.tlsKeyFile, certFile: o.tlsCertFile } : { mode: 'none', keyFile: null, certFile: null },
    implicitTlsPorts,
    sasl: {
      server: service.lmtp ? 'none' : (channel.sasl?.server ?? 'none'),
      cleartext: channel.sasl?.cleartext ?? false,
      switchChannel: channel.sasl?.switchChannel ?? null,
      badAuthLimit: channel.sasl?.badAuthLimit ?? DEFAULT_BAD_AUTH_LIMIT,
      limits: o.sasl ?? defaultSaslOptions(),
    },
    internalIp: o.internalIp,
    maxMessageSize: o.maxMessageSize,
    maxRecipients: o.maxRecipients,
    maxMessagesPerSession: o.maxMessagesPerSession,
    maxBadCommands: o.maxBadCommands,
    maxConnsPerIp: o.maxConnsPerIp,
    bannerPurgeDelayMs: o.bannerPurgeDelayMs,
    bannerPurgeDelayInternalMs: o.bannerPurgeDelayInternalMs,
    socketTimeoutMs: o.smtpTimeoutMs,
    commandDeadlineMs: o.smtpCommandDeadlineMs,
    minDataRate: o.smtpMinDataRate,
    maxCommandLength: MAX_COMMAND_LENGTH,
    maxLineLength: MAX_LINE_LENGTH,
    slaveDebug: channel.slaveDebug,
    errorLimits: { soft: o.smtpSoftErrorLimit, hard: o.smtpHardErrorLimit, sleepMs: o.smtpErrorSleepMs, junkCommands: o.smtpJunkCommandLimit },
    maxReceivedLines: o.maxReceivedLines,
    proxy: service.proxy ?? null,
  };
}

/**
 * The channel's official host when it is a host name; a routing tag such as `tcp-daemon` (no
 * dot) names no host, and then LOCAL_HOST is used, as Messaging Server falls back to the
 * local host name.
 */
export function bannerHost(channel: Channel, localHost: string): string {
  const official = channel.officialHost.trim();
  return official.includes('.') && !official.startsWith('[') ? official : localHost;
}

/** Whether a destination channel sends mail on over SMTP (so reaching it from outside is relaying). */
export function isRelayChannel(channel: Channel): boolean {
  return channel.smtp && !channel.lmtp;
}
