// How one SMTP transaction carries a message's 8-bit content and UTF-8 envelope, given what the
// server offered in its EHLO reply (pure). As Postfix does it:
// - an envelope that needs SMTPUTF8 (UTF-8 addresses; or the SMTPUTF8 parameter with UTF-8 in
//   the header) goes with the SMTPUTF8 parameter, and is returned with 5.6.7 by a server that
//   does not offer it (RFC 6531 §3.2); the SMTPUTF8 parameter given at MAIL is passed on whenever
//   the server offers it;
// - 8-bit content goes with BODY=8BITMIME to a server that offers it, and converted to 7 bits
//   (mime-downgrade.ts) to one that does not (RFC 6152 §3); what cannot be converted (8-bit in a
//   header) is returned with 5.6.3. Nothing goes raw where it was not offered.
import { downgradeTo7bit, hasEightBit, headerHasEightBit } from './mime-downgrade.js';

export interface ContentNeeds {
  /** BODY=8BITMIME (or BINARYMIME) was given when the message arrived. */
  declared8Bit: boolean;
  /** SMTPUTF8 was given at MAIL when the message arrived. */
  smtpUtf8: boolean;
  /** The envelope sender or a recipient of this transaction has non-ASCII characters. */
  utf8Envelope: boolean;
}

export interface ServerOffers {
  eightBitMime: boolean;
  smtpUtf8: boolean;
}

export type ContentPlan =
  /** `message`: the bytes to send instead of the queued ones (converted), or null to send those. */
  | { kind: 'send'; message: Buffer | null; use8BitMime: boolean; smtpUtf8: boolean; converted: number }
  /** Not sendable to this server: every recipient of the transaction fails with `status`. */
  | { kind: 'refuse'; status: string };

const NON_ASCII = /[^\x00-\x7f]/;

export function hasUtf8Address(addresses: readonly string[]): boolean {
  return addresses.some((a) => NON_ASCII.test(a));
}

/**
 * Whether planContent needs the message bytes to decide; when false, a streamed message goes as
 * it is (the usual case: servers offer 8BITMIME, and SMTPUTF8 when it is wanted).
 */
export function needsContent(needs: ContentNeeds, offers: ServerOffers): boolean {
  return !offers.eightBitMime || ((needs.smtpUtf8 || needs.utf8Envelope) && !offers.smtpUtf8);
}

/** `message`: the queued bytes, or null when they are streamed and needsContent() was false. */
export function planContent(needs: ContentNeeds, offers: ServerOffers, message: Buffer | null, host: string): ContentPlan {
  const send = (use8BitMime: boolean, smtpUtf8: boolean, converted: Buffer | null = null, count = 0): ContentPlan => ({ kind: 'send', message: converted, use8BitMime, smtpUtf8, converted: count });
  const eightBit = message ? hasEightBit(message) : needs.declared8Bit;
  if ((needs.smtpUtf8 || needs.utf8Envelope) && offers.smtpUtf8) return send(offers.eightBitMime && (eightBit || needs.declared8Bit), true);
  if (needs.utf8Envelope || (needs.smtpUtf8 && (message === null || headerHasEightBit(message)))) {
    return { kind: 'refuse', status: `550 5.6.7 SMTPUTF8 is required, but was not offered by host ${host}` };
  }
  if (!eightBit) return send(offers.eightBitMime && needs.declared8Bit, false);
  if (offers.eightBitMime) return send(true, false);
  if (!message) return { kind: 'refuse', status: `451 4.3.0 the message must be read to convert it for ${host}` };
  const converted = downgradeTo7bit(message);
  if (!converted.ok) {
    return { kind: 'refuse', status: `550 5.6.3 ${host} does not offer 8BITMIME, and the message cannot be converted to 7 bits: ${converted.reason}` };
  }
  return send(false, false, converted.message, converted.converted);
}
