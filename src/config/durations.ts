// ISO 8601 durations as imta.cnf writes them (`"PT30M"`, `"P1D"`, lower case accepted).

const DURATION = /^P(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/;
const UNIT_MS = [365 * 86400e3, 30 * 86400e3, 7 * 86400e3, 86400e3, 3600e3, 60e3, 1e3];

/** Milliseconds of an ISO 8601 duration (quotes stripped, any case); null when malformed or empty. */
export function parseIsoDuration(text: string): number | null {
  const t = text.trim().replace(/^"(.*)"$/, '$1').toUpperCase();
  const m = DURATION.exec(t);
  if (!m || t === 'P' || t.endsWith('T')) return null;
  let ms = 0;
  for (let i = 0; i < UNIT_MS.length; i++) if (m[i + 1] !== undefined) ms += Number(m[i + 1]) * UNIT_MS[i]!;
  return Math.round(ms);
}

