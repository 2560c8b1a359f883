// start-msg as root: finds the service user (option.dat SERVER_USER), checks that it can reach
// the instance and read the configuration, gives it the directories the processes write, and
// says how to start the watcher as that user (setpriv, keeping CAP_NET_BIND_SERVICE and CAP_CHOWN).
// Started by any other user, nothing changes: the processes run as that user. The commands that
// write queue files themselves (qm, submit) become the service user when root runs them, so that
// the job controller can read and rewrite what they write.
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageRoot, type InstancePaths } from '../common/instance.js';
import type { InstanceConfig } from '../config/types.js';
import { checkInstanceAccess, giveDirectoriesTo } from '../common/instance-ownership.js';
import { SERVICE_CAPABILITIES } from '../common/capabilities.js';
import { commandPath, lookupUser, missingUserMessage, serverUserName, switchUserArgs, type ServiceUser } from '../common/service-user.js';
import { CommandError } from './errors.js';

/**
 * The user to switch to, after preparing the instance for it; null when no switch is due (not
 * root, or SERVER_USER is root). When the service user cannot reach the instance or the program
 * (a clone under /root, mode 0700), the instance still starts, as root, with a warning saying
 * how to fix it: `npm start` on a fresh clone must work, and the warning names the risk.
 */
export function prepareServiceUser(paths: InstancePaths, config: InstanceConfig): ServiceUser | null {
  if (process.geteuid?.() !== 0) return null;
  const name = serverUserName(config.options.raw);
  const user = lookupUser(name);
  if (!user) throw new CommandError(missingUserMessage(name));
  if (user.uid === 0) return null;
  if (!commandPath('setpriv')) throw new CommandError(`setpriv (util-linux) is needed to run as the service user ${name}; install util-linux`);
  const atRoot = (file: string) => (isAbsolute(file) ? file : resolve(paths.root, file));
  const readable = [paths.etc, paths.imtaCnf, paths.dispatcherCnf, paths.jobControllerCnf, paths.optionDat, paths.aliases, paths.mappings, paths.users, paths.srsSecrets];
  for (const file of [config.options.tlsKeyFile, config.options.tlsCertFile]) if (file) readable.push(atRoot(file));
  // The DKIM keys: one the service user cannot read (made 0600 by root) would stop every process's configuration.
  if (config.dkim.file) readable.push(paths.dkimDir, config.dkim.file, ...config.dkim.keys.map((k) => k.keyFile));
  // LDAP_PASSWORD_FILE: unreadable, every lookup would be "unavailable" (451 4.4.3 at RCPT) until it is fixed.
  if (config.options.ldap?.passwordFile) readable.push(config.options.ldap.passwordFile);
  try {
    checkInstanceAccess(paths, user, readable, packageRoot);
  } catch (err) {
    process.stderr.write(`start-msg: warning: running as root: ${(err as Error).message} (or set SERVER_USER=root in etc/option.dat to run as root without this warning)\n`);
    return null;
  }
  try {
    giveDirectoriesTo(paths, user);
  } catch (err) {
    throw new CommandError((err as Error).message);
  }
  return user;
}

/**
 * start-msg --foreground as root: runs start-msg again as the service user, in the foreground,
 * passing signals on; resolves with its exit code. This process only waits: it holds no socket
 * and reads nothing from the network.
 */
export function runForegroundAs(user: ServiceUser, argv: string[], root: string): Promise<number> {
  const script = fileURLToPath(new URL('./start-msg.js', import.meta.url));
  const child = spawn(commandPath('setpriv')!, [...switchUserArgs(user, SERVICE_CAPABILITIES), process.execPath, ...process.execArgv, script, ...argv], {
    stdio: 'inherit',
    env: { ...process.env, IMTA_ROOT: root },
  });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => child.kill(signal));
  return new Promise((resolvePromise, reject) => {
    child.on('error', (err) => reject(new CommandError(`cannot start as ${user.name}: ${err.message}`)));
    child.on('exit', (code, signal) => resolvePromise(code ?? (signal ? 1 : 0)));
  });
}

/**
 * Root running a command that writes queue files: becomes the service user (this process, for
 * good) when queue/ is that user's, so that the files are the job controller's to read and
 * rewrite. Nothing happens otherwise.
 */
export function becomeQueueOwner(paths: InstancePaths, options: InstanceConfig['options'] | null): void {
  if (process.geteuid?.() !== 0) return;
  const user = lookupUser(serverUserName(options?.raw ?? {}));
  if (!user || user.uid === 0) return;
  try {
    if (statSync(paths.queue).uid !== user.uid) return;
  } catch {
    return;
  }
  process.setgroups!(user.groups);
  process.setgid!(user.gid);
  process.setuid!(user.uid);
}
