// The process entry of the `orchestrator` command (bin/orchestrator.js loads the built copy).
import { run } from './main.js';

process.exitCode = await run(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
  write: (text) => process.stdout.write(text),
  tty: Boolean(process.stdout.isTTY),
});
