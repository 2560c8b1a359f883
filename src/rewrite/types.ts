// What the rewriter takes and gives (plain data).

export interface RewriteContext {
  /** The channel doing the rewrite (for `$M`/`$N` and `bangoverpercent`), e.g. 'tcp_local'. */
  sourceChannel: string;
  /** Envelope To (forward) or envelope From (backward). */
  direction: 'to' | 'from';
  /** Envelope address (default) or a header address (`$E`/`$B`). */
  envelope?: boolean;
  /** The channel the message goes to (for `$Q`/`$C`); ignored while rewriting the envelope To itself. */
  destinationChannel?: string;
}

export interface RewriteStep {
  /** The pattern looked up (or the host compared with the channel table). */
  probe: string;
  rule: { pattern: string; template: string; file: string; line: number } | null;
  /** What happened, in words (`no rule`, `failed: …`, `rewritten to …`, …). */
  outcome: string;
}

export interface RewriteResult {
  /** As given. */
  address: string;
  /** Destination channel; null when unroutable. */
  channel: string | null;
  /** Envelope To after rewriting (or From when direction 'from'); null on error. */
  rewritten: string | null;
  /** Source-route relay host (from U@D@R@C), else null. */
  route: string | null;
  /** Why the address is not routable (e.g. 'illegal host/domain: foo.invalid' or a `$?` text). */
  error: string | null;
  /**
   * The error is temporary: a `$V`/`$Z` rule could not decide because the directory's hosted
   * domains are not known yet (451 4.4.3 at RCPT, a deferral in a job; never a refusal).
   */
  temporary?: true;
  steps: RewriteStep[];
}

/**
 * The directory's hosted domains as the rewriter asks them (`$V`, `$Z`): synchronously, from a
 * set the directory keeps fresh (src/directory/hosted-domains.ts). `domain` is lower case, without
 * a trailing dot; null: not known yet (LDAP has not answered since the process started).
 */
export interface HostedDomains {
  isHostedDomain(domain: string): boolean | null;
}

export interface Rewriter {
  rewrite(address: string, ctx: RewriteContext): RewriteResult;
}
