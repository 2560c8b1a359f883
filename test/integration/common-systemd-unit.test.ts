// contrib/tsubame.service: systemd's own checker (`systemd-analyze verify`, Debian's systemd)
// accepts the unit with no warning once its paths name this checkout, and rejects a copy with a
// misspelt setting; `systemd-analyze security --offline` rates its sandbox "OK" or better. This
// machine runs no systemd, so the unit is then run as systemd would run it: its ExecStart as its
// User with its ambient and bounding capabilities and no-new-privileges (util-linux's setpriv
// does what systemd does), its Environment and UMask. Every process runs as the service user
// with no-new-privileges, only the watcher and the dispatcher hold CAP_NET_BIND_SERVICE, only the
// watcher and the job controller CAP_CHOWN (a message in a mailbox another user owns is made that
// user's), the SMTP server processes nothing; mail is accepted on port 25, its ExecReload (`imsimta reload`, as the same user) applies a new service
// on port 587, and SIGTERM (its KillSignal) stops everything and leaves run/ empty.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { instancePaths } from '../../src/common/instance.js';
import { serviceDirectories } from '../../src/common/instance-ownership.js';
import { freePort, makeInstance, repoRoot, runCli, waitFor, type TestInstance } from '../helpers/instance.js';
import { reachableBinDir } from '../helpers/service-user.js';
import { greeting } from '../helpers/running-instance.js';
import { runTool } from './smtp-harness.js';
import { lookupUser } from '../../src/common/service-user.js';

const UNIT = join(repoRoot, 'contrib', 'tsubame.service');
const SHIPPED_ROOT = '/opt/tsubame';
const ADDRESS = '127.0.132.1';
const asRoot = process.geteuid?.() === 0;

/** The [Service] settings of a unit file: key → values in order (continuation lines joined). */
function unitSettings(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const line of text.replace(/\\\n/g, ' ').split('\n')) {
    const t = line.trim();
    if (t === '' || t.startsWith('#') || t.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(t);
    if (s) {
      section = s[1]!;
      continue;
    }
    const eq = t.indexOf('=');
    const key = `${section}.${t.slice(0, eq)}`;
    out.set(key, [...(out.get(key) ?? []), t.slice(eq + 1)]);
  }
  return out;
}

const unitText = readFileSync(UNIT, 'utf8');
const unit = unitSettings(unitText);
const one = (key: string) => {
  const v = unit.get(`Service.${key}`);
  assert.ok(v && v.length === 1, `${key}= once in the unit`);
  return v[0]!;
};

const temps: string[] = [];
const instances: TestInstance[] = [];
let service: ChildProcess | null = null;
after(async () => {
  if (service && service.exitCode === null) service.kill('SIGKILL');
  for (const inst of instances) {
    await runCli('stop-msg', ['--root', inst.root], { timeoutMs: 60_000 }).catch(() => {});
    inst.remove();
  }
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

function analyze(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('systemd-analyze', args, { timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

/** The unit with /opt/tsubame replaced by this checkout, in a directory of its own. */
function unitHere(text: string, name = 'tsubame.service'): string {
  const dir = mkdtempSync(join(tmpdir(), 'unit-'));
  temps.push(dir);
  const path = join(dir, name);
  writeFileSync(path, text.replaceAll(SHIPPED_ROOT, repoRoot));
  return path;
}

test('systemd-analyze verify accepts the unit without a warning, and flags a misspelt setting', async () => {
  const ok = await analyze(['verify', unitHere(unitText)]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stderr.trim(), '', 'no warning');
  const typo = await analyze(['verify', unitHere(unitText.replace('NoNewPrivileges=yes', 'NoNewPrivilege=yes'))]);
  assert.match(typo.stderr, /Unknown key 'NoNewPrivilege'/, 'the checker reads the settings');
  const relative = await analyze(['verify', unitHere(unitText.replace(/^ExecStart=\S+/m, 'ExecStart=bin/start-msg'))]);
  assert.notEqual(relative.code, 0);
});

test('the sandbox: systemd-analyze security rates the unit OK, with the hardening an MTA gets', async () => {
  const r = await analyze(['security', '--offline=true', '--no-pager', unitHere(unitText)]);
  const m = /Overall exposure level for tsubame\.service: (\d+\.\d+) (\S+)/.exec(r.stdout);
  assert.ok(m, r.stdout + r.stderr);
  assert.ok(Number(m[1]) <= 4.0 && ['OK', 'SAFE'].includes(m[2]!), `exposure ${m[1]} ${m[2]}`);
  assert.equal(one('User'), 'tsubame');
  assert.equal(one('AmbientCapabilities'), 'CAP_NET_BIND_SERVICE CAP_CHOWN');
  assert.equal(one('CapabilityBoundingSet'), 'CAP_NET_BIND_SERVICE CAP_CHOWN');
  assert.equal(one('NoNewPrivileges'), 'yes');
  assert.equal(one('ProtectSystem'), 'strict');
  assert.equal(one('ProtectHome'), 'yes');
  assert.equal(one('PrivateTmp'), 'yes');
  // Exactly the directories the processes write (start-msg gives them to the service user), etc/ not among them.
  const written = serviceDirectories(instancePaths(SHIPPED_ROOT)).map((d) => basename(d));
  assert.deepEqual(one('ReadWritePaths').split(/\s+/).sort(), written.map((d) => `${SHIPPED_ROOT}/${d}`).sort(), 'the directories tsubame writes, etc/ not among them');
  assert.equal(one('ExecStart'), `${SHIPPED_ROOT}/bin/start-msg --foreground`);
  assert.equal(one('ExecReload'), `${SHIPPED_ROOT}/bin/imsimta reload`);
  assert.equal(unit.get('Service.MemoryDenyWriteExecute'), undefined, 'Node.js needs writable executable memory (its JIT)');
});

function statusOf(pid: number): { uid: number; capEff: bigint; noNewPrivs: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    uid: Number(/^Uid:\s+(\d+)/m.exec(status)![1]),
    capEff: BigInt(`0x${/^CapEff:\s+([0-9a-f]+)/m.exec(status)![1]}`),
    noNewPrivs: Number(/^NoNewPrivs:\s+(\d)/m.exec(status)?.[1] ?? '0'),
  };
}
const CAP_NET_BIND_SERVICE = 1n << 10n;
const CAP_CHOWN = 1n << 0n;
/** What each process holds under the unit; any other holds nothing. */
const CAPABILITIES_OF: Record<string, bigint> = { watcher: CAP_NET_BIND_SERVICE | CAP_CHOWN, dispatcher: CAP_NET_BIND_SERVICE, job_controller: CAP_CHOWN };
/** The owner of another user's mailbox: a throwaway uid, no passwd entry needed. */
const OTHER_UID = 4242;

test('run as systemd runs it: the service user, each capability where it is needed, mail on port 25 (into another user\'s mailbox as that user), ExecReload binds 587, SIGTERM stops it all', { timeout: 240_000 }, async () => {
  let bin = join(repoRoot, 'bin');
  let prefix: string[] = [];
  let smtpPort = await freePort(ADDRESS);
  let submissionPort = await freePort(ADDRESS);
  let user: { uid: number; gid: number; groups: number[] } | null = null;
  if (asRoot) {
    // The unit's User=, created as npm start and the OPERATIONS install steps create it.
    execFileSync('bash', [join(repoRoot, 'scripts', 'ensure-installed.sh')], { stdio: 'ignore' });
    user = lookupUser(one('User'))!;
    assert.ok(user && user.uid !== 0);
    assert.equal(user.gid, lookupUser(one('Group'))?.gid ?? user.gid);
    bin = reachableBinDir(one('User'));
    // What systemd does before ExecStart: the user, its groups, the bounding and ambient sets, no new privileges.
    const capList = (setting: string) => one(setting).toLowerCase().split(/\s+/).map((c) => `,+${c.replace(/^cap_/, '')}`).join('');
    const caps = capList('AmbientCapabilities');
    assert.equal(capList('CapabilityBoundingSet'), caps);
    prefix = ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, `--groups=${user.groups.join(',')}`, `--bounding-set=-all${caps}`, `--inh-caps=-all${caps}`, `--ambient-caps=-all${caps}`, ...(one('NoNewPrivileges') === 'yes' ? ['--no-new-privs'] : []), '--'];
    smtpPort = 25;
    submissionPort = 587;
  }
  const inst = makeInstance({
    files: {
      'etc/imta.cnf': `! systemd unit test\nlocalhost            $U%localhost@localhost\n.                    $U%$H@tcp-daemon\n\nl\nlocalhost\n\ntcp_local smtp nomx port 9 daemon 127.0.132.9\ntcp-daemon\n`,
      'etc/dispatcher.cnf': `[SERVICE=SMTP]\nPORT=${smtpPort}\nINTERFACE_ADDRESS=${ADDRESS}\nMIN_PROCS=1\n`,
      'etc/job_controller.cnf': '[POOL=DEFAULT]\nJOB_LIMIT=2\n',
      'etc/option.dat': 'INTERNAL_IP=127.0.0.0/8\nLOCAL_HOST=mx.unit.test\n',
    },
  });
  instances.push(inst);
  const root = inst.root;
  chmodSync(root, 0o755);
  // The install steps of OPERATIONS: the directories of ReadWritePaths=, the service user's.
  for (const d of [...serviceDirectories(instancePaths(root)).map((dir) => basename(dir)), 'mailbox/joe']) {
    mkdirSync(join(root, d), { recursive: true });
    if (user) chownSync(join(root, d), user.uid, user.gid);
  }
  // A mailbox another user owns, open to the service user through its group.
  if (user) {
    mkdirSync(join(root, 'mailbox', 'bob'));
    chownSync(join(root, 'mailbox', 'bob'), OTHER_UID, user.gid);
    chmodSync(join(root, 'mailbox', 'bob'), 0o2770);
  }

  // ExecStart with the unit's Environment=, the paths made this checkout's and this instance's.
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, LANG: 'C.UTF-8' };
  for (const e of unit.get('Service.Environment') ?? []) {
    const [k, v] = e.split('=', 2) as [string, string];
    env[k] = v.replace(SHIPPED_ROOT, root);
  }
  assert.equal(env.IMTA_ROOT, root);
  const command = (line: string) => line.replace(`${SHIPPED_ROOT}/bin`, bin).split(/\s+/);
  const umask = process.umask(Number.parseInt(one('UMask'), 8));
  try {
    const [file, ...args] = [...prefix, ...command(one('ExecStart'))];
    service = spawn(file!, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  } finally {
    process.umask(umask);
  }
  let output = '';
  service.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d));
  service.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
  const exited = new Promise<number | null>((resolve) => service!.on('exit', (code) => resolve(code)));

  const rows = await waitFor(
    async () => {
      if (service!.exitCode !== null) throw new Error(`start-msg exited ${service!.exitCode}: ${output}`);
      const r = await runCli('imsimta', ['process', '--json', '--root', root], { binDir: bin });
      const list = r.code === 0 ? r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { role: string; pid: number }) : [];
      return list.some((p) => p.role === 'smtp_server') ? list : null;
    },
    { timeoutMs: 60_000, intervalMs: 300, what: `the instance started by the unit's ExecStart (${output})` },
  );
  assert.doesNotMatch(output, /warning|error/i, 'start-msg has nothing to switch or warn about');
  assert.equal(rows.find((r) => r.role === 'watcher')?.pid, service.pid, 'start-msg --foreground is the watcher: the main process systemd signals');
  for (const r of rows) {
    const st = statusOf(r.pid);
    assert.equal(st.uid, user ? user.uid : process.getuid!(), `${r.role} runs as the unit's User`);
    if (!user) continue;
    assert.equal(st.noNewPrivs, 1, `${r.role}: no new privileges`);
    assert.equal(st.capEff, CAPABILITIES_OF[r.role] ?? 0n, `${r.role}: capabilities ${st.capEff.toString(16)}`);
  }

  // Mail on port 25 (as root) into a Maildir, owned by the service user.
  const sent = await runTool('/usr/bin/swaks', ['--server', `${ADDRESS}:${smtpPort}`, '--timeout', '10', '--hide-informational', '--from', 'alice@client.test', '--to', 'joe@localhost']);
  assert.equal(sent.code, 0, sent.stdout + sent.stderr);
  await waitFor(() => readdirSync(join(root, 'mailbox', 'joe', 'new')).length === 1, { timeoutMs: 30_000, what: 'the message in the Maildir' });
  if (user) {
    // Into another user's mailbox: the message is that user's (the unit's CAP_CHOWN), 0600.
    const toBob = await runTool('/usr/bin/swaks', ['--server', `${ADDRESS}:${smtpPort}`, '--timeout', '10', '--hide-informational', '--from', 'alice@client.test', '--to', 'bob@localhost']);
    assert.equal(toBob.code, 0, toBob.stdout + toBob.stderr);
    const newDir = join(root, 'mailbox', 'bob', 'new');
    const [name] = await waitFor(() => (existsSync(newDir) && readdirSync(newDir).length === 1 ? readdirSync(newDir) : null), { timeoutMs: 30_000, what: "the message in bob's Maildir" });
    const st = statSync(join(newDir, name!));
    assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [OTHER_UID, user.gid, 0o600], "the mailbox owner's, private");
    const joe = statSync(join(root, 'mailbox', 'joe', 'new', readdirSync(join(root, 'mailbox', 'joe', 'new'))[0]!));
    assert.deepEqual([joe.uid, joe.mode & 0o777], [user.uid, 0o600], "in the service user's own mailbox, its own");
  }

  // ExecReload, run as systemd runs it (the same user and capabilities): a new service on 587.
  writeFileSync(join(root, 'etc', 'dispatcher.cnf'), `[SERVICE=SMTP]\nPORT=${smtpPort}\nINTERFACE_ADDRESS=${ADDRESS}\nMIN_PROCS=1\n\n[SERVICE=SUBMISSION]\nPORT=${submissionPort}\nINTERFACE_ADDRESS=${ADDRESS}\n`);
  const [rfile, ...rargs] = [...prefix, ...command(one('ExecReload'))];
  const reload = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(rfile!, rargs, { env, timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr })),
  );
  assert.equal(reload.code, 0, reload.stdout + reload.stderr);
  assert.match(reload.stdout, new RegExp(`SUBMISSION on ${ADDRESS.replace(/\./g, '\\.')}:${submissionPort}`));
  assert.match(await greeting(ADDRESS, submissionPort), /^220 /);

  // KillSignal: everything stops, run/ is left empty.
  service.kill(one('KillSignal') as NodeJS.Signals);
  const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), Number.parseInt(one('TimeoutStopSec'), 10) * 1000).unref())]);
  assert.equal(code, 0, output);
  for (const r of rows) assert.throws(() => process.kill(r.pid, 0), `${r.role} ${r.pid} is gone`);
  assert.deepEqual(readdirSync(join(root, 'run')), []);
});
