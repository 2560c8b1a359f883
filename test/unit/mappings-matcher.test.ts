// The mapping matcher: patterns (wildcards, globs, sets, back matches, IP networks, case-blind
// matching, greedy and lazy), templates (substitutions, case, flags, conditions, $|…|) and the
// entry scan ($C $E $L $R), table-driven from Messaging Server's own examples where it has them.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { parseMappings } from '../../src/config/mappings.js';
import type { Diagnostic } from '../../src/config/types.js';
import { applyMapping, compileMappings, compilePattern, compileMappingTemplate, matchPattern, MappingTemplateError, MAX_MAPPING_STEPS, PatternError, type CompiledMappings } from '../../src/mappings/index.js';
import { makeInstance, type TestInstance } from '../helpers/instance.js';

const instances: TestInstance[] = [];
after(() => instances.forEach((i) => i.remove()));

/** Compiles a mappings file given as lines; the file must load without errors. */
function tables(...lines: string[]): CompiledMappings {
  const inst = makeInstance({ files: { 'etc/mappings': `${lines.join('\n')}\n` } });
  instances.push(inst);
  const diagnostics: Diagnostic[] = [];
  const config = parseMappings(join(inst.root, 'etc/mappings'), diagnostics);
  assert.deepEqual(diagnostics.filter((d) => d.severity === 'error'), []);
  return compileMappings(config);
}

const match = (pattern: string, input: string) => matchPattern(compilePattern(pattern), input);

test('patterns: wildcards, quoting, case-blind matching and the saved texts', () => {
  const cases: Array<[string, string, string[] | null]> = [
    // Messaging Server's example: PSI$%*::* matches PSI%A::B ($0 = A, $1 = B), not PSIABC::DEF.
    ['PSI$%*::*', 'PSI%A::B', ['A', 'B']],
    ['PSI$%*::*', 'PSI%1234::USER', ['1234', 'USER']],
    ['PSI$%*::*', 'PSIABC::DEF', null],
    ['*', '', ['']],
    ['%', '', null],
    ['%%', 'ab', ['a', 'b']],
    ['TCP|*|25|*|*', 'tcp|192.0.2.1|25|198.51.100.7|4000', ['192.0.2.1', '198.51.100.7', '4000']],
    ['*@EXAMPLE.COM', 'Joe@example.com', ['Joe']], // case-blind, the saved text keeps its case
    ['a$ b', 'a b', []], // `$ ` is a space
    ['a$*b', 'a*b', []],
    ['a$*b', 'axb', null],
    ['100$%', '100%', []],
    ['$$5', '$5', []],
    ['x$|y', 'x|y', []],
    ['*|*', 'a|b|c', ['a|b', 'c']], // greedy: the first * takes all it can
    ['$_*|*', 'a|b|c', ['a', 'b|c']], // lazy
    ['$@*|*', 'a|b', ['b']], // $@: the first wildcard is not saved
    ['$@*|$^*', 'a|b', ['b']],
  ];
  for (const [pattern, input, want] of cases) assert.deepEqual(match(pattern, input), want, `${pattern} ~ ${input}`);
});

test('patterns: globs, character sets and back matches', () => {
  const cases: Array<[string, string, string[] | null]> = [
    ['$D*', '12345', ['12345']],
    ['$D*', '12a45', null],
    ['$D%$D%', '42', ['4', '2']],
    ['$A*$D*', 'abc123', ['abc', '123']],
    ['$H*', 'DeadBeef', ['DeadBeef']],
    ['$B*', '0110', ['0110']],
    ['$O*', '078', null],
    ['$S*', 'a_$9', ['a_$9']],
    ['a$T*b', 'a \t b', [' \t ']],
    ['$X%', 'f', ['f']],
    ['$[abc]%', 'B', ['B']], // sets are case-blind too
    ['$[a-c]*x', 'abcabx', ['abcab']],
    ['$[a-c]*x', 'abdx', null],
    ['$[\\-\\]]*', '-]-', ['-]-']],
    ['*|$0*', 'abc|ABC', ['abc']], // a back match, case-blind
    ['*|$0*', 'abc|abd', null],
    ['*.*|$1*', 'mail.example|example', ['mail', 'example']],
  ];
  for (const [pattern, input, want] of cases) assert.deepEqual(match(pattern, input), want, `${pattern} ~ ${input}`);
});

test('patterns: IP networks $(v4/prefix), $<v4/ignored bits>, ${v6/prefix}', () => {
  const cases: Array<[string, string, boolean]> = [
    // Messaging Server's examples: both match the 123.45.67.0 subnet; $<…4/2> is .4 to .7.
    ['$(123.45.67.0/24)', '123.45.67.89', true],
    ['$(123.45.67.0/24)', '123.45.68.1', false],
    ['$<123.45.67.0/8>', '123.45.67.200', true],
    ['$<123.45.67.4/2>', '123.45.67.7', true],
    ['$<123.45.67.4/2>', '123.45.67.8', false],
    ['$<123.45.67.4/2>', '123.45.67.3', false],
    ['$(192.0.2.1)', '192.0.2.1', true],
    ['$(192.0.2.1)', '192.0.2.10', false],
    ['TCP|*|25|$(10.0.0.0/8)|*', 'TCP|127.0.0.1|25|10.1.2.3|5555', true],
    ['TCP|*|25|$(10.0.0.0/8)|*', 'TCP|127.0.0.1|25|11.1.2.3|5555', false],
    ['${2001:db8::/32}', '2001:DB8:0:1::25', true],
    ['${2001:db8::/32}', '2001:db9::1', false],
    ['$(127.0.0.0/8)', 'localhost', false],
  ];
  for (const [pattern, input, want] of cases) assert.equal(match(pattern, input) !== null, want, `${pattern} ~ ${input}`);
  assert.deepEqual(match('TCP|*|*|$(10.0.0.0/8)|*', 'TCP|a|25|10.9.9.9|1'), ['a', '25', '10.9.9.9', '1'], 'the matched address is saved');
});

test('patterns: errors say what is wrong', () => {
  const cases: Array<[string, RegExp]> = [
    ['abc$', /lone \$/],
    ['$1*', /wildcard 1, but only 0 wildcards come before/],
    ['*$1*', /wildcard 1, but only 1 wildcard comes before/],
    ['$D', /must be followed by % or \*/],
    ['$Q*', /unknown pattern sequence \$Q/],
    ['$[abc', /not closed/],
    ['$[]%', /empty character set/],
    ['$[z-a]%', /runs backwards/],
    ['$(1.2.3.4', /not closed/],
    ['$(1.2.3.4/40)', /bad bit count/],
    ['$(2001:db8::1)', /IPv4 address/],
    ['${10.0.0.1}', /IPv6 address/],
  ];
  for (const [pattern, want] of cases) assert.throws(() => compilePattern(pattern), (e: Error) => e instanceof PatternError && want.test(e.message), pattern);
});

test('patterns: many stars on a long probe stay fast (failures are remembered)', () => {
  const pattern = compilePattern('*a*a*a*a*a*a*a*a*a*a*b');
  const input = 'a'.repeat(2000);
  const started = process.hrtime.bigint();
  assert.equal(matchPattern(pattern, input), null);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  assert.ok(ms < 5000, `took ${ms} ms`);
});

test('templates: errors for what cannot be compiled or is not supported', () => {
  const cases: Array<[string, RegExp]> = [
    ['abc$', /lone \$/],
    ['${db}', /general database lookups\) is not supported/],
    ['$]ldap:///x[', /LDAP lookups\) is not supported/],
    ['$[img,routine,arg]', /site-supplied routines\) is not supported/],
    ['$#seq#', /sequence numbers\) is not supported/],
    ['$|TABLE|', /names no argument/],
    ['$|TABLE;x', /not closed/],
    ['$:', /flag letter/],
    ['$?200?', /percentage/],
    ['$|T;$Y|', /cannot appear inside the argument/],
  ];
  for (const [template, want] of cases) assert.throws(() => compileMappingTemplate(template), (e: Error) => e instanceof MappingTemplateError && want.test(e.message), template);
  const t = compileMappingTemplate('$N$D30|Relaying$ not$ allowed');
  assert.deepEqual(t.flags, ['N', 'D']);
});

test('mapping: substitutions, case control and literal escapes in the output', () => {
  const m = tables(
    'T',
    '  PSI$%*::*      $1@$0',
    '  low|*          $\\$0',
    '  up|*|*         $^$0$_|$1',
    '  lit|*          $$$ $*100%',
  );
  const out = (input: string) => applyMapping(m, 't', input).output;
  assert.equal(out('PSI%A::B'), 'B@A');
  assert.equal(out('PSI%1234::USER'), 'USER@1234');
  assert.equal(out('low|MiXeD'), 'mixed');
  assert.equal(out('up|MiXeD|KeEp'), 'MIXED|KeEp');
  assert.equal(out('lit|x'), '$ *100%');
  const miss = applyMapping(m, 'T', 'PSIABC::DEF');
  assert.deepEqual([miss.matched, miss.output, miss.steps.length], [false, 'PSIABC::DEF', 0]);
  assert.equal(applyMapping(m, 'NOSUCH', 'x').tableFound, false);
});

test('mapping: the first matching entry wins and ends the mapping ($E by default)', () => {
  const m = tables(
    'SEND_ACCESS',
    '  *|Elvis1@sesta.com|*|*      $Y',
    '  *|Nelson7@sesta.com|*|*     $Y',
    '  *|AkiraK@sesta.com|*|*      $Y',
    '  *|*@sesta.com|*|*           $NMail$ Blocked',
  );
  const elvis = applyMapping(m, 'SEND_ACCESS', 'tcp_local|elvis1@SESTA.com|l|x@y');
  assert.deepEqual([elvis.flags, elvis.steps.length, elvis.steps[0]!.entry.line], [['Y'], 1, 2]);
  const other = applyMapping(m, 'SEND_ACCESS', 'tcp_local|bob@sesta.com|l|x@y');
  assert.deepEqual([other.flags, other.output, other.steps[0]!.entry.line], [['N'], 'Mail Blocked', 5]);
  assert.equal(applyMapping(m, 'SEND_ACCESS', 'tcp_local|bob@example.com|l|x@y').matched, false);
});

test('mapping: $C goes on with the next entry on the output, $R starts over, $L makes one more pass', () => {
  const m = tables(
    'CHAIN',
    '  a*     ba$0$C',
    '  b*     cb$0$C',
    '  x*     never',
    '',
    'RESTART',
    '  done*  done$0',
    '  *      done$0$R',
    '',
    'LOOPED',
    '  z*     z$0!',
    '  *      z$0$L',
  );
  const chain = applyMapping(m, 'CHAIN', 'a1');
  assert.deepEqual([chain.output, chain.steps.map((s) => s.entry.line)], ['cba1', [2, 3]]);
  const restart = applyMapping(m, 'RESTART', 'x');
  assert.deepEqual([restart.output, restart.steps.map((s) => s.entry.line)], ['donex', [8, 7]]);
  const looped = applyMapping(m, 'LOOPED', 'q');
  assert.deepEqual([looped.output, looped.steps.map((s) => s.entry.line)], ['zq!', [12, 11]]);
});

test('mapping: an endless $R loop stops with an error instead of hanging', () => {
  const m = tables('LOOP', '  *   $0$R');
  const r = applyMapping(m, 'LOOP', 'x');
  assert.match(r.error ?? '', new RegExp(`did not end after ${MAX_MAPPING_STEPS} matched entries`));
  assert.equal(r.steps.length, MAX_MAPPING_STEPS);
});

test("mapping: Messaging Server's PORT_ACCESS idiom, $C$|INTERNAL_IP;$3|$Y$E, then $YEXTERNAL", () => {
  const m = tables(
    'PORT_ACCESS',
    '  *|*|*|*|*     $C$|INTERNAL_IP;$3|$Y$E',
    '  *             $YEXTERNAL',
    '',
    'INTERNAL_IP',
    '  $(127.0.0.1/8)     $Y',
    '  $(192.168.0.0/16)  $Y',
    '  *                  $N',
  );
  const inside = applyMapping(m, 'PORT_ACCESS', 'TCP|192.0.2.1|25|192.168.4.5|40000');
  assert.deepEqual([inside.output, inside.flags, inside.steps.length], ['', ['Y'], 1]);
  // INTERNAL_IP answers $N: the substitution fails, the entry's output is its input, and $C
  // (set before the substitution) goes on to the next entry.
  const outside = applyMapping(m, 'PORT_ACCESS', 'TCP|192.0.2.1|25|203.0.113.9|40000');
  assert.deepEqual([outside.output, outside.flags, outside.steps.map((s) => s.entry.line)], ['EXTERNAL', ['Y'], [2, 3]]);
  assert.match(outside.steps[0]!.failedSubstitution ?? '', /INTERNAL_IP did not answer \$Y for "203\.0\.113\.9"/);
  assert.equal(outside.steps[0]!.output, 'TCP|192.0.2.1|25|203.0.113.9|40000');
});

test('mapping: $:x and $;x test the session flags, $?n? succeeds n percent of the time', () => {
  const m = tables(
    'FLAGS',
    '  *   tls$:T',
    '  *   plain$;T',
    '',
    'CHANCE',
    '  *   never$?0?',
    '  *   sometimes$?50?',
    '  *   always',
  );
  assert.equal(applyMapping(m, 'FLAGS', 'x', { flags: new Set(['T']) }).output, 'tls');
  assert.equal(applyMapping(m, 'FLAGS', 'x', { flags: new Set() }).output, 'plain');
  assert.equal(applyMapping(m, 'CHANCE', 'x', { random: () => 0.49 }).output, 'sometimes');
  assert.equal(applyMapping(m, 'CHANCE', 'x', { random: () => 0.5 }).output, 'always');
});

test('mapping: a $|…| to a missing table, or nested too deep, fails the entry (the output is its input)', () => {
  const m = tables(
    'OUTER',
    '  *   $|SELF;$0|',
    '',
    'SELF',
    '  *   $|SELF;$0|$Y',
  );
  const r = applyMapping(m, 'OUTER', 'x');
  assert.equal(r.output, 'x');
  assert.match(r.steps[0]!.failedSubstitution ?? '', /did not answer \$Y/);
  assert.equal(r.error, null);
});

test('mapping: a back-match pattern that would take too long is an error, not a hang or a silent miss', () => {
  const m = tables('COSTLY', '  %*|*$0**$0**$0**$0*x   $Y');
  const r = applyMapping(m, 'COSTLY', `a|${'a'.repeat(3000)}`);
  assert.equal(r.matched, false);
  assert.match(r.error ?? '', /mappings:2: pattern .* took more than \d+ steps/);
});
