// The connect stage: the checks a client's connection goes through before the greeting, in
// order (see stages.ts for the verdicts). A refusal is answered in place of the greeting (554, or
// 421 when temporary), the connection closed, and a J record names the rule: PORT_ACCESS
// (access-checks.ts), the DNS blocklists (blocklist-check.ts), the session's milters
// (milter-checks.ts, which are connected here).
import type { SMTPServerSession } from 'smtp-server';
import { portAccess } from './access-checks.js';
import { blocklists } from './blocklist-check.js';
import type { InboundSession } from './inbound-session.js';
import { milterConnect } from './milter-checks.js';
import type { Check, StageServices } from './stages.js';

export interface ConnectCommand {
  smtp: SMTPServerSession;
  session: InboundSession;
  services: StageServices;
}

type ConnectCheck = Check<ConnectCommand>;

export const CONNECT_CHECKS: readonly ConnectCheck[] = [portAccess, blocklists, milterConnect];
