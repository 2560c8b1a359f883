// Runs as root: started as root, every long-running process runs as the service user (the
// shipped default `tsubame`, created by scripts/ensure-installed.sh), the dispatcher with
// CAP_NET_BIND_SERVICE only, the job controller with CAP_CHOWN only, the watcher with those two,
// the SMTP server processes with no capability; queue, log and run files and Maildir files
// belong to the service user with private modes, but for a message in a mailbox directory
// another user owns, which is that user's, 0600; mail flows end to end on a port below 1024, and
// a reload binds another one. Started by any other user (a developer's machine), every process
// runs as that user, and the job controller says once that it cannot give files away.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeInstance, repoRoot, runCli, waitFor, freePort, type TestInstance } from '../helpers/instance.js';
import { reachableBinDir } from '../helpers/service-user.js';
import { runTool } from './smtp-harness.js';
import { lookupUser } from '../../src/common/service-user.js';

const ADDRESS = '127.0.131.1';
const PRIVILEGED_PORT = 25;
const SECOND_PRIVILEGED_PORT = 587;
const asRoot = process.geteuid?.() === 0;

const instances: TestInstance[] = [];
after(async () => {
  for (const inst of instances) {
    await runCli('stop-msg', ['--root', inst.root], { timeoutMs: 60_000, env: ENV, binDir: BIN }).catch(() => {});
    inst.remove();
  }
});

// The test runner sets TSUBAME_SERVER_USER=root for the other tests; here the shipped default applies.
const ENV = { TSUBAME_SERVER_USER: undefined };

/** Set once the service user exists (as root). */
let BIN = join(repoRoot, 'bin');

const IMTA_CNF = `! service user test
mx.owner.test        $U%mx.owner.test@mx.owner.test
.                    $U%$H@tcp-daemon

l
mx.owner.test

tcp_local smtp nomx port 9 daemon 127.0.131.9
tcp-daemon
`;

function statusOf(pid: number): { uid: number; capEff: bigint } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const uid = Number(/^Uid:\s+(\d+)/m.exec(status)![1]);
  const capEff = BigInt(`0x${/^CapEff:\s+([0-9a-f]+)/m.exec(status)![1]}`);
  return { uid, capEff };
}

async function processes(root: string): Promise<Array<{ role: string; pid: number }>> {
  const r = await runCli('imsimta', ['process', '--json', '--root', root], { env: ENV, binDir: BIN });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { role: string; pid: number });
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    out.push(path);
    if (statSync(path).isDirectory()) out.push(...filesUnder(path));
  }
  return out;
}

const CAP_NET_BIND_SERVICE = 1n << 10n;
const CAP_CHOWN = 1n << 0n;
/** The owner of another user's mailbox: a throwaway uid, no passwd entry needed. */
const OTHER_UID = 4242;
/** The effective capabilities of each process when started as root; any other has none. */
const CAPABILITIES_OF: Record<string, bigint> = { watcher: CAP_NET_BIND_SERVICE | CAP_CHOWN, dispatcher: CAP_NET_BIND_SERVICE, job_controller: CAP_CHOWN };

test('started as root, every long-running process runs as the service user; files are its own; mail flows', { timeout: 180_000 }, async () => {
  if (!asRoot) {
    // Not root: nothing changes, every process is the invoking user's.
    const port = await freePort(ADDRESS);
    const inst = makeInstance({ files: { 'etc/imta.cnf': IMTA_CNF, 'etc/dispatcher.cnf': `[SERVICE=SMTP]\nPORT=${port}\nINTERFACE_ADDRESS=${ADDRESS}\n` } });
    instances.push(inst);
    const r = await runCli('start-msg', ['--root', inst.root], { env: ENV, binDir: BIN });
    assert.equal(r.code, 0, r.stderr);
    for (const p of await processes(inst.root)) assert.equal(statusOf(p.pid).uid, process.getuid!(), `${p.role} ${p.pid}`);
    const said = () => readFileSync(join(inst.root, 'log', 'job_controller.log'), 'utf8').split('\n').filter((l) => l.includes('no CAP_CHOWN'));
    await waitFor(() => said().length > 0, { what: 'the job controller saying it has no CAP_CHOWN' });
    assert.equal(said().length, 1, 'said once, at the start');
    return;
  }

  // The default service user, as `npm start` and `npm test` create it.
  execFileSync('bash', [join(repoRoot, 'scripts', 'ensure-installed.sh')], { stdio: 'ignore' });
  const user = lookupUser('tsubame');
  assert.ok(user, 'scripts/ensure-installed.sh creates the user tsubame');
  BIN = reachableBinDir();
  assert.notEqual(user.uid, 0);

  const inst = makeInstance({
    files: {
      'etc/imta.cnf': IMTA_CNF,
      'etc/dispatcher.cnf': `[SERVICE=SMTP]\nPORT=${PRIVILEGED_PORT}\nINTERFACE_ADDRESS=${ADDRESS}\nMIN_PROCS=1\n`,
      'etc/job_controller.cnf': '[POOL=DEFAULT]\nJOB_LIMIT=2\n',
      'etc/option.dat': 'INTERNAL_IP=127.0.0.0/8\nLOCAL_HOST=mx.owner.test\n',
    },
  });
  instances.push(inst);
  const root = inst.root;
  // What an earlier run as root left: a Maildir with a root-owned message (mode 0700 directories).
  mkdirSync(join(root, 'mailbox', 'joe', 'new'), { recursive: true, mode: 0o700 });
  writeFileSync(join(root, 'mailbox', 'joe', 'new', 'old-message'), 'Subject: old\r\n\r\nold\r\n', { mode: 0o600 });
  // A mailbox of another user (a uid with no passwd entry will do), open to the service user
  // through its group.
  mkdirSync(join(root, 'mailbox', 'bob'));
  chownSync(join(root, 'mailbox', 'bob'), OTHER_UID, user.gid);
  chmodSync(join(root, 'mailbox', 'bob'), 0o2770);

  // mkdtemp made the instance directory 0700: the service user cannot reach it, so the instance
  // runs as root, saying why and how to fix it.
  const unreachable = await runCli('start-msg', ['--root', root], { env: ENV, binDir: BIN, timeoutMs: 60_000 });
  assert.equal(unreachable.code, 0, unreachable.stderr);
  assert.match(unreachable.stderr, /^start-msg: warning: running as root: the service user tsubame cannot reach .*\(mode 0700, owner uid 0.*\n$/);
  assert.doesNotMatch(unreachable.stderr, /^\s+at /m);
  const rootRows = await processes(root);
  assert.ok(rootRows.length >= 4);
  for (const r of rootRows) assert.equal(statusOf(r.pid).uid, 0, `${r.role} runs as root when the service user cannot reach the instance`);
  assert.equal((await runCli('stop-msg', ['--root', root], { env: ENV, binDir: BIN, timeoutMs: 60_000 })).code, 0);
  chmodSync(root, 0o755);

  const started = await runCli('start-msg', ['--root', root], { env: ENV, binDir: BIN, timeoutMs: 60_000 });
  assert.equal(started.code, 0, started.stderr);

  const rows = await processes(root);
  for (const role of ['watcher', 'dispatcher', 'smtp_server', 'job_controller']) assert.ok(rows.some((r) => r.role === role), `${role} in ${JSON.stringify(rows)}`);
  for (const { role, pid } of rows) {
    const s = statusOf(pid);
    assert.equal(s.uid, user.uid, `${role} pid ${pid} runs as uid ${s.uid}`);
    // Each keeps only what it needs: the dispatcher its ports, the job controller chown for
    // Maildir files, the watcher both (it restarts them); the SMTP server processes nothing.
    const expected = CAPABILITIES_OF[role] ?? 0n;
    assert.equal(s.capEff, expected, `${role} pid ${pid} capabilities ${s.capEff.toString(16)}`);
  }

  // The directories the processes write are the service user's, with what an earlier run left.
  for (const dir of ['queue', 'log', 'run', 'flush', 'corrupt', 'tls', 'mailbox']) assert.equal(statSync(join(root, dir)).uid, user.uid, dir);
  for (const file of [...filesUnder(join(root, 'log')), ...filesUnder(join(root, 'run')), ...filesUnder(join(root, 'mailbox', 'joe'))]) {
    assert.equal(statSync(file).uid, user.uid, file);
  }
  assert.equal(statSync(join(root, 'mailbox', 'bob')).uid, OTHER_UID, "another user's mailbox stays theirs");

  // Root makes a mailbox while it runs, as the README's tour does.
  mkdirSync(join(root, 'mailbox', 'ann'));
  const swaks = (to: string) => runTool('/usr/bin/swaks', ['--server', `${ADDRESS}:${PRIVILEGED_PORT}`, '--timeout', '10', '--hide-all', '--from', 'sender@client.test', '--to', to]);
  for (const to of ['joe@mx.owner.test', 'ann@mx.owner.test', 'bob@mx.owner.test']) {
    const r = await swaks(to);
    assert.equal(r.code, 0, `${to}: ${r.stdout}${r.stderr}`);
  }
  const delivered = (user: string) => readdirSync(join(root, 'mailbox', user, 'new')).filter((n) => n !== 'old-message');
  for (const name of ['joe', 'ann', 'bob']) await waitFor(() => existsSync(join(root, 'mailbox', name, 'new')) && delivered(name).length === 1, { timeoutMs: 20_000, what: `delivery to ${name}` });
  for (const name of ['joe', 'ann']) {
    const file = join(root, 'mailbox', name, 'new', delivered(name)[0]!);
    const st = statSync(file);
    assert.equal(st.uid, user.uid, `${file} owner`);
    assert.equal(st.mode & 0o777, 0o600, `${file} mode ${(st.mode & 0o777).toString(8)}`);
    assert.equal(statSync(join(root, 'mailbox', name)).uid, user.uid, `mailbox/${name} owner`);
  }
  // A message in another user's mailbox is that user's (the job controller's CAP_CHOWN), private.
  const bobFile = statSync(join(root, 'mailbox', 'bob', 'new', delivered('bob')[0]!));
  assert.equal(bobFile.uid, OTHER_UID, "a message in another user's mailbox is the mailbox owner's");
  assert.equal(bobFile.gid, user.gid, "a message in another user's mailbox is in the mailbox's group");
  assert.equal(bobFile.mode & 0o777, 0o600, `private to the owner, mode ${(bobFile.mode & 0o777).toString(8)}`);
  assert.deepEqual(readdirSync(join(root, 'mailbox', 'bob', 'tmp')), [], 'nothing left in tmp/');
  assert.doesNotMatch(readFileSync(join(root, 'log', 'job_controller.log'), 'utf8'), /no CAP_CHOWN/, 'started as root: nothing to say');

  // A message that waits in the queue (the smart host refuses connections): the service user's, 0600.
  const submitted = await runCli('imsimta', ['submit', '--root', root, 'someone@remote.test'], { env: ENV, binDir: BIN, input: 'Subject: waits\n\nbody\n' });
  assert.equal(submitted.code, 0, submitted.stderr);
  const queued = await waitFor(() => {
    const dir = join(root, 'queue', 'tcp_local');
    const files = existsSync(dir) ? filesUnder(dir).filter((f) => statSync(f).isFile()) : [];
    return files.length === 1 && /\bQ\b.*someone@remote\.test/.test(readFileSync(join(root, 'log', 'mail.log'), 'utf8')) ? files[0] : null;
  }, { timeoutMs: 20_000, what: 'the deferred message in queue/tcp_local' });
  const q = statSync(queued);
  assert.equal(q.uid, user.uid, 'queue file owner');
  assert.equal(q.mode & 0o777, 0o600, 'queue file mode');

  // A reload that adds a port below 1024: the dispatcher binds it (CAP_NET_BIND_SERVICE kept).
  inst.write('etc/dispatcher.cnf', `[SERVICE=SMTP]\nPORT=${PRIVILEGED_PORT},${SECOND_PRIVILEGED_PORT}\nINTERFACE_ADDRESS=${ADDRESS}\nMIN_PROCS=1\n`);
  const reload = await runCli('imsimta', ['reload', '--root', root], { env: ENV, binDir: BIN, timeoutMs: 60_000 });
  assert.equal(reload.code, 0, reload.stdout + reload.stderr);
  const second = await runTool('/usr/bin/swaks', ['--server', `${ADDRESS}:${SECOND_PRIVILEGED_PORT}`, '--timeout', '10', '--hide-all', '--from', 'sender@client.test', '--to', 'joe@mx.owner.test']);
  assert.equal(second.code, 0, second.stdout + second.stderr);
  await waitFor(() => delivered('joe').length === 2, { timeoutMs: 20_000, what: 'delivery through the reloaded port' });

  const stopped = await runCli('stop-msg', ['--root', root], { env: ENV, binDir: BIN, timeoutMs: 60_000 });
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.equal(readFileSync(join(root, 'log', 'console.log'), 'utf8'), '', 'nothing on the console');
});

test('start-msg --foreground as root (npm start): the watcher and its parts run as the service user; SIGTERM stops them all', { timeout: 120_000 }, async () => {
  const port = asRoot ? 25 : await freePort('127.0.131.2');
  const inst = makeInstance({
    files: {
      'etc/imta.cnf': IMTA_CNF,
      'etc/dispatcher.cnf': `[SERVICE=SMTP]\nPORT=${port}\nINTERFACE_ADDRESS=127.0.131.2\nMIN_PROCS=1\n`,
      'etc/option.dat': 'LOCAL_HOST=mx.owner.test\n',
    },
  });
  instances.push(inst);
  chmodSync(inst.root, 0o755);
  const expectedUid = asRoot ? lookupUser('tsubame')!.uid : process.getuid!();
  const child = spawn(join(BIN, 'start-msg'), ['--foreground', '--root', inst.root], { env: { ...process.env, TSUBAME_SERVER_USER: undefined }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    await waitFor(() => /tsubame started/.test(out), { timeoutMs: 60_000, what: `"tsubame started"\n${out}` });
    const rows = await waitFor(async () => {
      const r = await processes(inst.root);
      return r.some((p) => p.role === 'smtp_server') ? r : null;
    }, { what: 'an SMTP server process (MIN_PROCS=1)' });
    for (const { role, pid } of rows) assert.equal(statusOf(pid).uid, expectedUid, `${role} pid ${pid}`);
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0, out);
  assert.match(out, /tsubame stopped\n$/);
  assert.deepEqual(readdirSync(join(inst.root, 'run')), [], 'run/ empty after the stop');
});
