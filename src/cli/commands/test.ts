// `imsimta test` (not built yet).
import { CommandError } from '../errors.js';

export async function main(_argv: string[]): Promise<number> {
  throw new CommandError('"test" is not available in this build yet');
}
