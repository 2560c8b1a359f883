// Session ids for the logs and transcripts (the Received: line carries the queue id).
// smtp-server makes each one from 10 random bytes (a crypto call and a BigInt per connection);
// here a random prefix drawn once per process and a counter give the same 16 base-32
// characters, unique across processes and restarts.
import { randomBytes } from 'node:crypto';

export function sessionIdGenerator(): () => string {
  const prefix = BigInt('0x' + randomBytes(5).toString('hex')).toString(32).padStart(8, '0');
  let counter = 0;
  return () => prefix + (counter = (counter + 1) % 2 ** 40).toString(32).padStart(8, '0');
}
