#!/usr/bin/env bash
# Installs the Debian programs the tests talk to (swaks, Postfix's smtp-source/smtp-sink, dnsmasq,
# Chromium for the status-page test, driven by playwright-core, rspamd as a milter, and the DKIM
# verifiers python3-dkim and opendkim-tools) when they are missing.
# Never starts their services: the tests run their own copies on loopback.
set -u
need=()
command -v swaks >/dev/null 2>&1 || need+=(swaks)
{ command -v smtp-source >/dev/null 2>&1 || [ -x /usr/sbin/smtp-source ]; } || need+=(postfix)
{ command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ]; } || need+=(dnsmasq-base)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/rspamd ] || need+=(rspamd)
[ -x /usr/bin/dkimverify ] || need+=(python3-dkim)
[ -x /usr/sbin/opendkim-testmsg ] || need+=(opendkim-tools)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "tsubame tests need ${need[*]}: install them (apt-get install swaks postfix dnsmasq-base chromium rspamd python3-dkim opendkim-tools) or run npm test as root" >&2
  exit 1
fi
echo "installing test peers: ${need[*]}" >&2
# Keep the packages' init scripts from starting daemons (postfix would take port 25).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1; fi
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
ok=1
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends "${need[@]}" >/tmp/tsubame-apt.log 2>&1 || ok=0
[ $created_policy = 1 ] && rm -f "$policy"
if [ $ok = 0 ]; then echo "tsubame tests: apt-get install ${need[*]} failed (see /tmp/tsubame-apt.log)" >&2; exit 1; fi
exit 0
