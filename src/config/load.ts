// Loads and validates the files of etc/ (imta.cnf, dispatcher.cnf, job_controller.cnf, option.dat,
// aliases, mappings, users, dkim/keys, shaping.cnf, srs.secrets, client_auth) into one InstanceConfig, checking what crosses files:
// channels named by dispatcher.cnf, by `pool` and `saslswitchchannel` keywords and by client_auth, the local host,
// and which services can run without a certificate (services-in-force.ts). Only imta.cnf is
// required; the others default to Messaging Server's shipped values (no mappings file: no mapping
// tables; no users file: nobody can authenticate; no DKIM keys file: no signing; no shaping.cnf:
// every destination shaped with the defaults).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { instancePaths } from '../common/instance.js';
import { parseAliases } from './aliases.js';
import { parseDkimKeys } from './dkim.js';
import { parseDispatcherCnf } from './dispatcher-cnf.js';
import { parseImtaCnf } from './imta-cnf.js';
import { parseMappings } from './mappings.js';
import { parseSrsSecrets } from './srs.js';
import { checkMilterSlots } from './milter-options.js';
import { defaultJobControllerConfig, parseJobControllerCnf } from './job-controller-cnf.js';
import { parseOptionDat } from './option-dat.js';
import { parseUsers } from './users.js';
import { parseClientAuth } from './client-auth.js';
import { servicesInForce } from './services-in-force.js';
import { defaultShapingConfig, parseShapingCnf } from './shaping-cnf.js';
import { formatDiagnostic, type ClientAuthConfig, type Diagnostic, type ImtaConfig, type InstanceConfig, type SrsSecretsConfig } from './types.js';

export interface LoadResult {
  /** null when there was any error. */
  config: InstanceConfig | null;
  diagnostics: Diagnostic[];
}

/** Loads the files of `root`/etc, or of `etcDir` when given (the configuration in force, see in-force.ts). */
export function loadInstanceConfig(root: string, etcDir?: string): LoadResult {
  const paths = etcDir ? { ...instancePaths(root), ...configFiles(etcDir) } : instancePaths(root);
  const diagnostics: Diagnostic[] = [];
  const optional = (file: string) => (existsSync(file) ? file : null);

  const options = parseOptionDat(optional(paths.optionDat), diagnostics, root);
  const imta = parseImtaCnf(paths.imtaCnf, diagnostics, { noticesInHours: options.raw.RETURN_UNITS?.trim() === '1' });
  const dispatcherFile = optional(paths.dispatcherCnf);
  const listed = dispatcherFile ? parseDispatcherCnf(dispatcherFile, diagnostics) : { services: [] };
  const jcFile = optional(paths.jobControllerCnf);
  const jobController = jcFile ? parseJobControllerCnf(jcFile, diagnostics) : defaultJobControllerConfig();
  const aliases = parseAliases(optional(paths.aliases), diagnostics);
  const mappings = parseMappings(optional(paths.mappings), diagnostics);
  const users = parseUsers(optional(paths.users), diagnostics);
  const dkim = parseDkimKeys(optional(paths.dkimKeys), diagnostics);
  const shapingFile = optional(paths.shapingCnf);
  const shaping = shapingFile ? parseShapingCnf(shapingFile, diagnostics) : defaultShapingConfig();
  const srs = parseSrsSecrets(optional(paths.srsSecrets), diagnostics);
  const clientAuth = parseClientAuth(optional(paths.clientAuth), diagnostics);

  // The host's own name routes to the local channel (issue 2: "found at start, or set in option.dat").
  const local = imta.channelByName.get('l');
  if (local && !imta.hostTable.has(options.localHost)) {
    imta.hostTable.set(options.localHost, local.name);
    local.hosts = [...local.hosts, options.localHost];
  }

  for (const s of listed.services) {
    if (!imta.channelByName.has(s.channel.toLowerCase())) {
      diagnostics.push({ file: s.file, line: s.line, severity: 'error', message: `[SERVICE=${s.name}] runs as channel ${s.channel}, which imta.cnf does not define` });
    }
  }
  // A service that needs TLS and has no certificate is left off: not a problem of the files (a
  // fresh clone is so), so no diagnostic; cnbuild, start-msg and the dispatcher print its line.
  const dispatcher = servicesInForce(listed, imta, options);
  const pools = new Set(jobController.pools.map((p) => p.name.toUpperCase()));
  for (const c of imta.channels) {
    if (c.pool !== null && !pools.has(c.pool.toUpperCase())) {
      diagnostics.push({ file: c.file, line: c.line, severity: 'error', message: `channel ${c.name} names pool ${c.pool}, which job_controller.cnf does not define (pools: ${[...pools].join(', ')})` });
    }
  }
  for (const c of imta.channels) {
    if (c.verp && !c.smtp) diagnostics.push({ file: c.file, line: c.line, severity: 'warning', message: `channel ${c.name} has the verp keyword but does not deliver over SMTP: it has no effect there` });
  }
  if (dkim.keys.length > 0 && !imta.channels.some((c) => c.dkimSign)) {
    const k = dkim.keys[0]!;
    diagnostics.push({ file: k.file, line: k.line, severity: 'warning', message: 'no channel of imta.cnf has the dkimsign keyword: nothing is signed (add it to the outbound channel, e.g. tcp_local)' });
  }
  checkSrs(imta.channels, srs, paths.srsSecrets, diagnostics);
  checkSasl(imta, clientAuth, paths.clientAuth, diagnostics);
  if (options.milter) checkMilterSlots(imta.channels, options.milter, diagnostics);
  const failed = diagnostics.some((d) => d.severity === 'error');
  return {
    config: failed ? null : { root, imta, dispatcher, jobController, options, aliases, mappings, users, dkim, shaping, srs, clientAuth, diagnostics },
    diagnostics,
  };
}

function configFiles(etcDir: string) {
  return {
    imtaCnf: join(etcDir, 'imta.cnf'),
    dispatcherCnf: join(etcDir, 'dispatcher.cnf'),
    jobControllerCnf: join(etcDir, 'job_controller.cnf'),
    optionDat: join(etcDir, 'option.dat'),
    aliases: join(etcDir, 'aliases'),
    mappings: join(etcDir, 'mappings'),
    users: join(etcDir, 'users'),
    dkimDir: join(etcDir, 'dkim'),
    dkimKeys: join(etcDir, 'dkim', 'keys'),
    shapingCnf: join(etcDir, 'shaping.cnf'),
    srsSecrets: join(etcDir, 'srs.secrets'),
    clientAuth: join(etcDir, 'client_auth'),
  };
}

/** Channels asking for SRS need a secret; a channel with only some of the three keywords never rewrites. */
function checkSrs(channels: ImtaConfig['channels'], srs: SrsSecretsConfig, secretsFile: string, diagnostics: Diagnostic[]): void {
  const marked = channels.filter((c) => c.srs && (c.srs.source || c.srs.destination || c.srs.address));
  if (marked.length === 0) return;
  if (srs.secrets.length === 0) {
    const c = marked[0]!;
    diagnostics.push({ file: c.file, line: c.line, severity: 'error', message: `channel ${c.name} asks for SRS (sourcesrs, destinationsrs, addresssrs), but ${secretsFile} holds no secret: imsimta srs keygen makes one` });
  }
  const has = (flag: 'source' | 'destination' | 'address') => marked.some((c) => c.srs![flag]);
  const missing = (['source', 'destination', 'address'] as const).filter((f) => !has(f));
  if (missing.length > 0) {
    const c = marked[0]!;
    diagnostics.push({ file: c.file, line: c.line, severity: 'warning', message: `no channel has ${missing.map((f) => `${f}srs`).join(' or ')}: no sender is SRS-encoded (a forwarded copy needs sourcesrs on the channel it came in on, destinationsrs on the one it leaves on, addresssrs on the sender's)` });
  }
}

/**
 * SMTP AUTH across files: a saslswitchchannel names a channel of imta.cnf; a channel with
 * mustsaslclient has credentials in etc/client_auth (maysaslclient without them only warns);
 * credentials name a channel that uses them.
 */
function checkSasl(imta: ImtaConfig, clientAuth: ClientAuthConfig, clientAuthFile: string, diagnostics: Diagnostic[]): void {
  for (const c of imta.channels) {
    const target = c.sasl?.switchChannel;
    if (target && !imta.channelByName.has(target.toLowerCase())) {
      diagnostics.push({ file: c.file, line: c.line, severity: 'error', message: `channel ${c.name}: saslswitchchannel ${target} names no channel of imta.cnf` });
    }
    const client = c.sasl?.client ?? 'none';
    if (client !== 'none' && !clientAuth.byChannel.has(c.name.toLowerCase())) {
      diagnostics.push({
        file: c.file,
        line: c.line,
        severity: client === 'must' ? 'error' : 'warning',
        message: `channel ${c.name} has ${client}saslclient, but ${clientAuthFile} gives it no credentials (a line: ${c.name} username password)`,
      });
    }
    if (client !== 'none' && c.tlsClient === 'notls') {
      diagnostics.push({ file: c.file, line: c.line, severity: 'warning', message: `channel ${c.name} has ${client}saslclient but no maytls/musttls: credentials are sent only over TLS, so it never authenticates` });
    }
  }
  for (const [name, cred] of clientAuth.byChannel) {
    const channel = imta.channelByName.get(name);
    if (!channel) diagnostics.push({ file: cred.file, line: cred.line, severity: 'warning', message: `channel ${name} is not defined in imta.cnf (these credentials are not used)` });
    else if ((channel.sasl?.client ?? 'none') === 'none') diagnostics.push({ file: cred.file, line: cred.line, severity: 'warning', message: `channel ${name} has neither maysaslclient nor mustsaslclient (these credentials are not used)` });
  }
}

/** The configuration, or an Error whose message lists every error as `file:line: error: message`. */
export function loadInstanceConfigOrThrow(root: string, etcDir?: string): InstanceConfig {
  const { config, diagnostics } = loadInstanceConfig(root, etcDir);
  if (config) return config;
  throw new ConfigError(diagnostics.filter((d) => d.severity === 'error'));
}

export class ConfigError extends Error {
  constructor(readonly diagnostics: Diagnostic[]) {
    super(diagnostics.map(formatDiagnostic).join('\n'));
    this.name = 'ConfigError';
  }
}
