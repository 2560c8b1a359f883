// The PROXY protocol (versions 1 and 2, as HAProxy's send-proxy / send-proxy-v2 send it), receiving
// side: the header parser, the socket reader that takes the header before the SMTP session, and
// the service's decisions (who must send one; the session's client address). Configured per
// service in dispatcher.cnf (PROXY_PROTOCOL, PROXY_TRUSTED, PROXY_TIMEOUT).
export {
  parseProxyHeader,
  printableBytes,
  V1_MAX_LENGTH,
  V2_SIGNATURE,
  DEFAULT_MAX_HEADER_BYTES,
  type ProxyHeader,
  type ProxyParseResult,
  type ProxyParseOptions,
  type ProxyEndpoint,
  type ProxyTlv,
  type ProxyVersion,
  type ProxyVersions,
  type ProxyCommand,
  type ProxyFamily,
  type ProxyTransport,
} from './parse.js';
export { readProxyHeader, ProxyHeaderError, type ReadProxyHeaderOptions, type ProxyHeaderRead, type ProxyReadFailure } from './read.js';
export { admitConnection, resolveSession, type ProxyAdmission, type ProxyResolution, type SessionEndpoints } from './admission.js';
export { describeTlvs, PP2_TYPE, type ProxyTlvInfo, type ProxySslInfo } from './tlv.js';
export { crc32c } from './crc32c.js';
