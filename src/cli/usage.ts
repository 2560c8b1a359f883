// The help texts of the operator's commands (`--help`, `-h`, `imsimta help [SUBCOMMAND]`): the
// usage line, what the command does, its options. Plain data; run-command.ts prints them.

const ROOT = '  --root DIR       the instance (default: IMTA_ROOT, else the package directory)';
const JSON_OPTION = '  --json           machine-readable output, one JSON object per line';
const HELP = '  --help, -h       this text';

function text(lines: string[]): string {
  return `${lines.join('\n')}\n`;
}

export const START_MSG_HELP = text([
  'usage: start-msg [dispatcher|job_controller] [--root DIR] [--foreground]',
  '',
  'Starts the instance (the watcher, which starts the dispatcher and the job controller; or the part',
  'named) and returns once the ports are bound and the job controller is ready. Started as root, every',
  'process runs as the service user (option.dat SERVER_USER, default tsubame).',
  '',
  ROOT,
  '  --foreground     stay attached until SIGTERM or SIGINT (for systemd, containers, npm start)',
  HELP,
]);

export const STOP_MSG_HELP = text([
  'usage: stop-msg [dispatcher|job_controller] [--root DIR]',
  '',
  'Stops gracefully (no new connections, sessions get MAX_SHUTDOWN seconds, jobs finish the',
  'message in hand) and returns when stopped: everything, or the part named.',
  '',
  ROOT,
  HELP,
]);

/** imsimta's subcommands: their help, in the order `imsimta help` lists them. */
export const IMSIMTA_SUBCOMMANDS: Record<string, { summary: string; help: string }> = {
  cnbuild: {
    summary: 'check every configuration file (errors and warnings as file:line)',
    help: text(['usage: imsimta cnbuild [--json] [--root DIR]', '', 'Checks every configuration file of etc/ and prints each error and warning as', 'file:line: severity: message. Exit 1 on any error.', '', ROOT, JSON_OPTION, HELP]),
  },
  test: {
    summary: 'show how addresses route (test -rewrite), what a mapping table answers (test -mapping), what the directory makes of an address (test -alias)',
    help: text([
      'usage: imsimta test -rewrite [--from ADDR] [--channel SRC] [--json] [ADDRESS…]',
      '       imsimta test -mapping -table NAME [--flags LETTERS] [--mapping_file FILE] [--json] [PROBE…]',
      '       imsimta test -alias [--json] [ADDRESS…]',
      '',
      '-rewrite shows the rewrite steps, the channel and the resulting address of each address (from',
      'the arguments, else one per line on stdin).',
      '-mapping shows what the mapping table NAME of etc/mappings answers for each probe string (from',
      'the arguments, else one per line on stdin): the entry that matched (file:line), the output and',
      'its flags.',
      '-alias shows what the directory (files or LDAP) makes of each address: a user, a list and its',
      'expanded members, or nothing.',
      '',
      '  --from ADDR      the envelope sender to rewrite with',
      '  --channel SRC    the source channel (default l, local submission)',
      '  -table NAME      the mapping table to probe (PORT_ACCESS, ORIG_SEND_ACCESS, …)',
      '  --flags LETTERS  the $:x flags in force (e.g. "ST" for an authenticated TLS session)',
      '  --mapping_file F another mappings file instead of etc/mappings',
      ROOT,
      JSON_OPTION,
      HELP,
    ]),
  },
  qm: {
    summary: 'queue manager: summarize, directory, hold, release, delete, return, start, stop, corrupt, shaping',
    help: text([
      'usage: imsimta qm [--root DIR] [--json] COMMAND …',
      '',
      '  summarize                    messages, pending recipients and held messages per channel',
      '  directory [CHANNEL]          one entry per queued message (tries, next attempt, last error)',
      '  hold|release|delete|return ID…  hold, release, delete or return (bounce now) messages',
      '  start|stop CHANNEL           resume or suspend delivery on a channel',
      '  corrupt                      files set aside in corrupt/',
      '  shaping [CHANNEL]            each destination\'s traffic shaping (from the running job controller)',
      '',
      ROOT,
      JSON_OPTION,
      HELP,
    ]),
  },
  submit: {
    summary: 'enqueue a message read on stdin, as a local sendmail would',
    help: text([
      'usage: imsimta submit [-f SENDER] [-t] [-i] [RECIPIENT…] < message',
      '',
      'Reads a message on stdin, completes its header and enqueues it for every recipient.',
      'Exit 0 all accepted, 1 some refused, 2 bad usage, 75 the queue could not be written.',
      '',
      '  -f SENDER        the envelope sender (default: the invoking user at LOCAL_HOST)',
      '  -t               take the recipients from To:, Cc: and Bcc:',
      '  -i               a line with a single dot does not end the message',
      ROOT,
      HELP,
    ]),
  },
  counters: {
    summary: 'per-channel counts: enqueued, delivered, deferred, returned, queued',
    help: text(['usage: imsimta counters [--json] [--root DIR]', '', 'Per-channel counts of messages enqueued, delivered, deferred and returned, and the queue depth now.', '', ROOT, JSON_OPTION, HELP]),
  },
  report: {
    summary: 'the mail report of mail.log and its rotated copies (totals, per hour, top lists, reasons)',
    help: text([
      'usage: imsimta report [--since WHEN] [--until WHEN] [--top N] [--json] [--root DIR] [FILE…]',
      '',
      'Summarizes log/mail.log and its rotated copies (mail.log.1, mail.log.2.gz, …), or the FILEs',
      'named, as pflogsumm does for Postfix: totals by event, traffic per hour, top senders, recipients',
      'and destination domains, deferral and bounce reasons, rejections by rule, the slowest deliveries.',
      'Times are UTC, as in mail.log. A progress line is shown on a terminal.',
      '',
      '  --since WHEN     start: 24h (the default), 90m, 7d, PT6H, 2026-12-07, 2026-12-07T08:00,',
      '                   today, yesterday (a whole day), all',
      '  --until WHEN     end (same forms; default: now)',
      '  --top N          rows of each top list (default 10)',
      ROOT,
      '  --json           the report as one JSON object',
      HELP,
    ]),
  },
  process: {
    summary: 'the processes of the running instance',
    help: text(['usage: imsimta process [--json] [--root DIR]', '', 'Lists the watcher, the dispatcher, the SMTP server processes, the job controller and its jobs.', '', ROOT, JSON_OPTION, HELP]),
  },
  flush: {
    summary: 'retry now: everything, one channel (#channel) or one destination domain',
    help: text(['usage: imsimta flush [TARGET] [--json] [--root DIR]', '', 'Retries now what waits for its backoff: everything, `#channel` one channel, `domain` or', '`@domain` (with subdomains) the messages with recipients there.', '', ROOT, JSON_OPTION, HELP]),
  },
  restart: {
    summary: 'stop and start the dispatcher or the job controller (both when none is named)',
    help: text(['usage: imsimta restart [dispatcher|job_controller] [--root DIR]', '', 'Stops and starts that part while the watcher and the other part keep running. A configuration', 'with errors is refused before anything is stopped.', '', ROOT, HELP]),
  },
  reload: {
    summary: 'apply the configuration in etc/ to the running instance',
    help: text(['usage: imsimta reload [--root DIR]', '', 'Validates etc/ and applies it without dropping a session; a configuration with errors is refused', 'with every error as file:line and the instance keeps its last good one.', '', ROOT, HELP]),
  },
  purge: {
    summary: 'remove rotated logs older than N days',
    help: text(['usage: imsimta purge [--days N] [--root DIR]', '', 'Removes the rotated logs of log/ last written more than N days ago (default LOG_KEEP_DAYS, else 7).', '', '  --days N         the age in days', ROOT, HELP]),
  },
  passwd: {
    summary: "set a user's password in etc/users (SMTP AUTH)",
    help: text([
      'usage: imsimta passwd USER [--addresses ADDR,ADDR…] [--admin|--no-admin] [--root DIR]',
      '',
      "Sets USER's password in etc/users, adding the user (and the file, mode 0600) when missing.",
      'On a terminal the password is asked twice and not shown; otherwise it is read from standard',
      'input, alone on one line (for scripts). The rest of the file is kept as it is.',
      '',
      '  --addresses A,B   the addresses USER may send as besides USER@each local domain',
      "                    (replaces the list; --addresses '' empties it; default: keep it)",
      '  --admin           USER may send as any address',
      '  --no-admin        USER may not (default: keep what the file says)',
      ROOT,
      HELP,
      '',
      'A running instance applies the change by itself within a second.',
    ]),
  },
  dkim: {
    summary: 'make a DKIM signing key (dkim keygen) and print the DNS record to publish',
    help: text([
      'usage: imsimta dkim keygen DOMAIN SELECTOR [--algorithm rsa|ed25519] [--bits 2048] [--root DIR]',
      '',
      'Creates a DKIM signing key for mail whose From: address is at DOMAIN:',
      '  etc/dkim/DOMAIN.SELECTOR.pem   the private key (mode 0600)',
      '  etc/dkim/keys                  gets the line "DOMAIN SELECTOR DOMAIN.SELECTOR.pem ALGORITHM"',
      'and prints the DNS TXT record to publish at SELECTOR._domainkey.DOMAIN.',
      'Mail is signed when it is queued to a channel with the dkimsign keyword (imta.cnf).',
      '',
      '  --algorithm rsa|ed25519   rsa-sha256 (default) or ed25519-sha256 (RFC 8463)',
      '  --bits N                  RSA key length: 1024 to 4096 (default 2048)',
      ROOT,
      HELP,
    ]),
  },
  bounces: {
    summary: 'the bounces recorded per list and member (the bounces channel, VERP)',
    help: text([
      'usage: imsimta bounces [--list ADDR] [--member ADDR] [--since WHEN] [--summary] [--json] [--root DIR]',
      '',
      'Shows the bounces the bounces channel recorded in log/bounces.jsonl (and its rotated copies),',
      'oldest first: when, the list (the VERP owner address), the member that bounced, the status and',
      'the diagnostic. With --summary, one line per list and member: how many bounces, the first and',
      'the last, and what the last one said.',
      '',
      '  --list ADDR      only this list (owner@list.example)',
      '  --member ADDR    only this member',
      '  --since WHEN     only bounces since a date or time (2026-12-01, 2026-12-01T08:00:00Z) or for',
      '                   an age (P7D, PT12H, 7d, 30m)',
      '  --summary        per list and member',
      ROOT,
      JSON_OPTION,
      HELP,
    ]),
  },
  srs: {
    summary: 'SRS secrets (srs keygen); what an address becomes forwarded (srs forward) or bounced (srs reverse)',
    help: text([
      'usage: imsimta srs keygen|forward SENDER|reverse ADDRESS [--root DIR]',
      '',
      'keygen           adds a new secret at the top of etc/srs.secrets (created 0600, or 0640 in the',
      '                 service user\'s group when made by root): it signs from now on; the older ones',
      '                 still verify bounces (delete each SRS_MAXAGE days after it stopped signing).',
      '                 A running instance reloads the file by itself. The secret is never printed.',
      'forward SENDER   the envelope sender a forwarded copy of SENDER\'s mail gets (SRS0=…@SRS_DOMAIN)',
      'reverse ADDRESS  where a bounce to the SRS address ADDRESS goes; exit 1 when it does not verify',
      '',
      ROOT,
      HELP,
    ]),
  },
  help: {
    summary: 'this list, or the help of one command',
    help: text(['usage: imsimta help [COMMAND]', '', 'Lists the commands, or shows the help of one.', HELP]),
  },
};

export const IMSIMTA_HELP = text([
  'usage: imsimta COMMAND [--root DIR] …',
  '',
  'Commands:',
  ...Object.entries(IMSIMTA_SUBCOMMANDS).map(([name, { summary }]) => `  ${name.padEnd(10)} ${summary}`),
  '',
  '`imsimta COMMAND --help` or `imsimta help COMMAND` shows the help of one command.',
]);

/** Whether the arguments ask for help: `--help` or `-h` before a `--`. */
export function asksForHelp(argv: readonly string[]): boolean {
  for (const arg of argv) {
    if (arg === '--') return false;
    if (arg === '--help' || arg === '-h') return true;
  }
  return false;
}
