#!/usr/bin/env node
// The command-line entry. `npm ci` builds dist/ (the `prepare` script).
import('../dist/cli/entry.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
    console.error('orchestrator: dist/ is missing; run `npm run build` first.');
    process.exit(1);
  }
  throw err;
});
