// A mail.log of a known mix, written as the MTA writes it (formatMailLogRecord), with what a
// report of it must count worked out as it is written: messages delivered at once or after a
// deferral, returned, deferred only, rejections by the SMTP server's own rules and by a rule
// that names itself (an access table; and the policy refusals as the SMTP server writes them: a
// DNS blocklist at connect, SPF at MAIL, DMARC and a milter at the end of DATA), operator deletions (X), a letter no build knows yet (Z), trailing tokens
// (tls=, and one no build knows), and a few lines that are not records at all. Used by the report
// tests (every count exact) and bench/report.ts (a million lines).
import { createWriteStream } from 'node:fs';
import { formatMailLogRecord, type MailLogRecord } from '../../src/common/mail-log.js';

export interface MixOptions {
  messages: number;
  /** Time of the first message (ms). */
  startMs: number;
  /** Between two messages (ms). */
  stepMs: number;
}

export interface ReasonGroup {
  destination: string;
  reason: string;
  recipients: number;
  messages: number;
}

export interface MixExpectation {
  lines: number;
  unparsed: number;
  received: { messages: number; recipients: number; bytes: number };
  delivered: { messages: number; recipients: number; bytes: number };
  deferred: { messages: number; recipients: number };
  returned: { messages: number; recipients: number };
  rejected: number;
  removed: { messages: number; recipients: number };
  other: Record<string, number>;
  hourly: Map<string, { received: number; delivered: number; deferred: number; returned: number; rejected: number }>;
  senders: Map<string, { messages: number; bytes: number }>;
  recipients: Map<string, number>;
  domains: Map<string, { delivered: number; deferred: number; returned: number; maxDelay: number }>;
  deferrals: Map<string, ReasonGroup>;
  bounces: Map<string, ReasonGroup>;
  rules: Map<string, number>;
  /** Per rule, its refusals per reason as the report reduces it (addresses made `<…>`). */
  ruleReasons: Map<string, Map<string, number>>;
  /** Delivered recipients per delay (s). */
  delays: Map<number, number>;
  /** Delivered messages: delay (s) and id, for the slowest list. */
  deliveries: Array<{ id: string; delay: number }>;
}

const DOMAINS = 4;
const SENDERS = 7;
const USERS = 13;

/** A queue id that starts with its time, as the MTA's ids do (src/queue/message-id.ts). */
function mixId(timeMs: number, n: number): string {
  return (timeMs.toString(36).padStart(9, '0') + n.toString(36).padStart(10, '0')).toUpperCase();
}

/** Writes the mix to `path`; resolves with what a report of the whole file counts. */
export async function writeMailLogMix(path: string, opts: MixOptions): Promise<MixExpectation> {
  const x: MixExpectation = {
    lines: 0,
    unparsed: 0,
    received: { messages: 0, recipients: 0, bytes: 0 },
    delivered: { messages: 0, recipients: 0, bytes: 0 },
    deferred: { messages: 0, recipients: 0 },
    returned: { messages: 0, recipients: 0 },
    rejected: 0,
    removed: { messages: 0, recipients: 0 },
    other: {},
    hourly: new Map(),
    senders: new Map(),
    recipients: new Map(),
    domains: new Map(),
    deferrals: new Map(),
    bounces: new Map(),
    rules: new Map(),
    ruleReasons: new Map(),
    delays: new Map(),
    deliveries: [],
  };
  const out = createWriteStream(path);
  let buffer: string[] = [];
  const flush = async () => {
    if (!out.write(buffer.join(''))) await new Promise<void>((r) => out.once('drain', () => r()));
    buffer = [];
  };
  const line = (text: string) => {
    buffer.push(text + '\n');
    x.lines++;
  };
  const record = (r: MailLogRecord) => line(formatMailLogRecord(r));
  const hour = (ms: number) => {
    const key = new Date(ms).toISOString().slice(0, 13);
    let h = x.hourly.get(key);
    if (!h) x.hourly.set(key, (h = { received: 0, delivered: 0, deferred: 0, returned: 0, rejected: 0 }));
    return h;
  };
  const domain = (d: string) => {
    let v = x.domains.get(d);
    if (!v) x.domains.set(d, (v = { delivered: 0, deferred: 0, returned: 0, maxDelay: 0 }));
    return v;
  };
  const group = (table: Map<string, ReasonGroup>, destination: string, reason: string, first: boolean) => {
    const key = `${destination}\n${reason}`;
    let g = table.get(key);
    if (!g) table.set(key, (g = { destination, reason, recipients: 0, messages: 0 }));
    g.recipients++;
    if (first) g.messages++;
  };
  const rule = (name: string, reason: string) => {
    x.rules.set(name, (x.rules.get(name) ?? 0) + 1);
    let reasons = x.ruleReasons.get(name);
    if (!reasons) x.ruleReasons.set(name, (reasons = new Map()));
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
  };

  for (let i = 0; i < opts.messages; i++) {
    const t = opts.startMs + i * opts.stepMs;
    const id = mixId(t, i);
    const from = i % 11 === 10 ? '' : `sender${i % SENDERS}@senders${i % 3}.test`;
    const size = 1000 + (i % 7) * 100;
    const rcpts = Array.from({ length: 1 + (i % 3) }, (_, j) => ({ address: `user${(i * 7 + j) % USERS}@dest${(i + j) % DOMAINS}.test`, d: (i + j) % DOMAINS }));
    const base = { id, source: 'tcp_local', destination: 'tcp_local', size, from };

    for (const r of rcpts) record({ ...base, event: 'E', recipient: r.address, status: i % 5 === 0 ? 'queued (TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)' : 'queued', time: new Date(t) });
    // A message for two channels: its second file's id is the first's and two characters more.
    const local = i % 20 === 6 ? { id: `${id}01`, address: `local${i % 3}@localhost` } : null;
    if (local) record({ ...base, id: local.id, destination: 'l', event: 'E', recipient: local.address, status: 'queued', time: new Date(t) });
    x.received.messages++;
    x.received.recipients += rcpts.length + (local ? 1 : 0);
    x.received.bytes += size;
    hour(t).received++;
    const sender = from === '' ? '<>' : from;
    const s = x.senders.get(sender) ?? { messages: 0, bytes: 0 };
    s.messages++;
    s.bytes += size;
    x.senders.set(sender, s);

    const deliver = (at: number) => {
      const delay = (at - t) / 1000;
      rcpts.forEach((r, j) => {
        const host = `mx.dest${r.d}.test`;
        const tls = j % 2 === 0 ? 'TLSv1.3/TLS_AES_256_GCM_SHA384/Verified' : undefined;
        // One line carries a token no build knows: it must not end up in a reason or a count.
        const status = `250 2.0.0 Ok: queued as ${i} (${host}[192.0.2.${r.d + 1}])`;
        const text = formatMailLogRecord({ ...base, event: 'D', recipient: r.address, status, ...(tls ? { tls } : {}), time: new Date(at) });
        line(i % 13 === 0 && j === 0 ? `${text} future_key=42` : text);
        x.recipients.set(r.address, (x.recipients.get(r.address) ?? 0) + 1);
        const dom = domain(`dest${r.d}.test`);
        dom.delivered++;
        dom.maxDelay = Math.max(dom.maxDelay, delay);
        x.delays.set(delay, (x.delays.get(delay) ?? 0) + 1);
      });
      x.delivered.messages++;
      x.delivered.recipients += rcpts.length;
      x.delivered.bytes += size;
      hour(at).delivered++;
      x.deliveries.push({ id, delay });
    };

    switch (i % 10) {
      case 7: {
        const at = t + 20_000;
        rcpts.forEach((r, j) => {
          const host = `mx.dest${r.d}.test`;
          record({ ...base, event: 'Q', recipient: r.address, status: `421 4.7.0 rate limited, try later (in reply to RCPT TO) (${host}[192.0.2.${r.d + 1}])`, time: new Date(at) });
          group(x.deferrals, host, '421 4.7.0 rate limited, try later (in reply to RCPT TO)', j === 0);
          domain(`dest${r.d}.test`).deferred++;
        });
        x.deferred.messages++;
        x.deferred.recipients += rcpts.length;
        hour(at).deferred++;
        deliver(t + 600_000);
        break;
      }
      case 8: {
        const at = t + 5_000;
        rcpts.forEach((r, j) => {
          const host = `mx.dest${r.d}.test`;
          record({ ...base, event: 'R', recipient: r.address, status: `550 5.1.1 <${r.address}>: Recipient address rejected: User unknown (in reply to RCPT TO) (${host}[192.0.2.${r.d + 1}]:2525)`, time: new Date(at) });
          group(x.bounces, host, '550 5.1.1 <…>: Recipient address rejected: User unknown (in reply to RCPT TO)', j === 0);
          domain(`dest${r.d}.test`).returned++;
        });
        x.returned.messages++;
        x.returned.recipients += rcpts.length;
        hour(at).returned++;
        break;
      }
      case 9: {
        const at = t + 1_000;
        rcpts.forEach((r, j) => {
          record({ ...base, event: 'Q', recipient: r.address, status: '451 4.4.1 connect to 192.0.2.99:25: Connection refused', time: new Date(at) });
          // No host answered: grouped by the recipient's domain.
          group(x.deferrals, `dest${r.d}.test`, '451 4.4.1 connect to 192.0.2.99:25: Connection refused', j === 0);
          domain(`dest${r.d}.test`).deferred++;
        });
        x.deferred.messages++;
        x.deferred.recipients += rcpts.length;
        hour(at).deferred++;
        break;
      }
      default:
        deliver(t + (i % 5) * 30_000);
    }
    if (local) {
      const at = t + 1_000;
      record({ ...base, id: local.id, destination: 'l', event: 'D', recipient: local.address, status: 'delivered to the mailbox', time: new Date(at) });
      x.delivered.messages++;
      x.delivered.recipients++;
      x.delivered.bytes += size;
      hour(at).delivered++;
      x.recipients.set(local.address, (x.recipients.get(local.address) ?? 0) + 1);
      domain('localhost').delivered++;
      domain('localhost').maxDelay = 1;
      x.delays.set(1, (x.delays.get(1) ?? 0) + 1);
      x.deliveries.push({ id: local.id, delay: 1 });
    }

    // Refusals between the messages: one J record each, counted under `name` with `reason` (the
    // status as the report groups it).
    const reject = (r: Pick<MailLogRecord, 'destination' | 'size' | 'from' | 'recipient' | 'status'>, name: string, reason = r.status) => {
      record({ event: 'J', id: '', source: 'tcp_local', ...r, time: new Date(t) });
      x.rejected++;
      hour(t).rejected++;
      rule(name, reason);
    };
    const refuse = (recipient: string, status: string, name: string, reason?: string) => reject({ destination: 'tcp_local', size: 0, from, recipient, status }, name, reason);
    if (i % 4 === 0) refuse(`someone${i % 5}@elsewhere.test`, `550 5.7.1 <someone${i % 5}@elsewhere.test>: Relaying denied`, 'relay', '550 5.7.1 <…>: Relaying denied');
    if (i % 8 === 1) refuse(`spam${i % 3}@dest0.test`, '550 5.7.1 SEND_ACCESS: access denied by the rule', '5.7.1');
    if (i % 16 === 3) refuse(`blocked@dest1.test`, 'ORIG_SEND_ACCESS: 550 5.7.1 your address is blocked', 'ORIG_SEND_ACCESS');
    if (i % 16 === 5) refuse(`nobody${i % 4}@localhost`, '550 5.1.1 <nobody@localhost>: User unknown', 'unknown user', '550 5.1.1 <…>: User unknown');
    // The policy refusals, in the records the SMTP server writes for them (src/smtp-server:
    // session-hooks.ts at connect and MAIL, data-stage.ts at the end of DATA; the texts are those
    // test/integration/smtp-blocklists, smtp-authentication and smtp-milter-* see).
    if (i % 32 === 9) {
      // A listed client, refused at connect: no sender or recipient yet, no destination.
      const ip = `192.0.2.${200 + (i % 3)}`;
      reject({ destination: '', size: 0, from: '', recipient: '', status: `rbl:bl.test: 554 5.7.1 access_control: host ${ip} found on DNS list bl.test: Listed by bl.test, see http://bl.test/lookup?ip=${ip}` }, 'rbl:bl.test');
    }
    if (i % 32 === 13) {
      // SPF -all for the MAIL FROM domain, refused at MAIL: no recipient yet.
      reject({ destination: '', size: 0, from: 'ceo@origin.test', recipient: '', status: 'SPF: 550 5.7.23 SPF fail: origin.test does not allow 192.0.2.66 to send its mail' }, 'SPF');
    }
    if (i % 64 === 17) {
      // A DMARC p=reject forgery, refused at the end of DATA: one record per recipient, with the message's size and each recipient's channel.
      const status = 'DMARC: 550 5.7.1 message refused: origin.test publishes a DMARC policy of reject and the message fails it';
      reject({ destination: 'tcp_local', size: 2345, from: 'bounce@evil.test', recipient: `rcpt${i % 3}@dest2.test`, status }, 'DMARC');
      reject({ destination: 'l', size: 2345, from: 'bounce@evil.test', recipient: 'local0@localhost', status }, 'DMARC');
    }
    if (i % 64 === 21) {
      // The milter named rspamd rejects the message (GTUBE) at the end of DATA.
      reject({ destination: 'tcp_local', size: 1800, from: 'spammer@spam.test', recipient: `user${i % USERS}@dest3.test`, status: 'milter:rspamd: 554 5.7.1 Gtube pattern' }, 'milter:rspamd');
    }
    if (i % 50 === 49) {
      // qm delete of a message still queued: one X line per pending recipient.
      for (const r of rcpts) record({ ...base, event: 'X', recipient: r.address, status: 'deleted by the operator (imsimta qm delete)', time: new Date(t + 1_500) });
      x.removed.messages++;
      x.removed.recipients += rcpts.length;
    }
    if (i % 100 === 99) {
      line(formatMailLogRecord({ ...base, event: 'Z' as MailLogRecord['event'], recipient: rcpts[0]!.address, status: 'an event of a later build', time: new Date(t + 2_000) }));
      x.other.Z = (x.other.Z ?? 0) + 1;
    }
    if (i % 1000 === 500) {
      line('this line is not a mail.log record');
      x.unparsed++;
    }
    if (buffer.length >= 4096) await flush();
  }
  await flush();
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return x;
}
