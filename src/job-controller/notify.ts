// Tells the job controller about new queue files. Best effort: when the job controller is
// down the files are found by its start-up scan, so a failure here loses nothing.
import { requestJson } from '../common/ipc-socket.js';
import type { QueueRef } from '../queue/types.js';

export async function notifyEnqueued(socketPath: string, refs: QueueRef[]): Promise<boolean> {
  if (refs.length === 0) return true;
  try {
    const reply = await requestJson(socketPath, { op: 'enqueued', refs }, 5000);
    return reply !== null;
  } catch {
    return false;
  }
}
