// The PROXY protocol (versions 1 and 2, as HAProxy's send-proxy / send-proxy-v2 send it), receiving
// side: the header parser, the socket reader that takes the header before the SMTP session, and
// the service's decisions (who must send one; the session's client address). Configured per
// service in dispatcher.cnf (PROXY_PROTOCOL, PROXY_TRUSTED, PROXY_TIMEOUT).
export {
  parseProxyHeader,
  printableBytes,
  V2_SIGNATURE,
  type ProxyHeader,
  type ProxyParseResult,
} from './parse.js';
export { readProxyHeader, ProxyHeaderError } from './read.js';
export { admitConnection, resolveSession } from './admission.js';
export { describeTlvs } from './tlv.js';
export { crc32c } from './crc32c.js';
