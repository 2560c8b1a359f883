// How many connections wait in the kernel's accept queue of the shared listening sockets
// (ACCEPT_MODE=SHARED: they wait there, not in the dispatcher, while every server process is at
// MAX_CONNS), for `imsimta process`'s `waiting`. Linux shows it in /proc/net/tcp{,6}: for a socket
// in the LISTEN state (st 0A) the rx_queue column is its accept backlog. The socket is found by
// the inode its descriptor links to (/proc/self/fd/N → socket:[inode]).
import { readFileSync, readlinkSync } from 'node:fs';

const LISTEN = '0A';

/** Accept backlog per socket inode, from the text of /proc/net/tcp or /proc/net/tcp6. */
export function listenBacklogs(procNetTcp: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of procNetTcp.split('\n')) {
    const f = line.trim().split(/\s+/);
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode …
    if (f.length < 10 || f[3] !== LISTEN) continue;
    const rx = f[4]!.split(':')[1];
    if (rx === undefined) continue;
    out.set(f[9]!, parseInt(rx, 16));
  }
  return out;
}

/** The inode of the socket behind a descriptor of this process, or null. */
function socketInode(fd: number): string | null {
  try {
    return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1] ?? null;
  } catch {
    return null;
  }
}

/** Connections waiting to be accepted on these descriptors (listening sockets); 0 where Linux's /proc is missing. */
export function acceptBacklog(fds: readonly number[]): number {
  if (fds.length === 0) return 0;
  const inodes = fds.map(socketInode).filter((i): i is string => i !== null);
  if (inodes.length === 0) return 0;
  const backlogs = new Map<string, number>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    try {
      for (const [inode, n] of listenBacklogs(readFileSync(file, 'latin1'))) backlogs.set(inode, n);
    } catch {
      // no IPv6, or not Linux
    }
  }
  return inodes.reduce((n, inode) => n + (backlogs.get(inode) ?? 0), 0);
}
