// `imsimta passwd USER [--addresses A,B] [--admin|--no-admin]`: sets a user's password in
// etc/users (creating the user, or the file, when needed), reading the password twice without
// echo from a terminal, or once from standard input when that is not a terminal. Prints neither
// the password nor any hash. Exit 1 when the file, with this change, is still not usable (its
// other problems are shown with file:line): the running instance keeps its last good users then.
import { ReadStream } from 'node:tty';
import { parseArgs } from '../args.js';
import { CommandError, UsageError } from '../errors.js';
import { HiddenPrompt, readPasswordLine } from '../password-input.js';
import { instancePaths, resolveRoot } from '../../common/instance.js';
import { formatDiagnostic, type Diagnostic } from '../../config/types.js';
import { isValidUserName, listedAddressProblem, parseUsers, splitList } from '../../config/users.js';
import { UsersFileError, updateUsersFile } from '../../config/users-file.js';
import { hashPassword, passwordProblem } from '../../directory/password-hash.js';
import { serviceGroup } from '../service-group.js';



export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['addresses'], ['admin', 'no-admin']);
  if (args.positionals.length !== 1) throw new UsageError(args.positionals.length === 0 ? 'passwd needs a user name' : 'passwd takes one user name');
  const name = args.positionals[0]!;
  if (!isValidUserName(name)) throw new UsageError(`"${name.slice(0, 80)}" is not a valid user name: letters, digits, ".", "_" and "-", starting with a letter or digit, at most 64`);
  if (args.flags.has('admin') && args.flags.has('no-admin')) throw new UsageError('--admin and --no-admin contradict each other');
  const addressesText = args.values.get('addresses');
  const addresses = addressesText === undefined ? undefined : splitList(addressesText);
  const badAddress = addresses?.map(listedAddressProblem).find((p) => p !== null);
  if (badAddress) throw new UsageError(`--addresses: ${badAddress}`);
  const admin = args.flags.has('admin') ? true : args.flags.has('no-admin') ? false : undefined;

  const root = resolveRoot(args.values.get('root'));
  const file = instancePaths(root).users;
  const password = await readPassword();
  const problem = passwordProblem(password);
  if (problem) throw new CommandError(`${problem}: nothing changed`);
  const hash = await hashPassword(password);

  let update;
  try {
    update = await updateUsersFile(file, name, { hash, addresses, admin }, serviceGroup(root));
  } catch (err) {
    if (err instanceof UsersFileError) throw new CommandError(err.message);
    throw err;
  }
  process.stdout.write(`user ${name.toLowerCase()} ${update.action} in ${file} (line ${update.line})\n`);

  // The whole file as the instance will read it: other lines' problems stop it from applying.
  const diagnostics: Diagnostic[] = [];
  parseUsers(file, diagnostics);
  for (const d of diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
  if (diagnostics.some((d) => d.severity === 'error')) {
    process.stderr.write(`imsimta passwd: ${file} has errors: a running instance keeps its last good users until they are fixed\n`);
    return 1;
  }
  return 0;
}

/** As root: the group of the service user the instance runs as (option.dat SERVER_USER), if it is not root. */
async function readPassword(): Promise<string> {
  if (!(process.stdin instanceof ReadStream) || !process.stdin.isTTY) return readPasswordLine(process.stdin);
  const prompt = new HiddenPrompt(process.stdin, process.stderr);
  try {
    const first = await prompt.ask('New password: ');
    const second = await prompt.ask('Retype new password: ');
    if (first !== second) throw new CommandError('the passwords do not match: nothing changed');
    return first;
  } finally {
    prompt.close();
  }
}
