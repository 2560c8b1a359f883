// etc/mappings fuzz: thousands of random edits of a mappings file that uses every construct
// (lines deleted, swapped, duplicated, characters flipped, garbage and mapping tokens inserted,
// line ends changed) go through the parser; nothing may throw, every diagnostic points at a real
// file:line on one line, and each edit that loads is compiled and asked every access table with
// hostile probes: no exception, a decision in bounded time, a refusal reply on one line.
// Reproduce a run with FUZZ_SEED=<seed> (printed on failure).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { makeInstance } from '../helpers/instance.js';
import { parseMappings } from '../../src/config/mappings.js';
import { formatDiagnostic, type Diagnostic } from '../../src/config/types.js';
import { ACCESS_TABLES, checkAccess, compileMappings } from '../../src/mappings/index.js';
import { Prng, fuzzSeed, mutateText, type MutationVocabulary } from './helpers.js';

const RUNS = 3000;
const BUDGET_MS = 20_000;
const SLOW_DECISION_MS = 2000;

const BASE = `! every construct once
PORT_ACCESS

  TCP|*|25|$(192.0.2.0/24)|*     $N421$ 4.7.0$ Later
  TCP|*|*|$<198.51.100.4/2>|*    $N$TLogged|No
  *|*|*|*|*                      $C$|INTERNAL_IP;$3|$Y$E
  *                              $YEXTERNAL

INTERNAL_IP
  $(127.0.0.0/8)   $Y
  \${::1/128}       $Y
  *                $N

FROM_ACCESS
  *|SMTP/*|MAIL|tcp_local|*@$[a-z]*.example|   $NAuth$ first$;A
  *|*|*|*|$_*@*|*                               $Y$<from$ $1

ORIG_SEND_ACCESS
  tcp_local|*|tcp_local|*        $N$D30|Relaying$ not$ allowed
  *|*|*|$D*@*                    $N$X4.7.1|Numbers$ later
  *|*|*|*|*                      $\\$0$^$1$_$2$C
  *|*|*|%$A*@*                   $H$Y

SEND_ACCESS
  *|*|*|*@$0*                    $B
  *|*|*|*                        $Tt|$Y$?50?

MAIL_ACCESS
  *|*|*|*|*|*|*|*|*|*|*          $Y$:T

LOOP
  a*     $0$R
  *      a$0$L
`;

const VOCABULARY: MutationVocabulary = {
  keys: ['PORT_ACCESS', 'FROM_ACCESS', 'SEND_ACCESS', 'LOOP', '  *', '  *|*|*|*', '$N', '$Y'],
  keywords: ['$N', '$Y', '$F', '$D', '$D-5', '$X5.7.1|', '$T', '$C', '$E', '$L', '$R', '$|LOOP;$0|', '$|NOPE;x|', '$:A', '$;T', '$?7?', '$0', '$9', '$\\', '$^', '$_',
    '*', '%', '$*', '$ ', '$$', '$[a-', '$[]%', '$(10.0.0.0/8)', '$<1.2.3.4/40>', '${::1}', '$0*', '$5*', '$A%', '$Q', '$J', '${db}', '\\', '<', '!', '|'],
};

const PROBES = [
  'TCP|192.0.2.1|25|192.0.2.77|4000', 'TCP|1.2.3.4|25|198.51.100.5|1', 'TCP|::1|25|::1|2', '', '|||||||', 'a'.repeat(600), `${'*|'.repeat(100)}x`,
  'TCP|127.0.0.1|25|127.0.0.1|5|SMTP/evil\r\nhelo|MAIL|tcp_local|joe@abc.example|', 'tcp_local|a@b|tcp_local|123@x', 'tcp_local|a@b|l|q1x@y',
  `l|${'a@'.repeat(200)}|l|${'b%'.repeat(200)}`, 'TCP|x|25|\u0000\u00ff|0|SMTP/é|MAIL|tcp_local|<>|', 'a|b|c|d|e|f|g|h|i|j|k',
];

const seed = fuzzSeed();
const inst = makeInstance({});
after(() => inst.remove());

test('random edits of etc/mappings: no exception, one-line file:line diagnostics, bounded decisions', { timeout: 120_000 }, () => {
  const rng = new Prng(seed);
  const file = join(inst.root, 'etc', 'mappings');
  inst.write('etc/mappings', BASE);
  const baseDiagnostics: Diagnostic[] = [];
  parseMappings(file, baseDiagnostics);
  assert.deepEqual(baseDiagnostics, [], 'the file the edits start from loads cleanly');
  const started = Date.now();
  let loaded = 0;
  let runs = 0;
  for (; runs < RUNS && Date.now() - started < BUDGET_MS; runs++) {
    let text = BASE;
    const what: string[] = [];
    for (let k = 1 + rng.int(3); k > 0; k--) {
      const m = mutateText(text, rng, VOCABULARY);
      text = m.text;
      what.push(m.what);
    }
    inst.write('etc/mappings', text);
    const context = `FUZZ_SEED=${seed} run ${runs}: ${what.join('; ')}`;
    const diagnostics: Diagnostic[] = [];
    const config = parseMappings(file, diagnostics);
    const lines = text.split('\n').length;
    for (const d of diagnostics) {
      assert.ok(d.file === file && Number.isInteger(d.line) && d.line >= 0 && d.line <= lines, `${context}: bad position ${JSON.stringify(d)}`);
      assert.ok(!formatDiagnostic(d).includes('\n') && d.message.trim() !== '', `${context}: ${JSON.stringify(d)}`);
    }
    if (diagnostics.some((d) => d.severity === 'error')) continue;
    loaded++;
    const mappings = compileMappings(config);
    for (const table of ACCESS_TABLES) {
      for (const probe of PROBES) {
        const t0 = Date.now();
        const decision = checkAccess(mappings, table, probe, { address: 'x@y', flags: new Set(['A']), random: () => rng.next() });
        const ms = Date.now() - t0;
        assert.ok(ms < SLOW_DECISION_MS, `${context}: ${table} took ${ms} ms on ${JSON.stringify(probe.slice(0, 40))}`);
        assert.ok(decision.verdict === 'accept' || /^[45]\d\d [45]\.\d+\.\d+ [^\r\n]*$/.test(decision.reply ?? ''), `${context}: ${table} reply ${JSON.stringify(decision.reply)}`);
      }
    }
  }
  assert.ok(runs >= 200, `only ${runs} runs in ${BUDGET_MS} ms`);
  assert.ok(loaded > runs / 10, `only ${loaded} of ${runs} edits loaded: the fuzz no longer reaches the matcher`);
});
