#!/bin/sh
# zebra and bgpd without watchfrr or systemd (as the netns lab runs them); bgpd in the foreground.
set -e
mkdir -p /run/frr && chown frr:frr /run/frr
[ -f /etc/frr/zebra.conf ] || echo 'hostname router' > /etc/frr/zebra.conf
/usr/lib/frr/zebra -d -u frr -g frr -f /etc/frr/zebra.conf -i /run/frr/zebra.pid -A 127.0.0.1
sleep 1
exec /usr/lib/frr/bgpd -u frr -g frr -f /etc/frr/bgpd.conf -i /run/frr/bgpd.pid -A 127.0.0.1
