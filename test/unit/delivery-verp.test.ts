// VERP addresses (src/delivery/verp.ts): Postfix's owner+member=domain@list form, round trips for
// members whose local parts hold the delimiters, quotes, "@" or UTF-8, other delimiters, what
// cannot be encoded; VERP_DELIMITERS in option.dat and the verp channel keyword.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { decodeVerp, verpSender, transactionSender, verpDelimitersOf } from '../../src/delivery/verp.js';
import { verpDelimitersProblem, DEFAULT_VERP_DELIMITERS } from '../../src/config/verp-options.js';
import { parseAddress } from '../../src/common/address.js';
import { parseOptionDat } from '../../src/config/option-dat.js';
import { loadInstanceConfig } from '../../src/config/load.js';
import type { Diagnostic } from '../../src/config/types.js';
import { makeInstance, type TestInstance } from '../helpers/instance.js';

const instances: TestInstance[] = [];
after(() => instances.forEach((i) => i.remove()));

test('Postfix\'s form: owner+member=domain@list, and back', () => {
  assert.equal(DEFAULT_VERP_DELIMITERS, '+=');
  assert.equal(verpSender('news@list.example', 'bob@example.com'), 'news+bob=example.com@list.example');
  assert.deepEqual(decodeVerp('news+bob=example.com@list.example'), { owner: 'news@list.example', member: 'bob@example.com' });
  assert.deepEqual(decodeVerp('<news+Bob.Smith=Mail.Example.COM@List.Example>'), { owner: 'news@List.Example', member: 'Bob.Smith@Mail.Example.COM' }, 'case kept');
  assert.equal(verpSender('owner-news@list.example', 'a@[192.0.2.7]'), '"owner-news+a=[192.0.2.7]"@list.example', 'a domain literal makes a quoted local part');
  assert.deepEqual(decodeVerp('"owner-news+a=[192.0.2.7]"@list.example'), { owner: 'owner-news@list.example', member: 'a@[192.0.2.7]' });
});

test('round trips: members whose local parts hold "+", "=", quotes, "@", spaces, backslashes or UTF-8', () => {
  const members = [
    'plain@example.com',
    'bob+tag@example.com',
    'a=b@example.com',
    'x+y=z+w@sub.example.co.uk',
    '"john doe"@example.com',
    '"a@b"@example.com',
    '"quote\\"d"@example.com',
    '"back\\\\slash"@example.com',
    '+=@example.com',
    'user.name-with_chars!#$%&\'*/?^`{|}~@example.org',
    'ユーザー@例え.jp',
    'u@[IPv6:2001:db8::1]',
  ];
  for (const owner of ['news@list.example', '"list owner"@lists.example', 'l=x@list.example']) {
    for (const member of members) {
      const sender = verpSender(owner, member);
      assert.ok(sender, `${owner} → ${member}`);
      assert.ok(parseAddress(sender), `${sender} is an address`);
      const back = decodeVerp(sender);
      assert.ok(back, `${sender} decodes`);
      assert.equal(back.member, member, sender);
      assert.equal(back.owner, owner, sender);
    }
  }
  // A quoted spelling of a dot-atom comes back in its one written form (the same mailbox).
  assert.equal(decodeVerp(verpSender('news@list.example', '"+="@example.com')!)!.member, '+=@example.com');
});

test('other delimiters (VERP_DELIMITERS): -= ; and what cannot be encoded or decoded', () => {
  assert.equal(verpSender('news@list.example', 'bob@example.com', '-='), 'news-bob=example.com@list.example');
  assert.deepEqual(decodeVerp('news-bob-x=my-domain.example@list.example', '-='), { owner: 'news@list.example', member: 'bob-x@my-domain.example' });
  assert.equal(verpSender('owner-news@list.example', 'bob@example.com', '-='), null, 'the owner holds the first delimiter: it would not decode');
  assert.equal(verpSender('', 'bob@example.com'), null, 'a notice (null sender) is never VERPed');
  assert.equal(verpSender('postmaster', 'bob@example.com'), null);
  assert.equal(verpSender('news+x@list.example', 'bob@example.com'), null);
  assert.equal(verpSender('news@list.example', 'bob'), null);
  for (const plain of ['news@list.example', 'news+tag@list.example', '+bob=example.com@list.example', 'news+bob=@list.example', 'news+=example.com@list.example', 'news+bob=not_a domain@list.example', 'garbage']) {
    assert.equal(decodeVerp(plain), null, plain);
  }
  assert.equal(verpDelimitersProblem('+='), null);
  assert.equal(verpDelimitersProblem('-='), null);
  assert.equal(verpDelimitersProblem('=='), null);
  assert.match(verpDelimitersProblem('+')!, /two characters/);
  assert.match(verpDelimitersProblem('+#')!, /"#" is not one of - = \+/);
  assert.match(verpDelimitersProblem('+-')!, /cannot be "-"/);
});

test('option.dat VERP_DELIMITERS: default +=, checked with file:line', () => {
  const inst = makeInstance({ files: { 'etc/option.dat': 'VERP_DELIMITERS=-=\n', 'etc/bad.dat': 'LOCAL_HOST=mta.example.com\nVERP_DELIMITERS=+#\n' } });
  instances.push(inst);
  const d: Diagnostic[] = [];
  assert.equal(parseOptionDat(join(inst.root, 'etc/option.dat'), d).verpDelimiters, '-=');
  assert.equal(parseOptionDat(null, d).verpDelimiters, '+=');
  assert.deepEqual(d, []);
  const errors: Diagnostic[] = [];
  const bad = parseOptionDat(join(inst.root, 'etc/bad.dat'), errors);
  assert.equal(bad.verpDelimiters, '+=');
  assert.deepEqual(errors.map((x) => `${x.line}: ${x.severity}: ${x.message}`), ['2: error: VERP_DELIMITERS: "#" is not one of - = +']);
});

test('the verp channel keyword (noverp the default); a warning on a channel that does not deliver over SMTP', () => {
  const inst = makeInstance({
    files: {
      'etc/imta.cnf': '.  $U%$H@tcp-daemon\n\ntcp_local smtp mx\ntcp-daemon\n\ntcp_lists smtp mx verp\ntcp_lists-daemon\n\ntcp_off smtp verp noverp\ntcp_off-daemon\n\nbounces verp\nbounces-daemon\n',
    },
  });
  instances.push(inst);
  const { config, diagnostics } = loadInstanceConfig(inst.root);
  assert.ok(config, diagnostics.map((x) => x.message).join('\n'));
  assert.deepEqual(config.imta.channels.map((c) => [c.name, c.verp]), [['tcp_local', false], ['tcp_lists', true], ['tcp_off', false], ['bounces', true]]);
  assert.deepEqual(diagnostics.filter((x) => /verp/.test(x.message)).map((x) => `${x.line}: ${x.severity}: ${x.message}`), ['12: warning: channel bounces has the verp keyword but does not deliver over SMTP: it has no effect there']);
});

test('transactionSender: what the engine sends as MAIL FROM on a channel with and without verp and envelopesender', () => {
  // The engine's own composition: the delimiters of the channel's `verp` or the message's XVERP, then the sender.
  const send = (channel: { verp?: boolean; senderRewrite: string | null }, from: string, rcpt: string, delimiters?: string, xverp?: string) =>
    transactionSender(channel, from, rcpt, verpDelimitersOf(channel, xverp === undefined ? {} : { verp: xverp }, delimiters));
  const plain = { verp: false, senderRewrite: null };
  const verp = { verp: true, senderRewrite: null };
  assert.equal(send(plain, 'news@list.example', 'bob@example.com'), 'news@list.example');
  assert.equal(send(verp, 'news@list.example', 'bob@example.com'), 'news+bob=example.com@list.example');
  assert.equal(send(verp, 'news@list.example', 'bob@example.com', '-='), 'news-bob=example.com@list.example');
  assert.equal(send({ verp: true, senderRewrite: 'owner@bounces.example' }, 'news@list.example', 'bob@example.com'), 'owner+bob=example.com@bounces.example');
  assert.equal(send(verp, '', 'bob@example.com'), '', 'a notice keeps its null sender');
  assert.equal(send(verp, 'a+b@list.example', 'bob@example.com'), 'a+b@list.example', 'not encodable: kept');
  assert.equal(send({ senderRewrite: null }, 'news@list.example', 'bob@example.com'), 'news@list.example', 'verp absent: off');
  // XVERP: the message's request, with its own delimiters, on a channel with or without `verp`.
  assert.equal(send(plain, 'news@list.example', 'bob@example.com', '+=', '+='), 'news+bob=example.com@list.example');
  assert.equal(send(plain, 'news@list.example', 'bob@example.com', '+=', '-='), 'news-bob=example.com@list.example');
  assert.equal(send(verp, 'news@list.example', 'bob@example.com', '+=', '=+'), 'news=bob+example.com@list.example', "the message's delimiters win");
});
