// `stop-msg` (not built yet).
import { runCommand } from './run-command.js';
import { CommandError } from './errors.js';

await runCommand('stop-msg', 'stop-msg [dispatcher|job_controller] [--root DIR]', async () => {
  throw new CommandError('not available in this build yet');
}, process.argv.slice(2));
