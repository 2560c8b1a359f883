// DKIM signing of outbound mail (RFC 6376, RFC 8463): the keys per From: domain (etc/dkim/keys,
// read by src/config/dkim.ts), the signature, and the signer the queue runs while a message streams.
;
export { MessageSigner, signMessage, MAX_HEADER_BYTES } from './message-signer.js';
export { signingKeysFor } from './keys.js';
export { signatureLength, signedFields } from './signature.js';
export { headerFields, bodyOffset, fromDomain, relaxedField } from './header-block.js';
