// etc/client_auth: the line syntax (channel, username, the rest of the line as the password),
// every problem at its file:line without ever quoting a password, the warning on a file others
// can read, and what crosses files when it is loaded with imta.cnf: mustsaslclient on a channel
// the file gives no credentials is an error, maysaslclient only a warning, credentials for a
// channel that does not use them a warning.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseClientAuth } from '../../src/config/client-auth.js';
import { loadInstanceConfig } from '../../src/config/load.js';
import { formatDiagnostic, type Diagnostic } from '../../src/config/types.js';
import { makeInstance, repoRoot, type TestInstance } from '../helpers/instance.js';

const instances: TestInstance[] = [];
after(() => {
  for (const inst of instances) inst.remove();
});
function instance(files: Record<string, string>): TestInstance {
  const inst = makeInstance({ files });
  instances.push(inst);
  return inst;
}
const lines = (...l: string[]) => `${l.join('\n')}\n`;

/** `text` as etc/client_auth with `mode`, parsed alone. */
function clientAuth(text: string, mode = 0o600) {
  const inst = instance({ 'etc/client_auth': text });
  const file = join(inst.root, 'etc/client_auth');
  chmodSync(file, mode);
  const diagnostics: Diagnostic[] = [];
  const config = parseClientAuth(file, diagnostics);
  return { file, config, diagnostics, where: diagnostics.map((d) => `${relative(inst.root, d.file)}:${d.line}: ${d.severity}`), text: diagnostics.map(formatDiagnostic).join('\n') };
}

test('client_auth: channel, username and the rest of the line as the password; ! and # comments; channel names case-insensitive', () => {
  const { file, config, diagnostics } = clientAuth(
    lines('! channel username password', '# another comment', '   ! indented', '', 'TCP_Relay   mta@example.com   correct horse  battery staple  ', 'tcp_other\tother\tp@ss:w0rd!#'),
  );
  assert.deepEqual(diagnostics, []);
  assert.equal(config.file, file);
  assert.deepEqual([...config.byChannel.keys()], ['tcp_relay', 'tcp_other']);
  // Inner white space is the password's own; the ends are not.
  assert.deepEqual(config.byChannel.get('tcp_relay'), { username: 'mta@example.com', password: 'correct horse  battery staple', file, line: 5 });
  assert.deepEqual(config.byChannel.get('tcp_other'), { username: 'other', password: 'p@ss:w0rd!#', file, line: 6 });
});

test('client_auth: each malformed line is an error at its file:line that never quotes the password; the good lines stay', () => {
  const secrets = ['s3cret-bare', 's3cret-channel', 's3cret\u0001ctl', `s3cret-long-${'x'.repeat(1100)}`, 's3cret-again'];
  const { config, where, text } = clientAuth(
    lines(
      'tcp_relay relay-user relay-password',
      secrets[0]!, // one field: perhaps a password pasted on a line of its own
      'tcp_half only-a-user',
      `bad/channel user ${secrets[1]}`,
      `tcp_ctl user ${secrets[2]}`,
      `tcp_long user ${secrets[3]}`,
      `TCP_RELAY other-user ${secrets[4]}`,
      'tcp_ok ok-user ok-password',
    ),
  );
  assert.deepEqual([...config.byChannel.keys()], ['tcp_relay', 'tcp_ok']);
  assert.deepEqual(where, [2, 3, 4, 5, 6, 7].map((n) => `etc/client_auth:${n}: error`));
  const byLine = text.split('\n');
  assert.match(byLine[0]!, /client_auth:2: error: expected: channel username password$/);
  assert.match(byLine[1]!, /client_auth:3: error: expected: channel username password$/);
  assert.match(byLine[2]!, /client_auth:4: error: the first field must be a channel name of imta\.cnf$/);
  assert.match(byLine[3]!, /client_auth:5: error: channel tcp_ctl: a field holds a control character/);
  assert.match(byLine[4]!, /client_auth:6: error: channel tcp_long: a field is longer than 1024 bytes$/);
  assert.match(byLine[5]!, /client_auth:7: error: channel tcp_relay is given credentials again \(first at line 1\)$/);
  for (const secret of [...secrets, 'relay-password', 'ok-password']) assert.ok(!text.includes(secret.slice(0, 12)), `"${secret.slice(0, 12)}" quoted in:\n${text}`);
  assert.ok(!text.includes('s3cret'), text);
});

test('client_auth: a file others can read (0644) gets a warning at line 0 and is still used; 0600 and 0640 do not', () => {
  assert.deepEqual(clientAuth(lines('tcp_relay u p'), 0o600).diagnostics, []);
  assert.deepEqual(clientAuth(lines('tcp_relay u p'), 0o640).diagnostics, []);
  const readable = clientAuth(lines('tcp_relay u the-password'), 0o644);
  assert.deepEqual(readable.where, ['etc/client_auth:0: warning']);
  assert.match(readable.text, /readable by every user of the host \(mode 0644\): it holds passwords; chmod 600/);
  assert.ok(!readable.text.includes('the-password'));
  assert.equal(readable.config.byChannel.get('tcp_relay')?.password, 'the-password', 'a warning does not refuse the file');
  const groupWritable = clientAuth(lines('tcp_relay u p'), 0o660);
  assert.deepEqual(groupWritable.where, ['etc/client_auth:0: warning']);
  assert.match(groupWritable.text, /writable by its group \(mode 0660\)/);
});

test('client_auth: no file means no credentials; an unreadable one is an error at line 0', () => {
  const none: Diagnostic[] = [];
  assert.deepEqual(parseClientAuth(null, none), { file: null, byChannel: new Map() });
  const inst = instance({});
  assert.deepEqual(parseClientAuth(join(inst.root, 'etc/client_auth'), none), { file: null, byChannel: new Map() }, 'a missing file is no credentials');
  assert.equal(none.length, 0);
  const d: Diagnostic[] = [];
  parseClientAuth(join(inst.root, 'etc'), d); // a directory
  assert.deepEqual(d.map((x) => [x.line, x.severity]), [[0, 'error']]);
  assert.match(d[0]!.message, /cannot read file: EISDIR/);
});

/** The shipped imta.cnf with a smart-host channel carrying `sasl` (and maytls: credentials go only over TLS). */
function withRelayChannel(sasl: string): Record<string, string> {
  const shipped = readFileSync(join(repoRoot, 'etc/imta.cnf'), 'utf8');
  return {
    'etc/imta.cnf': `${shipped}\ntcp_relay smtp nomx daemon smart.example.test maytls ${sasl}\ntcp_relay-daemon\n`,
    'etc/job_controller.cnf': readFileSync(join(repoRoot, 'etc/job_controller.cnf'), 'utf8'),
  };
}
const relayLine = (inst: TestInstance) => readFileSync(join(inst.root, 'etc/imta.cnf'), 'utf8').split('\n').findIndex((l) => l.startsWith('tcp_relay ')) + 1;

test('loaded with imta.cnf: mustsaslclient on a channel without credentials is an error at the channel\'s line; with them the configuration loads', () => {
  const bare = instance(withRelayChannel('mustsaslclient'));
  const refused = loadInstanceConfig(bare.root);
  assert.equal(refused.config, null, 'mustsaslclient without credentials makes the configuration unusable');
  const errors = refused.diagnostics.filter((d) => d.severity === 'error');
  assert.deepEqual(errors.map((d) => `${relative(bare.root, d.file)}:${d.line}`), [`etc/imta.cnf:${relayLine(bare)}`]);
  assert.match(errors[0]!.message, /channel tcp_relay has mustsaslclient, but .*client_auth gives it no credentials \(a line: tcp_relay username password\)/);

  const given = instance({ ...withRelayChannel('mustsaslclient'), 'etc/client_auth': lines('tcp_relay mta@example.com relay-secret') });
  chmodSync(join(given.root, 'etc/client_auth'), 0o600);
  const ok = loadInstanceConfig(given.root);
  assert.deepEqual(ok.diagnostics, []);
  assert.equal(ok.config?.clientAuth?.byChannel.get('tcp_relay')?.username, 'mta@example.com');
});

test('loaded with imta.cnf: maysaslclient without credentials only warns; credentials for a channel that does not use them warn at their line', () => {
  const may = instance(withRelayChannel('maysaslclient'));
  const loaded = loadInstanceConfig(may.root);
  assert.ok(loaded.config, 'maysaslclient without credentials still loads');
  const warnings = loaded.diagnostics.filter((d) => d.severity === 'warning');
  assert.deepEqual(warnings.map((d) => `${relative(may.root, d.file)}:${d.line}`), [`etc/imta.cnf:${relayLine(may)}`]);
  assert.match(warnings[0]!.message, /channel tcp_relay has maysaslclient, but .*client_auth gives it no credentials/);

  const unused = instance({ ...withRelayChannel(''), 'etc/client_auth': lines('# credentials', 'tcp_relay u unused-secret', 'tcp_nowhere u other-secret') });
  chmodSync(join(unused.root, 'etc/client_auth'), 0o600);
  const u = loadInstanceConfig(unused.root);
  assert.ok(u.config);
  const told = u.diagnostics.filter((d) => d.severity === 'warning');
  assert.deepEqual(told.map((d) => `${relative(unused.root, d.file)}:${d.line}`), ['etc/client_auth:2', 'etc/client_auth:3']);
  assert.match(told[0]!.message, /channel tcp_relay has neither maysaslclient nor mustsaslclient \(these credentials are not used\)/);
  assert.match(told[1]!.message, /channel tcp_nowhere is not defined in imta\.cnf/);
  assert.ok(!told.map(formatDiagnostic).join('\n').includes('secret'));
});
