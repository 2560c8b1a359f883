// How `imsimta test -mapping` shows a probe's result: a Messaging-Server-like text block (input
// string, each entry that matched with file:line, output string and flags, and for the access
// tables the decision), or one JSON object. Pure formatting; the command does the I/O.
import { accessStage, type AccessDecision } from './access.js';
import type { MappingResult, MappingStep } from './engine.js';

export interface MappingReport {
  result: MappingResult;
  /** The decision, when the table is one of the access tables. */
  access: AccessDecision | null;
}

const CONTROL_WORDS = { E: 'end', C: 'continue', L: 'continue, then one more pass', R: 'start over' } as const;

function stepLine(step: MappingStep): string[] {
  const where = `${step.entry.file}:${step.entry.line}`;
  const outcome = step.failedSubstitution
    ? `substitution failed (${step.failedSubstitution}): output is the input`
    : `output "${step.output}"`;
  const flags = step.flags.length ? `, flags [${step.flags.join('')}]` : '';
  return [`    entry ${where}  ${step.entry.pattern}  ${step.entry.template}`, `        ${outcome}${flags}; ${CONTROL_WORDS[step.control]}`];
}

export function formatMappingText(report: MappingReport): string {
  const { result, access } = report;
  const lines = [`input string = ${result.input}`];
  for (const step of result.steps) lines.push(...stepLine(step));
  if (!result.matched) lines.push('    no entry matched');
  if (result.error) lines.push(`    error = ${result.error}`);
  lines.push(`output string = ${!result.matched ? '(no match)' : result.output === '' ? '(empty)' : result.output}`);
  lines.push(`output flags = [${result.flags.join('')}]`);
  if (access) {
    const stage = accessStage(access.table);
    lines.push(access.verdict === 'refuse' ? `access = refuse at ${stage}: ${access.reply}` : `access = accept at ${stage}${access.matched ? '' : ' (no entry matched)'}`);
    if (access.delaySeconds !== null) lines.push(`    delay = ${access.delaySeconds} s ${access.delayEveryCommand ? 'before every later command' : 'before this answer'}`);
    if (access.hold) lines.push('    hold = the message is held');
    if (access.discard) lines.push('    discard = the message goes to the bitbucket');
    if (access.tag !== null) lines.push(`    tag = ${access.tag}`);
    if (access.log.onMatch !== null) lines.push(`    log on match = ${access.log.onMatch}`);
    if (access.log.onRefusal !== null) lines.push(`    log on refusal = ${access.log.onRefusal}`);
    if (access.log.connection !== null) lines.push(`    connection log = ${access.log.connection}`);
    for (const p of access.problems) lines.push(`    problem = ${p}`);
  }
  return lines.join('\n') + '\n';
}

/** The `--json` object: one per probe, on one line. */
export function mappingJson(report: MappingReport): Record<string, unknown> {
  const { result, access } = report;
  const last = result.steps.at(-1);
  return {
    table: result.table,
    input: result.input,
    matched: result.matched,
    output: result.matched ? result.output : null,
    flags: result.flags,
    entry: last ? { file: last.entry.file, line: last.entry.line, pattern: last.entry.pattern, template: last.entry.template } : null,
    steps: result.steps.map((s) => ({
      file: s.entry.file,
      line: s.entry.line,
      pattern: s.entry.pattern,
      template: s.entry.template,
      input: s.input,
      output: s.output,
      flags: s.flags,
      control: s.control,
      failed_substitution: s.failedSubstitution,
    })),
    error: result.error,
    access: access
      ? {
          verdict: access.verdict,
          stage: accessStage(access.table),
          reply: access.reply,
          smtp_code: access.smtpCode,
          enhanced_code: access.enhancedCode,
          text: access.text,
          temporary: access.temporary,
          delay_seconds: access.delaySeconds,
          delay_every_command: access.delayEveryCommand,
          hold: access.hold,
          discard: access.discard,
          tag: access.tag,
          log: { on_match: access.log.onMatch, on_refusal: access.log.onRefusal, connection: access.log.connection },
          problems: access.problems,
        }
      : null,
  };
}
