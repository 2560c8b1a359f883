// `imsimta flush` (not built yet).
import { CommandError } from '../errors.js';

export async function main(_argv: string[]): Promise<number> {
  throw new CommandError('"flush" is not available in this build yet');
}
