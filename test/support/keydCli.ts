/**
 * A minimal `keyward` program with only the keyd commands, for tests that run them in a
 * child process (keyd itself, `keys ...`, `audit verify`).
 */
import { Command } from 'commander';
import { registerKeydCommands } from '../../src/cli/keydCommands.js';

const program = new Command('keyward');
program.exitOverride((err) => {
  process.exitCode = err.exitCode;
  throw err;
});
registerKeydCommands(program);
try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (!(e as { code?: string }).code?.startsWith('commander.')) throw e;
}
