// Which services of dispatcher.cnf can run with the certificate option.dat gives. A service needs
// TLS when it has TLS_PORT ports (TLS at connect) or when its channel has mustsaslserver (AUTH
// is offered only over TLS unless the channel has saslcleartext, so without TLS no one could
// send through it). Without TLS_CERT and TLS_KEY such a service, or its TLS ports, is left off
// with one line saying why and how to turn it on, rather than refusing to start: the shipped
// dispatcher.cnf has the submission services, and `npm start` on a fresh clone must still run.
// Pure: the loader applies it (config/load.ts), cnbuild and the dispatcher print its lines.
import type { DispatcherConfig, ImtaConfig, OptionsConfig, ServiceOff } from './types.js';

/** Where the operator reads how to turn the services on. */
const HOW_TO_TURN_ON = 'set TLS_CERT and TLS_KEY in etc/option.dat to turn it on (docs/OPERATIONS.md, "Let your users send mail")';

export function servicesInForce(dispatcher: DispatcherConfig, imta: ImtaConfig, options: Pick<OptionsConfig, 'tlsKeyFile' | 'tlsCertFile'>): DispatcherConfig {
  if (options.tlsKeyFile && options.tlsCertFile) return { services: dispatcher.services, off: [] };
  const services: DispatcherConfig['services'] = [];
  const off: ServiceOff[] = [];
  for (const service of dispatcher.services) {
    const channel = imta.channelByName.get(service.channel.toLowerCase());
    const tlsPorts = service.tlsPorts ?? [];
    const where = { service: service.name, file: service.file, line: service.line };
    const tlsOnly = tlsPorts.length > 0 && service.ports.every((p) => tlsPorts.includes(p));
    if (!tlsOnly && channel?.sasl?.server === 'must' && !channel.sasl.cleartext) {
      off.push({
        ...where,
        ports: service.ports,
        whole: true,
        message: `[SERVICE=${service.name}] (${portList(service.ports)}) is off: its channel ${channel.name} has mustsaslserver and AUTH is offered only over TLS, but option.dat sets no certificate; ${HOW_TO_TURN_ON}`,
      });
      continue;
    }
    if (tlsPorts.length === 0) {
      services.push(service);
      continue;
    }
    const plain = service.ports.filter((p) => !tlsPorts.includes(p));
    off.push({
      ...where,
      ports: tlsPorts,
      whole: plain.length === 0,
      message: `[SERVICE=${service.name}] ${plain.length === 0 ? `(${portList(tlsPorts)}) is off` : `does not listen on ${portList(tlsPorts)}`}: TLS_PORT starts TLS at connect, but option.dat sets no certificate; ${HOW_TO_TURN_ON}`,
    });
    if (plain.length > 0) services.push({ ...service, ports: plain, tlsPorts: [] });
  }
  return { services, off };
}

function portList(ports: number[]): string {
  return ports.length === 1 ? `port ${ports[0]}` : `ports ${ports.join(', ')}`;
}
