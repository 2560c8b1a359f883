// The connect stage: the checks a client's connection goes through before the greeting, in
// order (see stages.ts for the verdicts). A refusal is answered in place of the greeting and the
// connection closed. Empty today: PORT_ACCESS (src/mappings checkPortAccess) and DNS blocklists
// (src/policy) belong here.
import type { SMTPServerSession } from 'smtp-server';
import type { InboundSession } from './inbound-session.js';
import type { Check, StageServices } from './stages.js';

interface ConnectCommand {
  smtp: SMTPServerSession;
  session: InboundSession;
  services: StageServices;
}

type ConnectCheck = Check<ConnectCommand>;

export const CONNECT_CHECKS: readonly ConnectCheck[] = [];
