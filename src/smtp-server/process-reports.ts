// When a server process accepts and when it tells the dispatcher about its counts, as pure
// functions of plain data (main.ts carries them out).
import type { ProcessLimits } from '../dispatcher/protocol.js';

export interface ProcessCounts {
  /** Sessions open now. */
  open: number;
  /** Sessions taken in its life. */
  served: number;
}

/**
 * Shared accept: whether the process takes connections from the shared sockets now. It stops at
 * MAX_CONNS, and at MAX_LIFE_CONNS (the dispatcher retires it then; until it does, another
 * process takes the connections).
 */
export function mayAccept(counts: ProcessCounts, limits: ProcessLimits, leaving: boolean): boolean {
  return !leaving && counts.open < limits.maxConns && (limits.maxLifeConns === 0 || counts.served < limits.maxLifeConns);
}

export type Urgency = 'now' | 'soon';

/**
 * How soon a change of the counts goes to the dispatcher. Hand-off: a closed session at once (the
 * dispatcher's choice of process must not count sessions that are gone), an arrival soon (the
 * dispatcher knows of it from the hand-off already). Shared accept: at once when the process
 * starts or stops accepting, and when it reaches MIN_CONNS while the service may grow (the spawn
 * rule); anything else soon, as the dispatcher asks for fresh counts when it shows them. (A
 * count that goes up and down around MIN_CONNS under load made a report per message.)
 */
export function reportUrgency(limits: ProcessLimits, change: 'opened' | 'closed', openBefore: number, openAfter: number, acceptingChanged: boolean): Urgency {
  if (limits.source === 'handoff') return change === 'closed' ? 'now' : 'soon';
  if (acceptingChanged) return 'now';
  return limits.mayGrow && change === 'opened' && openBefore < limits.minConns && openAfter >= limits.minConns ? 'now' : 'soon';
}
