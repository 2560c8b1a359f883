// etc/mappings: tables, entries, comments, continuation lines, includes — and the exact
// file:line, severity and text of every problem the parser reports.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join, relative } from 'node:path';
import { parseMappings } from '../../src/config/mappings.js';
import type { Diagnostic } from '../../src/config/types.js';
import { makeInstance, type TestInstance } from '../helpers/instance.js';

const instances: TestInstance[] = [];
after(() => instances.forEach((i) => i.remove()));

function parse(files: Record<string, string>) {
  const inst = makeInstance({ files });
  instances.push(inst);
  const diagnostics: Diagnostic[] = [];
  const config = parseMappings(join(inst.root, 'etc/mappings'), diagnostics);
  /** `etc/file:line: severity: message` of each diagnostic, in report order. */
  const report = diagnostics.map((d) => `${relative(inst.root, d.file)}:${d.line}: ${d.severity}: ${d.message}`);
  return { inst, config, report };
}

const lines = (...l: string[]) => `${l.join('\n')}\n`;

test('no mappings file: no tables, no diagnostics', () => {
  const diagnostics: Diagnostic[] = [];
  const config = parseMappings(null, diagnostics);
  assert.deepEqual([config.file, config.tables.size, diagnostics], [null, 0, []]);
});

test('a good file: tables at column 1, indented entries, comments, blank lines, continuation, includes', () => {
  const { config, report, inst } = parse({
    'etc/mappings': lines(
      '! access control',
      'PORT_ACCESS',
      '',
      '  TCP|*|25|192.0.2.*|*     $NGo$ away',
      '\t*                       $Y',
      '',
      '! an indented comment follows',
      '  ! (ignored)',
      'ORIG_SEND_ACCESS',
      '  tcp_local|*|tcp_local|*  \\',
      '       $N$D30|Relaying$ not$ allowed',
      '  *|*|*|x@*  $0$\\',
      '<more.mappings',
      'aux_table',
      '  a*  b$0',
    ),
    'etc/more.mappings': lines('FROM_ACCESS', '  *|*|*|*|*|*|*|*|*|   $Y'),
  });
  assert.deepEqual(report, []);
  assert.deepEqual([...config.tables.keys()], ['PORT_ACCESS', 'ORIG_SEND_ACCESS', 'FROM_ACCESS', 'AUX_TABLE']);
  const port = config.tables.get('PORT_ACCESS')!;
  assert.deepEqual(port.entries.map((e) => [e.pattern, e.template, e.line]), [['TCP|*|25|192.0.2.*|*', '$NGo$ away', 4], ['*', '$Y', 5]]);
  const orig = config.tables.get('ORIG_SEND_ACCESS')!;
  // The continued entry is reported at its first line; `$\` at the end of a line is a template's lower-case switch.
  assert.deepEqual(orig.entries.map((e) => [e.pattern, e.template, e.line]), [['tcp_local|*|tcp_local|*', '$N$D30|Relaying$ not$ allowed', 10], ['*|*|*|x@*', '$0$\\', 12]]);
  const from = config.tables.get('FROM_ACCESS')!;
  assert.deepEqual([relative(inst.root, from.file), from.line, from.entries[0]!.line], ['etc/more.mappings', 1, 2]);
  assert.equal(config.tables.get('AUX_TABLE')!.name, 'aux_table');
});

test('every structural problem is an error at its line', () => {
  const { config, report } = parse({
    'etc/mappings': lines(
      '  orphan  $Y',
      '*bad name',
      'SEND_ACCESS extra',
      'SEND_ACCESS',
      '  onlypattern',
      '  *|*|*|*  $NMail blocked',
      '  *|*|*|*  $Y',
      'send_access',
      '<missing.mappings',
      '<',
    ),
  });
  assert.deepEqual(report, [
    'etc/mappings:9: error: cannot read included file ' + join(instances.at(-1)!.root, 'etc/missing.mappings') + ': ENOENT',
    'etc/mappings:10: error: include line names no file',
    'etc/mappings:1: error: entry outside a table (write the table name at column 1 above it)',
    'etc/mappings:2: error: "*bad name" at column 1 is no table name (a name starts with a letter and is alone on its line; indent entries)',
    'etc/mappings:3: error: "SEND_ACCESS extra" at column 1 is no table name (a name starts with a letter and is alone on its line; indent entries)',
    'etc/mappings:5: error: entry "onlypattern" has a pattern but no template',
    'etc/mappings:6: error: entry has text after its template: "blocked" (write a space inside a pattern or template as "$ ")',
    `etc/mappings:8: error: table send_access is already defined at ${join(instances.at(-1)!.root, 'etc/mappings')}:4`,
  ]);
  assert.deepEqual(config.tables.get('SEND_ACCESS')!.entries.map((e) => e.line), [7]);
});

test('patterns, templates and access flags are checked at load, with file:line', () => {
  const { report } = parse({
    'etc/mappings': lines(
      'PORT_ACCESS',
      '  TCP|*|*|$(10.0.0.0/33)|*   $N',
      '  TCP|*|*|*|*                $D100',
      '  *                          $Y$:T',
      'SEND_ACCESS',
      '  *|*|*|*      ${db}',
      '  *|*|*|*      $4',
      '  *            $Q',
      '  *            $J$0|$Y',
      '  *            $|NOWHERE;$0|$Y',
      '  *|$1*        $Y',
      'EMPTY',
    ),
  });
  assert.deepEqual(report, [
    'etc/mappings:2: error: pattern TCP|*|*|$(10.0.0.0/33)|*: bad bit count "33" in $(10.0.0.0/33… (0 to 32)',
    'etc/mappings:3: error: $D is not a PORT_ACCESS flag (PORT_ACCESS knows $Y $N $F $T $< $>)',
    'etc/mappings:4: warning: $:T tests a flag PORT_ACCESS probes never have (none)',
    'etc/mappings:6: error: template ${db}: ${…} (general database lookups) is not supported by tsubame',
    'etc/mappings:7: error: template uses $4, but the pattern saves only $0…$3',
    'etc/mappings:8: error: $Q is not a SEND_ACCESS flag (SEND_ACCESS knows $Y $N $F $B $H $D $T $X $< $> and more)',
    'etc/mappings:9: warning: $J (replacing the envelope From) is not applied by tsubame (ignored)',
    'etc/mappings:11: error: pattern *|$1*: back match $1* refers to wildcard 1, but only 1 wildcard comes before it',
    'etc/mappings:12: warning: table EMPTY has no entries',
    'etc/mappings:10: warning: $|NOWHERE;…| names a table the file does not define (the substitution always fails)',
  ]);
});

test('include depth is limited; a file including itself is an error, not a hang', () => {
  const { report } = parse({ 'etc/mappings': lines('<mappings') });
  assert.ok(report.some((l) => /error: includes nest deeper than 3 levels/.test(l)), report.join('\n'));
});
