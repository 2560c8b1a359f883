#!/usr/bin/env bash
# Installs the Debian programs the tests talk to, when they are missing:
#   swaks (with libnet-ssleay-perl for its TLS), Postfix (smtp-source, smtp-sink, and a real Postfix as client and server), dnsmasq,
#   Chromium (status page, driven by playwright-core), python3 (pseudo-terminal of imsimta passwd),
#   rspamd (milter), python3-dkim, python3-authres and opendkim-tools (independent DKIM and ARC
#   signers and verifiers),
#   slapd and ldap-utils (LDAP directory), msmtp and libsasl2-modules (submission clients),
#   haproxy (PROXY protocol), redis-server (farm-wide shaping), unbound (validating resolver, DANE),
#   systemd (systemd-analyze checks contrib/tsubame.service; its init is never started), prometheus
#   (a real Prometheus answers the queries of the Grafana dashboard in contrib/),
#   ldnsutils (ldns-keygen and ldns-signzone: the DANE tests sign their zone at start),
#   postsrsd (Postfix's SRS daemon: its addresses and ours must decode each other),
#   opendkim (the DKIM signing milter of the Postfix that bench/fanout-e2e.ts --dkim compares with).
# Never starts their services: the tests run their own copies on loopback.
set -u
need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have swaks || need+=(swaks)
# swaks's STARTTLS and TLS at connect (-tls, --tlsc) need Net::SSLeay.
perl -MNet::SSLeay -MIO::Socket::SSL -e1 >/dev/null 2>&1 || need+=(libnet-ssleay-perl libio-socket-ssl-perl)
have smtp-source || need+=(postfix)
have dnsmasq || need+=(dnsmasq-base)
[ -x /usr/bin/chromium ] || need+=(chromium)
have python3 || need+=(python3)
have rspamd || need+=(rspamd)
have dkimverify || need+=(python3-dkim)
/usr/bin/python3 -c 'import authres' >/dev/null 2>&1 || need+=(python3-authres)
have opendkim-testmsg || need+=(opendkim-tools)
have slapd || need+=(slapd)
have ldapadd || need+=(ldap-utils)
have msmtp || need+=(msmtp)
[ -e /usr/lib/x86_64-linux-gnu/sasl2/libplain.so ] || ls /usr/lib/*/sasl2/libplain.so >/dev/null 2>&1 || need+=(libsasl2-modules)
have haproxy || need+=(haproxy)
have redis-server || need+=(redis-server)
have unbound || need+=(unbound)
have systemd-analyze || need+=(systemd)
[ -x /usr/bin/prometheus ] || need+=(prometheus)
have ldns-signzone || need+=(ldnsutils)
have postsrsd || need+=(postsrsd)
have opendkim || need+=(opendkim)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "tsubame tests need ${need[*]}: install them (apt-get install ${need[*]}) or run npm test as root" >&2
  exit 1
fi
echo "installing test peers: ${need[*]}" >&2
# Keep the packages' init scripts from starting daemons (postfix would take port 25, slapd 389, …).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1; fi
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
# slapd's package would build a database for the machine's own domain; the tests make their own.
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections 2>/dev/null || true
ok=1
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends "${need[@]}" >/tmp/tsubame-apt.log 2>&1 || ok=0
[ $created_policy = 1 ] && rm -f "$policy"
if [ $ok = 0 ]; then echo "tsubame tests: apt-get install ${need[*]} failed (see /tmp/tsubame-apt.log)" >&2; exit 1; fi
exit 0
