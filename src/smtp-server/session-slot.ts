// A session's place in the counts (the process's open sessions, which the dispatcher reports as
// CONNS and tsubame_connections_open, and the per-address count of MAX_CONNS_PER_IP): taken
// when the dispatcher hands the socket over, given back exactly once when the session ends,
// whichever sign of its end comes first. Several signs are wired to it because none of them
// is sure alone: STARTTLS removes every listener of the plaintext socket (smtp-server's
// upgrade()), and the session then ends on the TLS socket.

export class SessionSlot {
  /** Resolves when the slot is given back. */
  readonly closed: Promise<void>;
  private released = false;
  private resolveClosed!: () => void;

  constructor(private readonly onRelease: () => void) {
    this.closed = new Promise<void>((resolve) => (this.resolveClosed = resolve));
  }

  get open(): boolean {
    return !this.released;
  }

  /** Gives the slot back; later calls do nothing. */
  readonly release = (): void => {
    if (this.released) return;
    this.released = true;
    this.resolveClosed();
    this.onRelease();
  };
}
