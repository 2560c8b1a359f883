// Milter content filters in option.dat and imta.cnf, in Messaging Server's scheme of numbered
// filter slots: SPAMFILTERn_MILTER (n 1–8) names the filter of slot n, written as Postfix's
// smtpd_milters writes filters (`inet:127.0.0.1:11332`, `unix:/run/rspamd/milter.sock`, a list,
// or `{ address, name = rspamd, default_action = accept, command_timeout = 10s }`); the channel
// keyword sourcespamfilterN on the channel mail comes in on runs its sessions through slot N
// (slots in ascending order). MILTER_DEFAULT_ACTION and MILTER_CONNECT_TIMEOUT /
// MILTER_COMMAND_TIMEOUT / MILTER_CONTENT_TIMEOUT are Postfix's milter_default_action and
// milter_*_timeout (seconds here, as every option.dat time). Messaging Server's own
// SPAMFILTERn_LIBRARY / SPAMFILTERn_CONFIG_FILE name a shared library, which tsubame has not.
import { DEFAULT_ACTIONS, DEFAULT_MILTER_ACTION, DEFAULT_MILTER_TIMEOUTS, parseFilterList, type DefaultAction, type FilterSpec, type FilterTimeouts } from './milter-filters.js';
import type { OptionEntry, OptionReader } from './option-file.js';
import type { Channel, Diagnostic } from './types.js';

const MILTER_SLOTS = 8;
const slots = Array.from({ length: MILTER_SLOTS }, (_, i) => i + 1);

export const MILTER_OPTION_KEYS = [...slots.map((n) => `SPAMFILTER${n}_MILTER`), 'MILTER_DEFAULT_ACTION', 'MILTER_CONNECT_TIMEOUT', 'MILTER_COMMAND_TIMEOUT', 'MILTER_CONTENT_TIMEOUT'];
/** `sourcespamfilter1` … `sourcespamfilter8`: the slots a channel's inbound sessions go through. */
export const MILTER_CHANNEL_KEYWORDS = slots.map((n) => `sourcespamfilter${n}`);

export interface MilterSlot {
  filters: FilterSpec[];
  /** Where SPAMFILTERn_MILTER is written. */
  file: string;
  line: number;
}

export interface MilterOptions {
  /** Slot number → its filters (only the slots option.dat sets). */
  slots: Map<number, MilterSlot>;
  defaultAction: DefaultAction;
  timeouts: FilterTimeouts;
}

function defaultMilterOptions(): MilterOptions {
  return { slots: new Map(), defaultAction: DEFAULT_MILTER_ACTION, timeouts: { ...DEFAULT_MILTER_TIMEOUTS } };
}

/** Longest milter timeout, seconds (an hour: a filter slower than that is down). */
const MAX_TIMEOUT_SECONDS = 3600;

export function parseMilterOptions(o: Map<string, OptionEntry>, reader: OptionReader): MilterOptions {
  const out = defaultMilterOptions();
  for (const n of slots) {
    const e = o.get(`SPAMFILTER${n}_MILTER`);
    if (!e) continue;
    const parsed = parseFilterList(e.value);
    if (!parsed.ok) reader.error(e, `${e.key}: ${parsed.error}`);
    else if (parsed.value.length === 0) reader.error(e, `${e.key} names no filter (write inet:host:port or unix:/path)`);
    else out.slots.set(n, { filters: parsed.value, file: e.file, line: e.line });
  }
  const action = o.get('MILTER_DEFAULT_ACTION');
  if (action) {
    const a = action.value.trim().toLowerCase() as DefaultAction;
    if (DEFAULT_ACTIONS.includes(a)) out.defaultAction = a;
    else reader.error(action, `MILTER_DEFAULT_ACTION must be one of ${DEFAULT_ACTIONS.join(', ')}, found "${action.value}"`);
  }
  const seconds = (key: string, field: keyof FilterTimeouts) => {
    const e = o.get(key);
    if (!e) return;
    const v = Number(e.value.trim());
    if (e.value.trim() !== '' && v > 0 && v <= MAX_TIMEOUT_SECONDS) out.timeouts[field] = Math.round(v * 1000);
    else reader.error(e, `${key} must be a number of seconds above 0 and at most ${MAX_TIMEOUT_SECONDS}, found "${e.value}"`);
  };
  seconds('MILTER_CONNECT_TIMEOUT', 'connectMs');
  seconds('MILTER_COMMAND_TIMEOUT', 'commandMs');
  seconds('MILTER_CONTENT_TIMEOUT', 'contentMs');
  return out;
}

/** The slots a channel's keywords name, ascending. */
export function channelMilterSlots(channel: Pick<Channel, 'keywords'>): number[] {
  return slots.filter((n) => Object.prototype.hasOwnProperty.call(channel.keywords, `sourcespamfilter${n}`));
}

/** A channel naming a slot option.dat does not set is an error; a slot no channel uses, a warning. */
export function checkMilterSlots(channels: readonly Channel[], milter: MilterOptions, diagnostics: Diagnostic[]): void {
  const used = new Set<number>();
  for (const c of channels) {
    for (const n of channelMilterSlots(c)) {
      used.add(n);
      if (!milter.slots.has(n)) diagnostics.push({ file: c.file, line: c.line, severity: 'error', message: `channel ${c.name} has sourcespamfilter${n}, but option.dat sets no SPAMFILTER${n}_MILTER` });
    }
  }
  for (const [n, slot] of milter.slots) {
    if (!used.has(n)) diagnostics.push({ file: slot.file, line: slot.line, severity: 'warning', message: `SPAMFILTER${n}_MILTER is set but no channel has sourcespamfilter${n}: no mail goes through it` });
  }
}
