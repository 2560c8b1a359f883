// Maildir files are written with LF line ends (as Postfix's local and Dovecot write them): the
// CRLF → LF conversion across the chunks of a stream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CrlfToLf } from '../../src/delivery/maildir.js';

test('Maildir files with LF line ends: CRLF becomes LF wherever the chunks are split; lone CR and LF stay', () => {
  const input = Buffer.from('Subject: x\r\n\r\nline\r\nbare\rcr\nbare lf\r\r\n\r\nend\r');
  const expected = Buffer.from('Subject: x\n\nline\nbare\rcr\nbare lf\r\n\nend\r');
  for (let cut = 0; cut <= input.length; cut++) {
    for (let cut2 = cut; cut2 <= input.length; cut2 += 3) {
      const lf = new CrlfToLf();
      const out = Buffer.concat([lf.push(input.subarray(0, cut)), lf.push(input.subarray(cut, cut2)), lf.push(input.subarray(cut2)), lf.end()]);
      assert.deepEqual(out, expected, `split at ${cut}/${cut2}`);
    }
  }
});
