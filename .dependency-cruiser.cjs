/**
 * The project's layers, enforced in CI (`npm run deps`):
 * - src/kernel/ imports nothing else of the project;
 * - remediations/ imports only remediations/ and src/kernel/;
 * - src/ reaches remediations/ only through the catalogue and its types.
 */
module.exports = {
  forbidden: [
    {
      name: 'kernel-is-a-leaf',
      comment: 'src/kernel/ holds dependency-free helpers: it imports nothing else of the project.',
      severity: 'error',
      from: { path: '^src/kernel/' },
      to: { path: '^(src|remediations)/', pathNot: '^src/kernel/' },
    },
    {
      name: 'remediations-stay-outside-the-engine',
      comment: 'A remediation imports only remediations/ and src/kernel/: the engine reaches it, never the other way.',
      severity: 'error',
      from: { path: '^remediations/' },
      to: { path: '^src/', pathNot: '^src/kernel/' },
    },
    {
      name: 'engine-uses-the-catalogue',
      comment: 'src/ reaches remediations/ only through remediations/catalogue.ts and remediations/types.ts.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^remediations/', pathNot: '^remediations/(catalogue|types)\\.ts$' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
