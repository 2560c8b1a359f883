// Where an instance keeps its files (DESIGN.md "Instance layout").
import { resolve, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface InstancePaths {
  root: string;
  etc: string;
  imtaCnf: string;
  dispatcherCnf: string;
  jobControllerCnf: string;
  optionDat: string;
  aliases: string;
  mappings: string;
  /** Users who may authenticate (SMTP AUTH) and their addresses: secret, root/service user only. */
  users: string;
  /** DKIM signing: the keys file and the private keys (etc/dkim/). */
  dkimDir: string;
  dkimKeys: string;
  /** Per-destination traffic shaping of outbound SMTP (optional). */
  shapingCnf: string;
  /** SRS secrets, one a line, the first signs (secret: root/service user only). */
  srsSecrets: string;
  /** SMTP AUTH credentials of outbound channels (maysaslclient/mustsaslclient; secret: root/service user only). */
  clientAuth: string;
  queue: string;
  /** Queue files that could not be read are moved here, outside the channel directories. */
  corrupt: string;
  log: string;
  mailLog: string;
  /** The bounces channel's records: one JSON object per bounced list member (imsimta bounces). */
  bounceLog: string;
  run: string;
  mailbox: string;
  /** Verified TLS's state: the MTA-STS policy cache (tls/mta-sts/) and TLS-RPT counts and reports (tls/tlsrpt/). */
  tls: string;
  /** The watcher's control socket. */
  controlSocket: string;
  /** The job controller's socket (enqueue notices, qm, flush, ETRN). */
  jobControllerSocket: string;
}

/** The package directory: the default IMTA_ROOT. */
export const packageRoot = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

export function instancePaths(root: string): InstancePaths {
  const r = resolve(root);
  const etc = join(r, 'etc');
  const run = join(r, 'run');
  return {
    root: r,
    etc,
    imtaCnf: join(etc, 'imta.cnf'),
    dispatcherCnf: join(etc, 'dispatcher.cnf'),
    jobControllerCnf: join(etc, 'job_controller.cnf'),
    optionDat: join(etc, 'option.dat'),
    aliases: join(etc, 'aliases'),
    mappings: join(etc, 'mappings'),
    users: join(etc, 'users'),
    dkimDir: join(etc, 'dkim'),
    dkimKeys: join(etc, 'dkim', 'keys'),
    shapingCnf: join(etc, 'shaping.cnf'),
    srsSecrets: join(etc, 'srs.secrets'),
    clientAuth: join(etc, 'client_auth'),
    queue: join(r, 'queue'),
    corrupt: join(r, 'corrupt'),
    log: join(r, 'log'),
    mailLog: join(r, 'log', 'mail.log'),
    bounceLog: join(r, 'log', 'bounces.jsonl'),
    run,
    mailbox: join(r, 'mailbox'),
    tls: join(r, 'tls'),
    controlSocket: join(run, 'watcher.sock'),
    jobControllerSocket: join(run, 'job_controller.sock'),
  };
}

/** `--root DIR` wins over IMTA_ROOT, which wins over the package directory. */
export function resolveRoot(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flag ?? env.IMTA_ROOT ?? packageRoot);
}
