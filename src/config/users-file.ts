// Writes etc/users for `imsimta passwd`, through secret-file.ts: locked, fsynced, the old mode and
// owner kept (a new file made by root: 0640 in the service user's group), renamed into place.
// A reader — the watcher, a server process starting — sees the old file or the new, never half.
import { SecretFileError, rewriteSecretFile } from './secret-file.js';
import { applyUserChange, type UserChange } from './users-edit.js';

export { SecretFileError as UsersFileError };

export interface UsersFileUpdate {
  action: 'created' | 'updated';
  line: number;
}

/** `serviceGid`: the group of the service user the instance runs as (a new file made by root is readable by it). */
export function updateUsersFile(path: string, name: string, change: UserChange, serviceGid: number | null = null): Promise<UsersFileUpdate> {
  return rewriteSecretFile(
    path,
    (text) => {
      const edit = applyUserChange(text, name, change);
      if (!edit.ok) throw new SecretFileError(`${path}: ${edit.error}`);
      return { text: edit.text, result: { action: edit.action, line: edit.line } };
    },
    serviceGid,
    'imsimta passwd',
  );
}
