// The SMTP and LMTP channels (`smtp` / `lmtp` keyword): the channel's job in a delivery thread is
// one fan-out (src/delivery/fanout.ts) that every batch its jobs hand over joins, with one
// connection cache and one traffic shaper for the whole channel; DNS answers and host
// reachability are shared with the thread's other channels (getSharedDnsCache /
// getSharedReachabilityCache); the verified-TLS policy (trust store, MTA-STS cache, TLS-RPT
// counts) is the job's own.
import { join } from 'node:path';
import type { ChannelJob, ChannelJobContext, ChannelJobFactory, DeliverOptions, DeliveryItem, MessageOutcome } from './types.js';
import { everyPendingAs } from './outcomes.js';
import { ConnectionCache } from '../delivery/connection-cache.js';
import { DnsClient } from '../dns/client.js';
import { dnsServersOf } from '../dns/settings.js';
import { DnsCache, getSharedDnsCache } from '../dns/cache.js';
import { newEngineStats, type EngineStats } from '../delivery/engine-context.js';
import { ChannelFanout, type FanoutStatus } from '../delivery/fanout.js';
import { ReachabilityCache, getSharedReachabilityCache } from '../delivery/reachability.js';
import { DeliveryResolver } from '../delivery/resolver.js';
import { deliverySettings, type DeliverySettings } from '../delivery/settings.js';
import { openTranscript, type Transcript } from '../delivery/transcript.js';
import { makeChannelShaper, type Shaper } from '../shaping/index.js';
import { TlsGate } from '../delivery/tls-gate.js';
import type { ClientLogin } from '../delivery/smtp-client.js';
import type { Channel, ClientAuthConfig } from '../config/types.js';
import { OutboundTlsPolicy } from '../delivery/tls/policy.js';
import { tlsPolicySettings } from '../delivery/tls/settings.js';
import { instancePaths } from '../common/instance.js';

export interface SmtpJobDeps {
  dnsCache: DnsCache;
  reachability: ReachabilityCache;
  /** The channel's traffic shaper (kept by the thread across reloads); a new one from etc/shaping.cnf when absent. */
  shaper?: Shaper;
  /** Overrides of option.dat settings (tests). */
  settings?: Partial<DeliverySettings>;
  random?: () => number;
  /** The MTA-STS policy hosts' HTTPS port: 443 but in tests. */
  stsPort?: number;
}

export interface SmtpJobStats extends EngineStats {
  dnsQueries: number;
  dnsTcpQueries: number;
  connectionsOpened: number;
  connectionsReused: number;
}

export interface SmtpChannelJob extends ChannelJob {
  stats(): SmtpJobStats;
  /** What the channel's fan-out has in hand now: connections, destinations, their shaping. */
  status(): FanoutStatus;
  /** Path of the master_debug transcript, when the channel has master_debug. */
  readonly transcriptPath: string | null;
}

/** The channel's most connections at once (maxclientthreads) when a test's channel does not say. */
const DEFAULT_MAX_CONNECTIONS = 1000;

export function createSmtpJobWith(ctx: ChannelJobContext, deps: SmtpJobDeps): SmtpChannelJob {
  const { channel, config } = ctx;
  const settings: DeliverySettings = { ...deliverySettings(config.options), ...deps.settings };
  const servers = dnsServersOf(config.options);
  const client = new DnsClient(servers, { timeoutMs: settings.dnsTimeoutMs, attempts: settings.dnsAttempts });
  const resolver = new DeliveryResolver(client, deps.dnsCache, {
    negativeTtlMs: settings.dnsNegativeTtlMs,
    maxTtlMs: settings.dnsMaxTtlMs,
    localNames: [config.options.localHost],
  });
  const tlsPolicy = outboundTlsPolicy(ctx, resolver, deps.stsPort);
  const tls = new TlsGate(channel, tlsPolicy, resolver);
  const clientLogin = clientLoginOf(channel, config.clientAuth);
  const maxConnections = Math.max(1, channel.maxClientConnections || DEFAULT_MAX_CONNECTIONS);
  const transcript: Transcript | null = channel.masterDebug ? openTranscript(join(ctx.root, 'log'), channel.name) : null;
  const stats = newEngineStats();
  // The cache tells the fan-out of every connection it closes (its shaping slot is free).
  let fanout: ChannelFanout | null = null;
  const connections = new ConnectionCache(maxConnections, settings.idleTimeoutMs, (session) => fanout?.connectionClosed(session));
  fanout = new ChannelFanout(
    {
      channel,
      localName: config.options.localHost,
      hopLimit: config.options.maxReceivedLines,
      verpDelimiters: config.options.verpDelimiters,
      settings,
      resolver,
      reachability: deps.reachability,
      tls,
      clientLogin,
      readMessage: ctx.readMessage ?? ctx.openBody,
      transcriptFor: transcript ? (t) => transcript.forHost(t) : null,
      stats,
      random: deps.random,
      shaper: deps.shaper ?? ctx.shaper ?? makeChannelShaper(config, channel.name),
      maxConnections,
    },
    connections,
  );
  const engine = fanout;
  let closed = false;
  return {
    transcriptPath: transcript?.path ?? null,
    async deliver(items: DeliveryItem[], opts: DeliverOptions = {}): Promise<MessageOutcome[]> {
      if (closed) throw new Error('job closed');
      try {
        return await engine.deliver(items, opts.signal);
      } catch (err) {
        // Never throw for a delivery problem: everything pending is deferred with the reason.
        ctx.logger.error({ err, channel: channel.name }, 'delivery engine failed');
        return everyPendingAs(items, 'deferred', `451 4.3.0 internal delivery error: ${(err as Error).message}`);
      }
    },
    async close() {
      closed = true;
      await engine.close();
      await tlsPolicy.close().catch((err: unknown) => ctx.logger.warn({ err, channel: channel.name }, 'cannot write the TLS-RPT counts'));
      client.close();
      await transcript?.close();
    },
    status: () => engine.status(),
    stats: () => ({
      ...stats,
      dnsQueries: client.stats.queries,
      dnsTcpQueries: client.stats.tcpQueries,
      connectionsOpened: connections.stats.opened,
      connectionsReused: connections.stats.reused,
    }),
  };
}

/**
 * The job's verified-TLS policy (option.dat TLS_CA_FILE, MTA_STS, DANE, TLSRPT). A CA file that
 * cannot be read now (cnbuild checked it before) leaves Node's and the system's CAs: fewer trusted,
 * never more, and the reason in the log.
 */
function outboundTlsPolicy(ctx: ChannelJobContext, lookup: DeliveryResolver, stsPort: number | undefined): OutboundTlsPolicy {
  const { config } = ctx;
  const settings = tlsPolicySettings(config.options, ctx.root);
  const make = (caFile: string | null) =>
    new OutboundTlsPolicy({ settings: { ...settings, caFile }, lookup, stateDir: instancePaths(ctx.root).tls, localHost: config.options.localHost, stsPort });
  try {
    return make(settings.caFile);
  } catch (err) {
    ctx.logger.error({ err, channel: ctx.channel.name }, 'TLS_CA_FILE cannot be used: only the built-in and system CAs are trusted');
    return make(null);
  }
}

export const createSmtpJob: ChannelJobFactory = async (ctx) =>
  createSmtpJobWith(ctx, { dnsCache: getSharedDnsCache(), reachability: getSharedReachabilityCache() });

/** The channel's credentials from etc/client_auth when it has maysaslclient or mustsaslclient. */
function clientLoginOf(channel: Channel, clientAuth: ClientAuthConfig | undefined): ClientLogin | null {
  const mode = channel.sasl?.client ?? 'none';
  const credentials = clientAuth?.byChannel.get(channel.name.toLowerCase());
  if (mode === 'none' || !credentials) return null;
  return { mode, username: credentials.username, password: credentials.password };
}
