// The group a secret file of etc/ that a command creates as root is given (0640), so that the
// server processes, running as the service user, can read it: the service user's primary group.
import { lookupUser, serverUserName } from '../common/service-user.js';
import { loadInstanceConfig } from '../config/load.js';

/** null when not root, or when the instance runs as root (the file stays 0600). */
export function serviceGroup(root: string): number | null {
  if (process.getuid?.() !== 0) return null;
  const { config } = loadInstanceConfig(root);
  const user = lookupUser(serverUserName(config?.options.raw ?? {}));
  return user && user.uid !== 0 ? user.gid : null;
}
