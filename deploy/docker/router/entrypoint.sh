#!/bin/sh
# zebra, bfdd (when /etc/frr/bfdd.conf is mounted: the lab's BFD profile for its nodes) and bgpd without watchfrr
# or systemd (as the netns lab runs them); bgpd in the foreground. bfdd before bgpd, so bgpd's `neighbor X bfd`
# registrations find it (they go through zebra, which relays them to bfdd).
set -e
mkdir -p /run/frr && chown frr:frr /run/frr
[ -f /etc/frr/zebra.conf ] || echo 'hostname router' > /etc/frr/zebra.conf
/usr/lib/frr/zebra -d -u frr -g frr -f /etc/frr/zebra.conf -i /run/frr/zebra.pid -A 127.0.0.1
sleep 1
if [ -f /etc/frr/bfdd.conf ]; then
  /usr/lib/frr/bfdd -d -u frr -g frr -f /etc/frr/bfdd.conf -i /run/frr/bfdd.pid -A 127.0.0.1
fi
exec /usr/lib/frr/bgpd -u frr -g frr -f /etc/frr/bgpd.conf -i /run/frr/bgpd.pid -A 127.0.0.1
