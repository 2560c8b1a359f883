#!/usr/bin/env bash
# A private Postfix instance on loopback for comparison benchmarks (needs root and the
# Debian postfix package). Usage:
#   bench/postfix/instance.sh start DIR LISTEN_IP LISTEN_PORT RELAY_IP RELAY_PORT
#   bench/postfix/instance.sh stop DIR
# POSTFIX_EXTRA_CF in the environment: main.cf lines added (test/helpers/postfix.ts).
# It relays everything it receives to [RELAY_IP]:RELAY_PORT, with Postfix's defaults otherwise
# (fsync before 250, one queue file per message), and no client connection-count limit so
# that a single benchmark client is not throttled (mta-anchors.md §1.1 trap (a)).
set -euo pipefail
cmd=$1 dir=$2

# Keeps one alternate_config_directories line in /etc/postfix/main.cf (Postfix honours only the
# last one) listing the private instances that still exist: add or remove DIR.
register_config_dir() {
  local action=$1 target=$2 main=/etc/postfix/main.cf list=() d
  # Debian's "No configuration" install has no main.cf: an empty one means Postfix's defaults.
  [ -f "$main" ] || touch "$main"
  for d in $(sed -n 's/^alternate_config_directories *= *//p' "$main" | tr ', ' '\n\n'); do
    [ -n "$d" ] && [ "$d" != "$target" ] && [ -d "$d" ] && list+=("$d")
  done
  [ "$action" = add ] && list+=("$target")
  sed -i '/^alternate_config_directories/d' "$main"
  [ ${#list[@]} -gt 0 ] && echo "alternate_config_directories = $(IFS=,; echo "${list[*]}")" >> "$main"
  return 0
}
case $cmd in
start)
  ip=$3 port=$4 relay_ip=$5 relay_port=$6
  rm -rf "$dir"; mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
  cp /etc/postfix/master.cf.proto "$dir/etc/master.cf" 2>/dev/null || cp /etc/postfix/master.cf "$dir/etc/master.cf"
  cp /etc/postfix/dynamicmaps.cf "$dir/etc/" 2>/dev/null || true
  # Listen on our address/port instead of *:25.
  sed -i "s/^smtp      inet  n       -       y       -       -       smtpd/$ip:$port inet n - n - - smtpd/" "$dir/etc/master.cf"
  sed -i -E 's/^(\S+\s+\S+\s+\S+\s+\S+\s+)y(\s)/\1n\2/' "$dir/etc/master.cf"   # no chroot
  cat > "$dir/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [$relay_ip]:$relay_port
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
default_process_limit = 200
smtp_destination_concurrency_limit = 20
maillog_file_prefixes = /tmp, /var
maillog_file = $dir/maillog
disable_dns_lookups = yes
smtp_host_lookup = native
alias_maps =
alias_database =
local_recipient_maps =
smtputf8_enable = no
CF
  # Extra main.cf lines (the tests' SASL client settings), one per line.
  [ -n "${POSTFIX_EXTRA_CF:-}" ] && printf '%s\n' "$POSTFIX_EXTRA_CF" >> "$dir/etc/main.cf"
  # Postfix only runs a non-default configuration directory listed in the default main.cf.
  register_config_dir add "$dir/etc"
  postfix -c "$dir/etc" set-permissions >/dev/null 2>&1 || true
  chown -R postfix "$dir/queue" "$dir/data"
  postfix -c "$dir/etc" check 2>&1 | grep -v warning || true
  postfix -c "$dir/etc" start >/dev/null 2>&1
  ;;
stop)
  postfix -c "$dir/etc" stop >/dev/null 2>&1 || true
  register_config_dir remove "$dir/etc"
  ;;
*) echo "usage: $0 start|stop DIR …" >&2; exit 2;;
esac
