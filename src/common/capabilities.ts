// The Linux capabilities tsubame keeps when started as root, and nothing else: the watcher holds
// both, the dispatcher keeps CAP_NET_BIND_SERVICE (ports below 1024, also after a reload), the
// job controller keeps CAP_CHOWN (a Maildir file delivered into a mailbox directory another user
// owns is given to that owner), every other process gets none. Sets are read from
// /proc/<pid>/status; setpriv (util-linux) keeps some and drops the rest across an exec, through
// the ambient set (the programs are plain executables without file capabilities).
import { readFileSync } from 'node:fs';

export type Capability = 'chown' | 'net_bind_service';

/** Bit numbers of <linux/capability.h>. */
const BIT: Record<Capability, bigint> = { chown: 1n << 0n, net_bind_service: 1n << 10n };

/** What the watcher keeps when it becomes the service user: what its parts need between them. */
export const SERVICE_CAPABILITIES: readonly Capability[] = ['net_bind_service', 'chown'];

function capabilityMask(caps: readonly Capability[]): bigint {
  return caps.reduce((mask, c) => mask | BIT[c], 0n);
}

/** One capability set (`Amb`ient, `Eff`ective...) of a /proc/<pid>/status text; 0n when absent. */
export function capabilitySet(status: string, set: 'Amb' | 'Eff' | 'Prm' | 'Inh'): bigint {
  const m = new RegExp(`^Cap${set}:\\s*([0-9a-f]+)$`, 'im').exec(status);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

/** setpriv's arguments that keep `caps` (inheritable and ambient, so past the next exec) and drop the rest. */
export function setprivCapabilityArgs(caps: readonly Capability[]): string[] {
  const keep = caps.map((c) => `,+${c}`).join('');
  return [`--inh-caps=-all${keep}`, `--ambient-caps=-all${keep}`];
}

/**
 * The capabilities of `keep` to pass on to a child, given this process's status: null when the
 * child may simply inherit the ambient set (it holds nothing beyond them), else the ones to keep.
 */
export function capabilitiesToKeep(status: string, keep: readonly Capability[]): Capability[] | null {
  const ambient = capabilitySet(status, 'Amb');
  const kept = keep.filter((c) => (ambient & BIT[c]) !== 0n);
  return ambient === capabilityMask(kept) ? null : kept;
}

/** Whether this process holds `cap` in its effective set (root does; elsewhere than Linux, only root). */
export function processHasCapability(cap: Capability): boolean {
  try {
    return (capabilitySet(readFileSync('/proc/self/status', 'utf8'), 'Eff') & BIT[cap]) !== 0n;
  } catch {
    return process.geteuid?.() === 0;
  }
}
