// The accept backlog of a listening socket, read from /proc/net/tcp (shared accept: connections wait
// there while every server process is at MAX_CONNS): the text parsed. A real socket's backlog is
// read in test/integration/dispatcher-shared-handle.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { listenBacklogs } from '../../src/dispatcher/listen-queue.js';

const SAMPLE = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0019 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 41234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0019 0100007F:D2F0 01 00000000:00000010 00:00000000 00000000     0        0 41240 1 0000000000000000 20 4 30 10 -1
   2: 0B00007F:0A1A 00000000:0000 0A 00000000:0000001F 00:00000000 00000000  1000        0 777 1 0000000000000000 100 0 0 10 0
`;

test('the backlog of every listening socket by inode; established sockets are not listening ones', () => {
  assert.deepEqual([...listenBacklogs(SAMPLE)], [
    ['41234', 3],
    ['777', 31],
  ]);
  assert.deepEqual([...listenBacklogs('')], []);
});
