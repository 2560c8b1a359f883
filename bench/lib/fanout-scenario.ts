// The simulated list fan-out both fan-out benchmarks build (bench/fanout.ts, bench/fanout-e2e.ts):
// how many recipients, domains and MX hosts, and how many of the hosts refuse, stay silent or
// greet late. Each benchmark adds its own options around these.

export interface FanoutScenario {
  recipients: number;
  domains: number;
  hosts: number;
  refusing: number;
  silent: number;
  slow: number;
  slowMs: number;
}

export const DEFAULT_SCENARIO: FanoutScenario = { recipients: 5000, domains: 500, hosts: 40, refusing: 3, silent: 1, slow: 5, slowMs: 300 };

const FLAGS: Record<string, keyof FanoutScenario> = {
  '--recipients': 'recipients',
  '--domains': 'domains',
  '--hosts': 'hosts',
  '--refusing': 'refusing',
  '--silent': 'silent',
  '--slow': 'slow',
  '--slow-ms': 'slowMs',
};

/** Takes `flag` into `o` when it is a scenario option (its value from `value()`); false when it is not one. */
export function takeScenarioFlag(o: FanoutScenario, flag: string, value: () => string | undefined): boolean {
  const key = FLAGS[flag];
  if (!key) return false;
  o[key] = Number(value());
  return true;
}

export function checkScenario(o: FanoutScenario): void {
  if (o.hosts > 250 || o.refusing + o.silent >= o.hosts) throw new Error('need --hosts ≤ 250 and more live hosts than dead ones');
}
