// Who exists on the local channel `l`: moved to directory/local-users.ts (the directory's files
// source uses it too); re-exported here for the SMTP server until it asks the directory.
export { LocalUsers, localUserKey } from '../directory/local-users.js';
