// How many connections a host gets in a channel's fan-out (pure). SMTPfeed §3.1 runs a host's
// transactions one after another on one connection, so as not to load the receiver, and spends
// its parallelism across hosts: a host waiting for mail gets one connection at once (opened while
// the rest of the list is still being looked up), and another only when the transactions waiting
// would take longer on the connections it has than a new connection takes to be ready (a host that
// greets 2 s late keeps one connection; a host with hundreds of transactions waiting gets a few),
// and only while the delivery thread is waiting on the network rather than on its CPU (more
// connections do not make a busy thread faster, they give it more to do). Traffic shaping
// (src/shaping) caps what this asks for.

export interface HostLoad {
  /** Recipients waiting for the host (of any message, looked up or not yet). */
  waitingRecipients: number;
  /** Transactions the waiting recipients of messages ready to go would make. */
  waitingTransactions: number;
  /** Connections serving the host now (open, or being opened). */
  connections: number;
  /** How long the host's last new connection took to be ready (connect, greeting, EHLO), or null before the first. */
  setupMs: number | null;
  /** How long a transaction to the host takes (a moving average), or null before the first. */
  transactionMs: number | null;
  /** The delivery thread's event loop has been busy most of the time lately (CPU-bound). */
  cpuBound?: boolean;
}

export function wantsAnotherConnection(h: HostLoad): boolean {
  if (h.waitingRecipients === 0) return false;
  if (h.connections === 0) return true;
  if (h.cpuBound || h.waitingTransactions <= h.connections || h.setupMs === null || h.transactionMs === null) return false;
  const drainMs = (h.waitingTransactions / h.connections) * h.transactionMs;
  return drainMs > h.setupMs + h.transactionMs;
}

/** A moving average of transaction times (the last few weigh most). */
export function averageMs(previous: number | null, sample: number): number {
  return previous === null ? sample : previous * 0.7 + sample * 0.3;
}

/** Above this share of the time busy, the delivery thread counts as CPU-bound. */
export const CPU_BOUND_UTILIZATION = 0.8;
