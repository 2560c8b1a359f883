// A domain or host name as tsubame compares them: trimmed, lower case, without the root dot.
export function normalizeDomain(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}
