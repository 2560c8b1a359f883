// Random edits of a whole etc/ (the configuration fuzz and the live reload fuzz share them):
// 1–3 edits (helpers.ts mutateText) of one file, sometimes two, weighted towards imta.cnf, with
// option names and channel keywords the loader knows as the words to insert.
import { OPTION_KEYS } from '../../src/config/option-dat.js';
import { DISPATCHER_DEFAULTS } from '../../src/config/dispatcher-cnf.js';
import { JOB_CONTROLLER_DEFAULTS } from '../../src/config/job-controller-cnf.js';
import { CHANNEL_KEYWORDS } from '../../src/config/imta-keywords.js';
import { mutateText, type MutationVocabulary, type Prng } from './helpers.js';

export const CONFIG_FILES = ['imta.cnf', 'option.dat', 'dispatcher.cnf', 'job_controller.cnf', 'aliases'] as const;
export type ConfigFile = (typeof CONFIG_FILES)[number];
export type ConfigTexts = Record<ConfigFile, string>;

/** imta.cnf has the richest grammar: it gets more of the edits. */
const FILE_WEIGHTS: readonly ConfigFile[] = ['imta.cnf', 'imta.cnf', 'imta.cnf', 'option.dat', 'option.dat', 'dispatcher.cnf', 'dispatcher.cnf', 'job_controller.cnf', 'job_controller.cnf', 'aliases'];

export const VOCABULARY: MutationVocabulary = {
  keys: [...OPTION_KEYS, ...Object.keys(DISPATCHER_DEFAULTS), ...Object.keys(JOB_CONTROLLER_DEFAULTS), 'PORT', 'INTERFACE_ADDRESS', 'PARAMETER', 'CHANNEL', 'JOB_LIMIT', 'BOGUS_KEY'],
  keywords: [...CHANNEL_KEYWORDS.keys(), 'unknownkeyword'],
};

export interface ConfigMutation {
  /** The new text of each edited file. */
  texts: Partial<ConfigTexts>;
  files: ConfigFile[];
  /** What was done, for failure messages (`imta.cnf: delete line 12`). */
  what: string[];
}

/** 1–3 random edits of one or two files of `base`. */
export function mutateConfig(base: Readonly<ConfigTexts>, rng: Prng, vocabulary: MutationVocabulary = VOCABULARY): ConfigMutation {
  const what: string[] = [];
  const texts: Partial<ConfigTexts> = {};
  const files = new Set([rng.pick(FILE_WEIGHTS)]);
  if (rng.chance(0.15)) files.add(rng.pick(FILE_WEIGHTS));
  for (const f of files) {
    let text = base[f];
    const edits = 1 + rng.int(3);
    for (let i = 0; i < edits; i++) {
      const m = mutateText(text, rng, vocabulary);
      text = m.text;
      what.push(`${f}: ${m.what}`);
    }
    texts[f] = text;
  }
  return { texts, files: [...files], what };
}
