// dependency-cruiser: the layering of docs/ARCHITECTURE.md ("Layers") as rules, checked by
// `npm run lint` (so by `npm test`). Keep LAYERS and that table the same.
/** @type {string[][]} Folders of src/, lowest layer first; a folder imports only its own and lower layers. */
const LAYERS = [
  ['common'],
  ['mappings'],
  ['config'],
  ['rewrite', 'dns', 'dkim', 'srs', 'proxy-protocol', 'shaping'],
  ['directory', 'policy', 'queue', 'delivery/tls', 'farm'],
  ['delivery', 'milter', 'report'],
  ['notices'],
  ['channels'],
  ['job-controller', 'dispatcher'],
  ['smtp-server', 'metrics'],
  ['watcher'],
  ['cli'],
];

/** src/queue's modules that know the on-disk layout and format of queue files (queue-layout-private). */
const QUEUE_LAYOUT = ['file-name', 'envelope-format', 'queue-file-reader', 'transaction', 'group-commit', 'removal-sync', 'spare-files'];

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
// A folder's own modules; src/delivery's do not include those of its sub-folder src/delivery/tls.
const inFolder = (folder) => {
  const nested = LAYERS.flat().filter((f) => f.startsWith(`${folder}/`));
  return nested.length
    ? { path: `^src/${escape(folder)}/`, pathNot: nested.map((f) => `^src/${escape(f)}/`) }
    : { path: `^src/${escape(folder)}/` };
};
const anyOf = (folders) => `^src/(${folders.map(escape).join('|')})/`;

const layerRules = LAYERS.flatMap((layer, index) =>
  layer.map((folder) => {
    const above = LAYERS.slice(index + 1).flat();
    const beside = layer.filter((f) => f !== folder && !f.startsWith(`${folder}/`));
    const forbidden = [...above, ...beside];
    // pathNot: src/delivery/tls's own modules match the pattern of its parent src/delivery.
    const to = { path: anyOf(forbidden), pathNot: `^src/${escape(folder)}/` };
    return forbidden.length === 0
      ? null
      : {
          name: `layer-${folder.replace('/', '-')}`,
          comment: `src/${folder} (layer ${index + 1}) imports only its own folder and lower layers, never ${forbidden.join(', ')}`,
          severity: 'error',
          from: inFolder(folder),
          to,
        };
  }).filter(Boolean),
);

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'no-circular',
      comment:
        'Modules never import each other in a cycle (docs/ARCHITECTURE.md, "Layers"). A cycle made only of ' +
        'type imports is allowed: they vanish at compile time (no load-order hazard), and they let the checks ' +
        'of one SMTP stage name the command of another (the SPF check takes MAIL and RCPT). The layer rules ' +
        'above still hold for type imports.',
      severity: 'error',
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'queue-layout-private',
      comment:
        'Queue files are read, written, retired and removed only through src/queue (docs/ARCHITECTURE.md): ' +
        'the modules that know their names and directories, their header and how they are read and ' +
        'written are imported by src/queue alone; the rest of src/ asks src/queue (index.ts) instead. ' +
        'Tests may still import them. A readdir or fs call on queue/ by hand is beyond what an import ' +
        'rule sees.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/queue/' },
      to: { path: `^src/queue/(${QUEUE_LAYOUT.join('|')})\\.ts$` },
    },
    {
      name: 'src-not-to-tests',
      comment: 'The product never imports tests, test helpers or benchmarks; they may import anything of src/.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'src-outside-layers',
      comment: 'Every folder of src/ has its place in LAYERS above (and in the table of docs/ARCHITECTURE.md).',
      severity: 'error',
      from: { path: '^src/', pathNot: anyOf(LAYERS.flat()) },
      to: {},
    },
    {
      name: 'not-to-unresolvable',
      comment: 'An import that resolves to no file fails at run time.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'not-to-dev-dep',
      comment: 'The product runs with the dependencies only; development dependencies are for tests and tools.',
      severity: 'error',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count like any other (docs/ARCHITECTURE.md).
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
