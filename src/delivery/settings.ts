// Delivery tunables read from option.dat (OptionsConfig.raw), with the defaults an operator expects.
// Values are seconds (fractions allowed, so tests can use short ones); RFC 5321 §4.5.3.2 gives the
// client timeouts: 5 min for the greeting and each command, 10 min for the final dot.
import type { OptionsConfig } from '../config/types.js';
import { dnsSettings, type DnsSettings } from '../dns/settings.js';

export interface DeliverySettings extends DnsSettings {
  /** TCP connect (SMTP_CONNECT_TIMEOUT; default 30 s, as Postfix's smtp_connect_timeout). */
  connectTimeoutMs: number;
  /** 220 greeting and EHLO/STARTTLS (SMTP_GREETING_TIMEOUT; default 300 s). */
  greetingTimeoutMs: number;
  /** Each command reply: MAIL, RCPT, DATA, RSET (SMTP_COMMAND_TIMEOUT; default 300 s). */
  commandTimeoutMs: number;
  /** Message data and the reply to the final dot (SMTP_DATA_TIMEOUT; default 600 s). */
  dataTimeoutMs: number;
  /** How long an idle connection is kept for reuse (SMTP_IDLE_TIMEOUT; default 5 s). */
  idleTimeoutMs: number;
  /** How long a host that refused or timed out is not tried again (SMTP_HOST_RETRY; default 300 s). */
  hostRetryMs: number;
  /**
   * How long a channel uses a destination's DNS answer for its deliveries, whatever its TTL
   * (SMTP_DNS_REUSE; default 60 s): the messages of a list are looked up once (SMTPfeed §3.7).
   */
  dnsReuseMs: number;
}

const DEFAULTS: Record<string, number> = {
  SMTP_CONNECT_TIMEOUT: 30,
  SMTP_GREETING_TIMEOUT: 300,
  SMTP_COMMAND_TIMEOUT: 300,
  SMTP_DATA_TIMEOUT: 600,
  SMTP_IDLE_TIMEOUT: 5,
  SMTP_HOST_RETRY: 300,
  SMTP_DNS_REUSE: 60,
};

function number(raw: Record<string, string>, key: string): number {
  const text = raw[key];
  const value = text === undefined ? NaN : Number(text.trim());
  return Number.isFinite(value) && value >= 0 ? value : DEFAULTS[key]!;
}

export function deliverySettings(options: Pick<OptionsConfig, 'raw'>): DeliverySettings {
  const raw = options.raw ?? {};
  const ms = (key: string) => Math.round(number(raw, key) * 1000);
  return {
    connectTimeoutMs: ms('SMTP_CONNECT_TIMEOUT'),
    greetingTimeoutMs: ms('SMTP_GREETING_TIMEOUT'),
    commandTimeoutMs: ms('SMTP_COMMAND_TIMEOUT'),
    dataTimeoutMs: ms('SMTP_DATA_TIMEOUT'),
    idleTimeoutMs: ms('SMTP_IDLE_TIMEOUT'),
    hostRetryMs: ms('SMTP_HOST_RETRY'),
    dnsReuseMs: ms('SMTP_DNS_REUSE'),
    ...dnsSettings(options),
  };
}
