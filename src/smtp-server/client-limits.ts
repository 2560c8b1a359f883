// Concurrent sessions per client IP address (MAX_CONNS_PER_IP, like Postfix's anvil
// smtpd_client_connection_count_limit). Counted per SMTP server process: the dispatcher spreads
// one client's connections over few processes, so the effective limit is at most this times
// the number of processes of the service.

export class PerIpCounter {
  private readonly counts = new Map<string, number>();

  /** `limit` 0 = unlimited. */
  constructor(private readonly limit: number) {}

  /** Counts a new session; false (and nothing counted) when the address is at its limit. */
  acquire(ip: string): boolean {
    const n = this.counts.get(ip) ?? 0;
    if (this.limit > 0 && n >= this.limit) return false;
    this.counts.set(ip, n + 1);
    return true;
  }

  release(ip: string): void {
    const n = this.counts.get(ip) ?? 0;
    if (n <= 1) this.counts.delete(ip);
    else this.counts.set(ip, n - 1);
  }

  count(ip: string): number {
    return this.counts.get(ip) ?? 0;
  }
}
