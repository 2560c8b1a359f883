// Milter client settings as plain data: the filters (their grammar is the configuration's,
// src/config/milter-filters.ts, re-exported here), timeouts, default action, macro lists and the
// bounds on what a filter may send.
import { DEFAULT_MILTER_ACTION, DEFAULT_MILTER_TIMEOUTS, type DefaultAction, type FilterSpec, type FilterTimeouts } from '../config/milter-filters.js';
import type { MacroStage } from './protocol.js';
import { DEFAULT_MACRO_LISTS } from './macros.js';

export { parseFilterAddress, parseFilterList, parsePostfixTime } from '../config/milter-filters.js';
export type { DefaultAction, FilterAddress, FilterSpec, FilterTimeouts } from '../config/milter-filters.js';

export interface MilterSettings {
  /** Applied in this order, as Postfix's smtpd_milters. */
  filters: FilterSpec[];
  timeouts: FilterTimeouts;
  defaultAction: DefaultAction;
  /** Macros sent per stage (Postfix's milter_*_macros) unless a filter asks for its own lists. */
  macros: Readonly<Record<MacroStage, readonly string[]>>;
  /** Largest packet accepted from a filter, command byte included. */
  maxPacketBytes: number;
  /** Largest replacement body a filter may send (SMFIR_REPLBODY, all chunks). */
  maxReplacedBodyBytes: number;
  /** Most end-of-message requests (header and recipient edits) taken from one filter for one message. */
  maxModifications: number;
}

export const MILTER_DEFAULTS: Omit<MilterSettings, 'filters'> = {
  timeouts: { ...DEFAULT_MILTER_TIMEOUTS },
  defaultAction: DEFAULT_MILTER_ACTION,
  macros: DEFAULT_MACRO_LISTS,
  // libmilter's body chunks are at most 64 KiB; headers and replies far less.
  maxPacketBytes: 1024 * 1024,
  maxReplacedBodyBytes: 64 * 1024 * 1024,
  maxModifications: 10_000,
};

/** Settings with `filters`, the rest defaulted. */
export function milterSettings(filters: FilterSpec[], more: Partial<Omit<MilterSettings, 'filters'>> = {}): MilterSettings {
  return { ...MILTER_DEFAULTS, ...more, filters, timeouts: { ...MILTER_DEFAULTS.timeouts, ...more.timeouts } };
}
