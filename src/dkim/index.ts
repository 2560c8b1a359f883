// DKIM signing of outbound mail (RFC 6376, RFC 8463): the keys per From: domain (etc/dkim/keys,
// read by src/config/dkim.ts), the signature, and the signer the queue runs while a message streams.
export { dkimPrefixesFor } from './plan.js';
export { MessageSigner, signMessage, MAX_HEADER_BYTES, type MessageSignerOptions } from './message-signer.js';
export { signingKeysFor } from './keys.js';
export { signatureField, signatureLength, signedFields, SIGNED_FIELDS, OVERSIGNED_ALWAYS, OVERSIGNED_IF_PRESENT, type SignedFields, type SigningKey } from './signature.js';
export { headerFields, bodyOffset, fromDomain, relaxedField, type HeaderField } from './header-block.js';
