// The one place the inbound SMTPServer is built: extensions, limits, TLS, transcript logger and
// the hooks of the service. (ETRN is handler_ETRN on TsubameConnection, see connection.ts.)
import type { SMTPServerOptions } from 'smtp-server';
import { TsubameSmtpServer, type ConnectionPolicy } from './connection.js';
import type { InboundSettings } from './settings.js';
import type { BunyanLikeLogger } from './transcript.js';

export type InboundHooks = Pick<SMTPServerOptions, 'onConnect' | 'onSecure' | 'onMailFrom' | 'onRcptTo' | 'onData' | 'onClose'>;

export interface TlsMaterial {
  key: Buffer;
  cert: Buffer;
}

/** Commands nobody gets: proxy commands, sendmail's jokes. (AUTH is handler_AUTH's, which answers 503 where it is not offered.) */
const ALWAYS_DISABLED = ['XCLIENT', 'XFORWARD', 'WIZ', 'SHELL', 'KILL'];

function buildServerOptions(settings: InboundSettings, hooks: InboundHooks, tls: TlsMaterial | null, logger: BunyanLikeLogger | false): SMTPServerOptions {
  const disabledCommands = [...ALWAYS_DISABLED];
  // The certificate may be there for a TLS_PORT alone: STARTTLS only with maytlsserver/musttlsserver.
  if (!tls || settings.tls.mode === 'none') disabledCommands.push('STARTTLS');
  return {
    ...hooks,
    name: settings.hostName,
    banner: 'tsubame',
    heloResponse: '%s Hello %s',
    lmtp: settings.lmtp,
    // Extensions: smtp-server hides ENHANCEDSTATUSCODES and DSN unless told otherwise.
    hideENHANCEDSTATUSCODES: false,
    hideDSN: false,
    hidePIPELINING: false,
    hide8BITMIME: false,
    hideSMTPUTF8: false,
    hideREQUIRETLS: true,
    size: settings.maxMessageSize > 0 ? settings.maxMessageSize : undefined,
    // The DATA guard answers 552 5.3.4 itself (and drops what it stored).
    rejectOversized: false,
    disabledCommands,
    // AUTH is advertised by the library when authMethods is not empty; the connection drops the
    // line where AUTH is not available yet (before STARTTLS). mustsaslserver is a MAIL check.
    authMethods: settings.sasl.server !== 'none' ? ['PLAIN', 'LOGIN'] : [],
    authOptional: true,
    ...(tls ? { key: tls.key, cert: tls.cert } : {}),
    // Never put a name the client's network controls into Received: (the IP is enough).
    disableReverseLookup: true,
    socketTimeout: settings.socketTimeoutMs,
    maxCommandLength: settings.maxCommandLength,
    maxRecipients: settings.maxRecipients > 0 ? settings.maxRecipients : undefined,
    logger,
  };
}

export function createInboundServer(
  settings: InboundSettings,
  hooks: InboundHooks,
  tls: TlsMaterial | null,
  logger: BunyanLikeLogger | false,
  policy: ConnectionPolicy,
): TsubameSmtpServer {
  const server = new TsubameSmtpServer(buildServerOptions(settings, hooks, tls, logger), policy);
  // Errors of single connections (resets, TLS failures) are per session; they must not be
  // unhandled 'error' events of the server.
  server.on('error', () => {});
  return server;
}
