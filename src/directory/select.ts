// The one place the source of users is chosen for SMTP AUTH and sender ownership: LDAP when
// option.dat configures it (LDAP_HOST), else the files of etc/ (etc/users and the local domains
// of imta.cnf). One per configuration a process serves; close() lets go of LDAP's connections.
import type { InstanceConfig } from '../config/types.js';
import { filesDirectory } from './files-source.js';
import type { KdfGate } from './kdf-gate.js';
import type { LdapPoolEvent } from './ldap-pool.js';
import { LdapDirectory } from './ldap-source.js';
import type { UserDirectory } from './types.js';

export interface OpenUserDirectory {
  directory: UserDirectory;
  close(): Promise<void>;
}

export interface UserDirectoryOptions {
  /** The process's gate on concurrent password hashes (files source). */
  gate: KdfGate;
  /** Told of LDAP connections made, lost and refused (never a password). */
  onLdapEvent?(event: LdapPoolEvent & { pool: 'search' | 'auth' }): void;
}

export function openUserDirectory(config: InstanceConfig, opts: UserDirectoryOptions): OpenUserDirectory {
  if (config.options.ldap) {
    const ldap = new LdapDirectory(config.options.ldap, { onEvent: (e) => opts.onLdapEvent?.(e) });
    return { directory: ldap, close: () => ldap.close() };
  }
  return { directory: filesDirectory(config, { gate: opts.gate }), close: async () => {} };
}
