// Fixtures for the delivery tests: a small InstanceConfig, channels with Messaging Server
// defaults, queued messages written as plain files (openBody reads them back).
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Channel, ImtaConfig, InstanceConfig } from '../../src/config/types.js';
import type { ChannelJobContext, DeliveryItem } from '../../src/channels/types.js';
import type { Envelope } from '../../src/queue/types.js';
import { silentLogger } from '../../src/common/logger.js';

export function makeChannel(overrides: Partial<Channel> = {}): Channel {
  return {
    name: 'tcp_local',
    keywords: {},
    officialHost: 'tcp-daemon',
    hosts: ['tcp-daemon'],
    file: 'imta.cnf',
    line: 1,
    smtp: true,
    lmtp: false,
    mx: 'nonrandommx',
    daemon: null,
    port: null,
    copies: 'single_sys',
    addrsPerFile: null,
    subdirs: 0,
    maxJobs: 100,
    pool: null,
    threadDepth: 10,
    filesPerJob: 0,
    addrsPerJob: 0,
    backoffMs: null,
    noticesMs: null,
    immediate: true,
    tlsClient: 'notls',
    tlsServer: 'notls',
    pipelining: true,
    masterDebug: false,
    slaveDebug: false,
    senderRewrite: null,
    rcptPerTransaction: 100,
    maxClientConnections: 20,
    dkimSign: false,
    ...overrides,
  };
}

/** `imta`: rewrite rules and channels as parsed from an imta.cnf (then `channels` is not used). */
export function makeConfig(root: string, opts: { dnsServers?: string[]; raw?: Record<string, string>; aliases?: Record<string, string[]>; channels?: Channel[]; imta?: ImtaConfig } = {}): InstanceConfig {
  const channels = opts.channels ?? [];
  return {
    root,
    imta: opts.imta ?? { rules: [], channels, channelByName: new Map(channels.map((c) => [c.name.toLowerCase(), c])), hostTable: new Map() },
    dispatcher: { services: [] },
    jobController: { maxMessages: 100000, synchTimeSec: 14400, rebuildParallelChannel: 12, pools: [], channels: [], maxLifeAgeSec: 0, maxLifeConns: 0 },
    options: {
      raw: opts.raw ?? {},
      internalIp: [],
      dnsServers: opts.dnsServers ?? [],
      localHost: 'tsubame.sim.test',
      maxMessageSize: 10240000,
      maxRecipients: 1000,
      maxMessagesPerSession: 1000,
      maxBadCommands: 10,
      maxConnsPerIp: 50,
      bannerPurgeDelayMs: 0,
      bannerPurgeDelayInternalMs: 0,
      smtpTimeoutMs: 300000,
      smtpCommandDeadlineMs: 300000,
      smtpMinDataRate: 500,
      smtpSoftErrorLimit: 10,
      smtpHardErrorLimit: 20,
      smtpErrorSleepMs: 1000,
      smtpJunkCommandLimit: 100,
      maxReceivedLines: 50,
      tlsKeyFile: null,
      tlsCertFile: null,
      fastFlushDomains: null,
      etrnAllow: [],
      etrnChannelAllow: [],
      etrnRateLimit: 10,
      metricsPort: null,
    },
    aliases: new Map(Object.entries(opts.aliases ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
    mappings: { file: null, tables: new Map() },
    users: { file: null, users: new Map() },
    dkim: { file: null, keys: [] },
    diagnostics: [],
  };
}

/** A temporary instance root with queued message files. */
export class Spool {
  readonly root = mkdtempSync(join(tmpdir(), 'tsubame-delivery-'));
  private n = 0;

  constructor() {
    for (const d of ['log', 'queue/test', 'mailbox']) mkdirSync(join(this.root, d), { recursive: true });
  }

  /** A queued message to `to` (all pending), with a Message-ID. */
  message(from: string, to: string[], opts: { body?: string; envelope?: Partial<Envelope> } = {}): DeliveryItem {
    const id = `msg${++this.n}`;
    const path = join(this.root, 'queue', 'test', id);
    const text =
      opts.body ??
      `From: <${from || 'mailer-daemon@sim.test'}>\r\nTo: list@sim.test\r\nSubject: test ${id}\r\nMessage-ID: <${id}@tsubame.sim.test>\r\n\r\nHello ${id}.\r\n.leading dot\r\n`;
    writeFileSync(path, text);
    const envelope: Envelope = {
      id,
      channel: 'tcp_local',
      from,
      mailParams: {},
      sourceChannel: 'tcp_intranet',
      clientAddress: '127.0.0.1',
      clientHelo: 'client.sim.test',
      arrival: new Date(),
      attempts: 0,
      nextAttempt: null,
      recipients: to.map((address) => ({ address, original: address, orcpt: null, notify: null, state: 'pending' as const, status: null })),
      held: false,
      ...opts.envelope,
    };
    return { ref: { id, channel: envelope.channel, path }, envelope };
  }

  context(config: InstanceConfig, channel: Channel): ChannelJobContext {
    return {
      root: this.root,
      config,
      channel,
      logger: silentLogger(),
      openBody: async (path: string) => createReadStream(path),
    };
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** The outcome of each recipient address, flattened: address → result. */
export function resultsByAddress(outcomes: Array<{ recipients: Array<{ address: string; result: string }> }>): Record<string, string> {
  const map: Record<string, string> = {};
  for (const o of outcomes) for (const r of o.recipients) map[r.address] = r.result;
  return map;
}
