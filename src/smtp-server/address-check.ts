// Character-set checks of MAIL/RCPT addresses (RFC 6531) and the form they are rewritten and
// queued in. smtp-server decodes command lines as UTF-8 (invalid bytes become U+FFFD) and turns
// A-label domains into U-labels; queued domains are A-labels again, so the queue and the
// rewrite rules only ever see ASCII host names.
import { domainToASCII } from 'node:url';
import { invalidUtf8Address, nonAsciiAddress, type SmtpReply } from './replies.js';

const NON_ASCII = /[^\x00-\x7f]/;

function split(address: string): { local: string; domain: string | null } {
  const at = address.lastIndexOf('@');
  return at < 0 ? { local: address, domain: null } : { local: address.slice(0, at), domain: address.slice(at + 1) };
}

/** A refusal for an address the client may not use in this transaction, or null. */
export function checkAddressCharset(address: string, smtpUtf8: boolean): SmtpReply | null {
  if (address.includes('\uFFFD')) return invalidUtf8Address();
  const { local } = split(address);
  if (!smtpUtf8 && NON_ASCII.test(local)) return nonAsciiAddress();
  return null;
}

/** The address with an internationalized domain in A-label form; null when the domain cannot be one. */
export function asciiDomainForm(address: string): string | null {
  const { local, domain } = split(address);
  if (domain === null || !NON_ASCII.test(domain) || domain.startsWith('[')) return address;
  const ascii = domainToASCII(domain);
  return ascii ? `${local}@${ascii}` : null;
}
