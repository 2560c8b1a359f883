// A real OpenLDAP slapd (Debian's /usr/sbin/slapd) for directory tests: its own slapd.conf, mdb
// database and a small schema with Messaging Server's mail attributes and object classes, in a
// temporary directory, listening on a loopback port, in the foreground (`-d 0`), stopped by its
// pid. Loaded with `ldapadd` as the root DN. `stop` and `start` again keep the port and the data
// (a directory that goes away and comes back); `pause`/`resume` make it hang (SIGSTOP/SIGCONT).
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { freePort, waitFor } from './instance.js';

const SLAPD = '/usr/sbin/slapd';
export const SUFFIX = 'dc=example,dc=test';
export const ROOT_DN = `cn=admin,${SUFFIX}`;
export const ROOT_PASSWORD = 'slapd-root-secret';

/**
 * Messaging Server's mail attributes and object classes as far as the tests need them, with
 * OIDs under the documentation arc (RFC 5612, enterprise 32473): inetMailUser is auxiliary (on
 * inetOrgPerson entries), inetMailGroup structural (no member is required, unlike
 * groupOfUniqueNames).
 */
const MAIL_SCHEMA = `
attributetype ( 1.3.6.1.4.1.32473.1.1.1 NAME 'mailAlternateAddress' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{256} )
attributetype ( 1.3.6.1.4.1.32473.1.1.2 NAME 'mailEquivalentAddress' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{256} )
attributetype ( 1.3.6.1.4.1.32473.1.1.3 NAME 'mailForwardingAddress' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{256} )
attributetype ( 1.3.6.1.4.1.32473.1.1.4 NAME 'mailDeliveryOption' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{256} )
attributetype ( 1.3.6.1.4.1.32473.1.1.5 NAME 'mgrpRFC822MailMember' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{256} )
attributetype ( 1.3.6.1.4.1.32473.1.1.6 NAME 'mgrpErrorsTo' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{256} SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.32473.1.2.1 NAME 'inetMailUser' SUP top AUXILIARY
  MAY ( mail $ mailAlternateAddress $ mailEquivalentAddress $ mailForwardingAddress $ mailDeliveryOption ) )
objectclass ( 1.3.6.1.4.1.32473.1.2.2 NAME 'inetMailGroup' SUP top STRUCTURAL MUST cn
  MAY ( mail $ mailAlternateAddress $ mailEquivalentAddress $ mailDeliveryOption $ uniqueMember $ mgrpRFC822MailMember $ mgrpErrorsTo $ description ) )
`;

const BASE_LDIF = `dn: ${SUFFIX}
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=People,${SUFFIX}
objectClass: organizationalUnit
ou: People

dn: ou=Groups,${SUFFIX}
objectClass: organizationalUnit
ou: Groups
`;

export interface Slapd {
  url: string;
  port: number;
  dir: string;
  /** The running process's pid (changes after start()). */
  pid(): number;
  /** Adds entries (LDIF) with ldapadd as the root DN. */
  add(ldif: string): Promise<void>;
  /** Stops the process (SIGTERM, SIGKILL after 10 s) and waits for it to be gone; the data stays. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
  /** SIGSTOP: the port still accepts connections, nothing answers. */
  pause(): void;
  resume(): void;
  /** Stops it and removes its directory. */
  remove(): Promise<void>;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function run(command: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')} failed: ${err.message}\n${stderr.slice(-2000)}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** A new slapd with the base entries loaded. */
export async function startSlapd(): Promise<Slapd> {
  const dir = mkdtempSync(join(tmpdir(), 'tsubame-slapd-'));
  mkdirSync(join(dir, 'db'));
  writeFileSync(join(dir, 'mail.schema'), MAIL_SCHEMA);
  const conf = `
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include ${dir}/mail.schema
pidfile ${dir}/slapd.pid
argsfile ${dir}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
sizelimit 500
database mdb
maxsize 268435456
suffix "${SUFFIX}"
rootdn "${ROOT_DN}"
rootpw ${ROOT_PASSWORD}
directory ${dir}/db
dbnosync
index objectClass eq
index uid,mail,mailAlternateAddress,mailEquivalentAddress eq
access to attrs=userPassword by anonymous auth by self write by * none
access to * by * read
`;
  writeFileSync(join(dir, 'slapd.conf'), conf);
  const port = await freePort();
  const url = `ldap://127.0.0.1:${port}`;
  let child: ChildProcess | null = null;
  let exited = true;
  let stderr = '';

  const start = async () => {
    stderr = '';
    // -d 0: stay in the foreground (the pid is the spawned process's), no debug output.
    const c = spawn(SLAPD, ['-f', join(dir, 'slapd.conf'), '-h', `${url}/`, '-d', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    exited = false;
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
    c.once('exit', () => (exited = true));
    try {
      await waitFor(async () => !exited && (await accepts(port)), { timeoutMs: 20_000, intervalMs: 50, what: 'slapd to listen' });
    } catch (err) {
      c.kill('SIGKILL');
      throw new Error(`${(err as Error).message}\n${stderr}`, { cause: err });
    }
  };
  const stop = async () => {
    const c = child;
    if (!c || exited) return;
    c.kill('SIGCONT');
    c.kill('SIGTERM');
    await waitFor(() => exited, { timeoutMs: 10_000, what: `slapd (pid ${c.pid}) to exit` }).catch(() => {
      c.kill('SIGKILL');
      return waitFor(() => exited, { timeoutMs: 5_000, what: 'slapd to die' });
    });
  };
  const add = async (ldif: string) => {
    const file = join(dir, `add-${Date.now()}-${Math.random().toString(36).slice(2)}.ldif`);
    writeFileSync(file, ldif);
    await run('ldapadd', ['-x', '-H', url, '-D', ROOT_DN, '-w', ROOT_PASSWORD, '-f', file]);
    rmSync(file, { force: true });
  };

  await start();
  await add(BASE_LDIF);
  return {
    url,
    port,
    dir,
    pid: () => child!.pid!,
    add,
    stop,
    start,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    async remove() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** LDIF of a mail user under ou=People. */
export function userLdif(uid: string, attrs: Record<string, string | string[]> = {}): string {
  const lines = [`dn: uid=${uid},ou=People,${SUFFIX}`, 'objectClass: inetOrgPerson', 'objectClass: inetMailUser', `uid: ${uid}`, `cn: ${uid}`, `sn: ${uid}`];
  if (!('mail' in attrs)) lines.push(`mail: ${uid}@example.test`);
  for (const [name, value] of Object.entries(attrs)) for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
  return `${lines.join('\n')}\n`;
}

/** LDIF of a mail group under ou=Groups. */
export function groupLdif(cn: string, attrs: Record<string, string | string[]> = {}): string {
  const lines = [`dn: cn=${cn},ou=Groups,${SUFFIX}`, 'objectClass: inetMailGroup', `cn: ${cn}`];
  if (!('mail' in attrs)) lines.push(`mail: ${cn}@example.test`);
  for (const [name, value] of Object.entries(attrs)) for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
  return `${lines.join('\n')}\n`;
}
