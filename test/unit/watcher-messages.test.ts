// Operator-facing lines of the dispatcher and watcher, and the watcher's restart delay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeListenError } from '../../src/dispatcher/listen-errors.js';
import { describeListeners } from '../../src/watcher/control.js';
import { nextRestartDelay } from '../../src/watcher/backoff.js';
import { parsePartArgument } from '../../src/watcher/client.js';

const err = (code: string) => Object.assign(new Error(code), { code });

test('port in use names the port and the address', () => {
  assert.equal(describeListenError(err('EADDRINUSE'), { service: 'SMTP', address: '127.0.4.1', port: 2525 }), 'port 2525 on 127.0.4.1 is in use by another program');
  assert.equal(describeListenError(err('EADDRINUSE'), { service: 'SMTP', address: null, port: 25 }), 'port 25 on all addresses is in use by another program');
});

test('no permission for a port below 1024 says how to fix it', () => {
  const line = describeListenError(err('EACCES'), { service: 'SMTP', address: null, port: 25 });
  assert.match(line, /^binding port 25 needs root or CAP_NET_BIND_SERVICE: run as root, `setcap cap_net_bind_service=\+ep \$\(which node\)`, or set PORT= in etc\/dispatcher.cnf$/);
});

test('an address that is not local names INTERFACE_ADDRESS', () => {
  assert.match(describeListenError(err('EADDRNOTAVAIL'), { service: 'SMTP', address: '192.0.2.1', port: 25 }), /192\.0\.2\.1 \(INTERFACE_ADDRESS of service SMTP\)/);
});

test('listeners are summarised per service', () => {
  assert.equal(
    describeListeners([
      { service: 'SMTP', address: null, port: 25 },
      { service: 'SMTP', address: null, port: 2525 },
      { service: 'SUBMIT', address: '127.0.0.1', port: 587 },
      { service: 'LMTP', address: '::1', port: 24 },
    ]),
    'SMTP on 0.0.0.0:25 and 0.0.0.0:2525, SUBMIT on 127.0.0.1:587, LMTP on [::1]:24',
  );
});

test('restart delay: 0.5 s, doubling to 30 s, back to 0.5 s after a minute up', () => {
  let d = 0;
  const seen: number[] = [];
  for (let i = 0; i < 9; i++) seen.push((d = nextRestartDelay(d, 100)));
  assert.deepEqual(seen, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  assert.equal(nextRestartDelay(30000, 60_000), 500);
  assert.equal(nextRestartDelay(4000, 59_999), 8000);
});

test('part argument', () => {
  assert.equal(parsePartArgument([]), null);
  assert.equal(parsePartArgument(['dispatcher']), 'dispatcher');
  assert.equal(parsePartArgument(['JOB_CONTROLLER']), 'job_controller');
  assert.equal(parsePartArgument(['job-controller']), 'job_controller');
  assert.throws(() => parsePartArgument(['smtp']), /unknown part "smtp"/);
  assert.throws(() => parsePartArgument(['dispatcher', 'job_controller']), /one part at most/);
});
