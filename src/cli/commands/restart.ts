// `imsimta restart` (not built yet).
import { CommandError } from '../errors.js';

export async function main(_argv: string[]): Promise<number> {
  throw new CommandError('"restart" is not available in this build yet');
}
