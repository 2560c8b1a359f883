// Reading a secret file of etc/ (the users file, the SRS secrets, the smart hosts' credentials)
// for the configuration: its text in one open (the mode checked is the mode of what was read),
// an unreadable file reported as an error at file:0, and a mode that lets every user read it or
// others write it reported as a warning that says what that exposes for this file.
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import type { Diagnostic } from './types.js';

/** What it costs when the file is readable by every user / writable by others, for the warning. */
export interface SecretFileRisk {
  readable: string;
  /** Said only when there is something to say beyond "others can change it". */
  writable?: string;
}

export type SecretRead = { kind: 'text'; text: string } | { kind: 'missing' } | { kind: 'unreadable' };

/**
 * Reads `file`. A missing file is `missing` when `missingAllowed` (the caller treats it as no
 * secrets), otherwise an error like any unreadable one.
 */
export function readSecretFile(file: string, diagnostics: Diagnostic[], risk: SecretFileRisk, missingAllowed: boolean): SecretRead {
  let text: string;
  let mode: number;
  try {
    const fd = openSync(file, 'r');
    try {
      mode = fstatSync(fd).mode;
      text = readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && missingAllowed) return { kind: 'missing' };
    diagnostics.push({ file, line: 0, severity: 'error', message: `cannot read file: ${code ?? (e as Error).message}` });
    return { kind: 'unreadable' };
  }
  const permission = secretPermissionProblem(mode, risk);
  if (permission) diagnostics.push({ file, line: 0, severity: 'warning', message: permission });
  return { kind: 'text', text };
}

/** Others may read the file, or others or the group may write it. */
export function secretPermissionProblem(mode: number, risk: SecretFileRisk): string | null {
  const octal = (mode & 0o777).toString(8).padStart(4, '0');
  const fix = "chmod 600 (or 640 with the service's group)";
  if (mode & 0o022) return `writable by ${mode & 0o002 ? 'every user of the host' : 'its group'} (mode ${octal}): ${risk.writable ? `${risk.writable}; ` : ''}${fix}`;
  if (mode & 0o004) return `readable by every user of the host (mode ${octal}): ${risk.readable}; ${fix}`;
  return null;
}
