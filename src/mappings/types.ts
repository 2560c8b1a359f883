// etc/mappings as read by src/config/mappings.ts: the tables and their entries as written. The
// mapping language is below the configuration (the configuration checks every entry with it),
// so the plain data it works on is defined here.

/** One `pattern  template` line of a mapping table, as written (escapes not yet decoded). */
export interface MappingEntry {
  pattern: string;
  template: string;
  file: string;
  line: number;
}

export interface MappingTable {
  name: string; // as written; tables are looked up case-blind
  file: string;
  line: number;
  entries: MappingEntry[];
}

/** etc/mappings: the mapping tables (PORT_ACCESS, ORIG_SEND_ACCESS …, and any auxiliary table). */
export interface MappingsConfig {
  /** The file read, or null when etc/mappings does not exist (then there are no tables). */
  file: string | null;
  /** Upper-case table name → table. */
  tables: Map<string, MappingTable>;
}
