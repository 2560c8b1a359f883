// The job controller: a bounded index of the queued messages (filled by start-up and periodic
// scans and by "enqueued" notices), master channel jobs started within the pools' JOB_LIMIT and
// the channels' maxjobs, and the outcome of every attempt written back to the queue file before
// anything else happens to the message (delivered recipients are never sent again, deferred ones
// wait for the channel's backoff, failed ones get a DSN).
//
// This module puts the parts together and routes the requests of the job controller's socket
// (protocol.ts) to them. The parts, as Postfix's qmgr splits the same work, each importing only
// those below it (what it needs from one above it is a callback passed in here):
//   scheduler.ts  jobs started within the limits, batches taken, lingering, wake-ups (qmgr_active.c, draining)
//   deliver.ts    a batch handed to its job (qmgr_deliver.c)
//   settle.ts     outcomes, notices, mail.log, the queue file rewritten or retired (qmgr_defer.c, qmgr_bounce.c)
//   scan.ts       the queue directories scanned for what the index does not hold (qmgr_scan.c)
//   intake.ts     the message index and what enters it, for a named reason (qmgr_active.c, feeding)
import type { InstanceConfig } from '../config/types.js';
import type { Logger } from '../common/logger.js';
import { instancePaths, type InstancePaths } from '../common/instance.js';
import { MailLog } from '../common/mail-log.js';
import { queueStoreFor, readStoppedChannels, type Envelope, type NoticedFile, type QueueStore } from '../queue/index.js';
import { compileRewriter } from '../rewrite/index.js';
import { openHostedDomains, type HostedDomainSet } from '../directory/hosted-domains.js';
import { FlushRelay, type FlushNotice } from '../farm/index.js';
import { srsSettingsOf } from '../srs/index.js';
import { NoticeSender, DEFAULT_RETURN_LIMIT_OCTETS, returnLimitOctets } from '../notices/send.js';
import { channelByName, firstDueMs, poolsOf } from './config.js';
import { CounterBook, countersPath, type CounterTable } from './counters.js';
import { DeliveryStatsBook } from './delivery-stats.js';
import { FanoutBoard } from './fanout-board.js';
import { EtrnRateLimiter } from './etrn-rate.js';
import { Intake } from './intake.js';
import { QueueScanner } from './scan.js';
import { Scheduler } from './scheduler.js';
import { deliverBatch, prepareChannels, type DeliveryParts } from './deliver.js';
import { Settler } from './settle.js';
import type { JobRunner } from './runner.js';
import type { ChannelStatus, FlushReply, JobControllerReply, JobControllerRequest, ReplyTo, StatusReply } from './protocol.js';

export interface ControllerOptions {
  config: InstanceConfig;
  runner: JobRunner;
  logger: Logger;
  /** Reloads the configuration (the `reload` request); throws with file:line lines on error. */
  loadConfig?: () => Promise<InstanceConfig>;
  now?: () => number;
}

export class JobController {
  private config: InstanceConfig;
  private readonly paths: InstancePaths;
  private store: QueueStore;
  private notices: NoticeSender;
  /** The directory's hosted domains, for the rules' $V/$Z when notices are routed (a reload opens another). */
  private hostedDomains: HostedDomainSet;
  private readonly mailLog: MailLog;
  private readonly counters: CounterBook;
  /** DNS cache and outbound connection counts per channel, as the jobs report them (metrics). */
  private readonly deliveryStats = new DeliveryStatsBook();
  /** What the SMTP channels' fan-outs have in hand, as their threads report it (status, metrics, qm shaping). */
  private readonly fanouts: FanoutBoard;
  /** ETRN requests per client address (ETRN_RATE_LIMIT). */
  private readonly etrnRate: EtrnRateLimiter;
  /** Configurations loaded so far: jobs made from an older one are closed (job-host.ts). */
  private generation = 1;
  /** The operator's flushes so far: jobs empty their host reachability cache when it changes (job-host.ts). */
  private flushGeneration = 0;
  /** A farm's node: flushes asked here are sent to the other nodes, theirs carried out here (FARM_REDIS_URL; set at start). */
  private relay: FlushRelay | null = null;
  private readonly intake: Intake;
  private readonly scanner: QueueScanner;
  private readonly scheduler: Scheduler;
  private readonly settler: Settler;
  private readonly delivery: DeliveryParts;
  private readonly now: () => number;

  constructor(private readonly opts: ControllerOptions) {
    this.config = opts.config;
    this.now = opts.now ?? Date.now;
    this.paths = instancePaths(opts.config.root);
    this.fanouts = new FanoutBoard(this.paths.root);
    this.store = queueStoreFor(this.paths, this.config, opts.logger);
    this.mailLog = new MailLog(this.paths.mailLog);
    this.hostedDomains = this.openHostedDomains();
    this.notices = this.makeNoticeSender();
    this.counters = new CounterBook(countersPath(this.paths.log));
    this.counters.load();
    this.etrnRate = new EtrnRateLimiter(this.config.options.etrnRateLimit);
    const { logger } = opts;
    const now = this.now;
    const config = () => this.config;
    const store = () => this.store;
    const kick = () => this.scheduler.kick();
    this.intake = new Intake({
      root: this.paths.root,
      config: this.config,
      store,
      firstDueMs: (envelope, nowMs) => firstDueMs(this.config, envelope, nowMs),
      onArrival: (envelope) => this.countArrival(envelope),
      onRoom: () => this.scanner.maybeRescanForRoom(),
      logger,
      now,
    });
    this.scanner = new QueueScanner({ intake: this.intake, store, config, kick, logger, now });
    this.settler = new Settler({ intake: this.intake, config, store, notices: () => this.notices, mailLog: this.mailLog, counters: this.counters, kick, logger, now });
    const delivery = (this.delivery = {
      intake: this.intake,
      settler: this.settler,
      runner: opts.runner,
      deliveryStats: this.deliveryStats,
      config,
      generations: () => ({ config: this.generation, flush: this.flushGeneration }),
      logger,
      now,
      kick,
    });
    this.scheduler = new Scheduler({
      ready: this.intake,
      config,
      deliver: (batch) => deliverBatch(delivery, batch),
      onJobEnd: () => this.scanner.maybeRescanForRoom(),
      logger,
      now,
    });
    opts.runner.configure(poolsOf(this.config));
  }

  private get logger(): Logger {
    return this.opts.logger;
  }

  /** Ready to take requests at once; the first scan goes on in the background (`scanned` resolves when it is done). */
  async start(): Promise<{ scanned: Promise<void> }> {
    const farm = this.config.options.farm;
    if (farm?.redisUrl) this.relay = new FlushRelay({ url: farm.redisUrl, node: farm.nodeName, logger: this.logger, onFlush: (notice) => void this.flushFromFarm(notice) });
    const removed = await this.store.sweepTemporary().catch(() => 0);
    if (removed) this.logger.info({ removed }, 'removed temporary files left by writers that died');
    this.scheduler.setStopped(await readStoppedChannels(this.paths.root).catch(() => []));
    this.scanner.armSynchTimer();
    prepareChannels(this.delivery);
    // Without its journal, the fast-flush index is rebuilt from the files the scan left unread.
    const scanned = this.scanner.rescan('start').then(() => this.intake.rebuildFastFlush(() => this.store.scan()));
    return { scanned: scanned.then(() => {}, (err: Error) => this.logger.error({ err }, 'fast-flush rebuild failed')) };
  }

  /** Finishes the batches in hand, then stops. */
  async stop(): Promise<void> {
    const scansDone = this.scanner.stop();
    await this.scheduler.stop();
    await scansDone;
    await this.counters.save().catch((err: Error) => this.logger.warn({ err }, 'cannot save the counters'));
    await this.opts.runner.close();
    await this.store.close();
    await this.hostedDomains.close();
    this.intake.close();
    this.settler.writeMailLog();
    this.mailLog.close();
    this.fanouts.close();
  }

  // ------------------------------------------------------------------ requests

  /** A request of the job controller's socket (validated by protocol.ts parseJobControllerRequest). */
  async handle(req: JobControllerRequest): Promise<JobControllerReply> {
    switch (req.op) {
      case 'enqueued':
        return this.onEnqueued(req.refs);
      case 'qm':
        return this.onQm(req);
      case 'flush':
        return this.flush(req.target, req.origin ?? 'operator', req.client ?? null);
      case 'status':
        return this.status();
      case 'counters':
        return { ok: true, counters: this.counters.snapshot() };
      case 'reload':
        return this.reload();
      case 'rescan':
        await this.scanner.rescan('request');
        return { ok: true, index: this.intake.size };
    }
  }

  private async onEnqueued(refs: NoticedFile[]): Promise<ReplyTo<'enqueued'>> {
    const admitted = await this.intake.admitEnqueued(refs);
    this.scheduler.kick();
    return { ok: true, admitted };
  }

  private async onQm(req: Extract<JobControllerRequest, { op: 'qm' }>): Promise<ReplyTo<'qm'>> {
    if (!('ids' in req)) {
      // start, stop: queue/.stopped-channels says which channels are stopped now.
      this.scheduler.setStopped(await readStoppedChannels(this.paths.root).catch(() => this.scheduler.stoppedChannels()));
      this.scheduler.kick();
      return { ok: true };
    }
    const ids = req.ids.map((x) => x.toUpperCase());
    if (req.action === 'hold' || req.action === 'delete') {
      this.intake.dropped(ids);
      return { ok: true };
    }
    // Released and returned messages are tried (or settled) at once.
    const found = await this.scanner.admitReleased(ids);
    this.scheduler.kick();
    return { ok: true, found };
  }

  /**
   * Retry now (imsimta flush, ETRN): a fast-flush domain through the per-destination index
   * (only its deferred messages, ignoring their backoff), `#channel` that channel, no target
   * everything; another domain is refused to ETRN (459) and, for the operator, its messages among
   * those the scheduler holds. See fast-flush.ts. ETRN is rate-limited per client address and
   * leaves the jobs' host reachability caches alone (a host found down is not tried again before
   * SMTP_HOST_RETRY has passed); the operator's flush makes the jobs forget them.
   */
  async flush(target: string | null, origin: 'etrn' | 'operator' = 'operator', client: string | null = null): Promise<FlushReply> {
    if (origin === 'etrn' && client !== null && !this.etrnRate.allow(client, this.now())) {
      this.logger.info({ target, client }, 'ETRN refused: too many from this client');
      return { ok: false, code: 458, count: 0, text: `too many ETRN requests from ${client}; try again later`, reason: 'too many ETRN requests, try again later' };
    }
    const reply = await this.flushHere(target, origin, client);
    // The other nodes of a farm hold the rest of the mail: they retry theirs too (an ETRN refused here would be refused there).
    if (!reply.ok || !this.relay) return reply;
    const told = this.relay.state === 'up';
    void this.relay.publish(target, origin);
    return told ? farmWideReply(reply) : reply;
  }

  private flushHere(target: string | null, origin: 'etrn' | 'operator', client: string | null): Promise<FlushReply> {
    if (origin === 'operator') this.flushGeneration++;
    return this.intake.flush(target, origin, client, {
      rescan: () => void this.scanner.rescan('flush'),
      kick: () => this.scheduler.kick(),
      hasChannel: (name) => channelByName(this.config, name) !== undefined,
    });
  }

  /** A flush another node of the farm was asked for (its ETRN rate limit was applied there). */
  private async flushFromFarm(notice: FlushNotice): Promise<void> {
    try {
      const reply = await this.flushHere(notice.target, notice.origin, null);
      this.logger.info({ from: notice.node, target: notice.target, ok: reply.ok, count: reply.count }, 'farm: flush carried out');
    } catch (err) {
      this.logger.warn({ from: notice.node, target: notice.target, err: (err as Error).message }, 'farm: flush failed');
    }
  }

  status(): StatusReply {
    const channels: Record<string, ChannelStatus> = {};
    const counters = this.counters.snapshot();
    const names = new Set([...this.config.imta.channels.map((c) => c.name), ...this.intake.channels(), ...Object.keys(counters)]);
    for (const name of [...names].sort()) {
      channels[name] = { ...this.intake.channelStats(name), jobs: this.scheduler.jobsOfChannel(name), stopped: this.scheduler.isStopped(name), counters: counters[name] ?? null };
    }
    const pools = poolsOf(this.config).map((p) => ({
      name: p.name,
      job_limit: p.jobLimit,
      running: this.scheduler.jobsOfPool(p.name),
      threads: this.opts.runner.threads().filter((t) => t.pool === p.name).length,
    }));
    const index = this.intake.stats();
    return {
      ok: true,
      pid: process.pid,
      index: { size: index.size, max: index.max, high_water: index.highWater, overflowed: index.overflowed, scans: this.scanner.scans },
      batches: this.scheduler.handedSoFar(),
      pools,
      jobs: this.scheduler.jobRows(),
      channels,
      stopped: this.scheduler.stoppedChannels(),
      fast_flush: index.fastFlush,
      files_read: index.filesRead,
      scan: this.scanner.progress?.view() ?? null,
      delivery: this.deliveryStats.snapshot(this.config.imta.channels.filter((c) => c.smtp || c.lmtp).map((c) => c.name)),
      fanout: this.fanouts.latest(),
      farm: this.farmStatus(),
    };
  }

  /** Which node of a farm this is and whether it reaches Redis; null for a node alone. */
  private farmStatus(): StatusReply['farm'] {
    const farm = this.config.options.farm;
    if (!farm?.redisUrl) return null;
    return { node: farm.nodeName, node_count: farm.nodeCount, redis: this.relay?.state ?? 'down' };
  }

  /** After logrotate moved mail.log (SIGHUP): the next record opens the file anew. */
  reopenLogs(): void {
    this.mailLog.reopen();
  }

  counterTable(): CounterTable {
    return this.counters.snapshot();
  }

  private async reload(): Promise<ReplyTo<'reload'>> {
    if (!this.opts.loadConfig) return { ok: false, error: 'reload is not available' };
    let config: InstanceConfig;
    try {
      config = await this.opts.loadConfig();
    } catch (err) {
      const message = (err as Error).message;
      this.logger.error({ error: message }, 'reload failed; keeping the configuration in force');
      return { ok: false, error: message };
    }
    this.config = config;
    this.generation++;
    const old = this.store;
    this.store = queueStoreFor(this.paths, config, this.logger);
    void old.close();
    // The new set's first reading (LDAP_TIMEOUT at most) before the old one goes, so that notices never find it unknown.
    const hosted = this.openHostedDomains();
    await hosted.ready();
    void this.hostedDomains.close();
    this.hostedDomains = hosted;
    this.notices = this.makeNoticeSender();
    this.intake.configure(config);
    this.etrnRate.configure(config.options.etrnRateLimit);
    this.opts.runner.configure(poolsOf(config));
    this.scheduler.configure();
    this.scanner.armSynchTimer();
    prepareChannels(this.delivery);
    this.scheduler.kick();
    this.logger.info({ generation: this.generation }, 'configuration reloaded');
    return { ok: true, generation: this.generation };
  }

  private openHostedDomains(): HostedDomainSet {
    return openHostedDomains(this.config, {
      onEvent: (e) => (e.type === 'refreshed' ? this.logger.debug(e, 'hosted domains read') : this.logger.warn(e, 'hosted domains not read')),
    });
  }

  private makeNoticeSender(): NoticeSender {
    return new NoticeSender({
      store: this.store,
      rewriter: compileRewriter(this.config.imta, { hostedDomains: this.hostedDomains }),
      mailLog: this.mailLog,
      logger: this.logger,
      localHost: this.config.options.localHost,
      returnLimitOctets: returnLimitOctets(this.config, DEFAULT_RETURN_LIMIT_OCTETS),
      srs: srsSettingsOf(this.config),
    });
  }

  /** A message new in the queue (a slave's, or a notice of ours): counted as enqueued for its channel. */
  private countArrival(envelope: Envelope): void {
    this.counters.add(envelope.channel, 'enqueued', 1, envelope.recipients.filter((r) => r.state === 'pending').length);
  }
}

/**
 * A flush reply once the farm's other nodes were told: this node's count is not the farm's, so
 * "251 no messages waiting" and "253 N started" (RFC 1985) would claim what only this node knows;
 * the farm-wide answer is 252, pending messages started, their number unknown here.
 */
function farmWideReply(reply: FlushReply): FlushReply {
  if (reply.code !== 251 && reply.code !== 253) return reply;
  return { ...reply, code: 252, text: `${reply.text} on this node; the other nodes of the farm were asked to retry theirs` };
}
