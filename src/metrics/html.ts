// Escaping for the HTML (and inline SVG) the metrics endpoint serves: every text that comes from
// the instance, above all what comes from mail (addresses, remote replies), goes through it.

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
