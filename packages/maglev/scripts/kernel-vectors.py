#!/usr/bin/env python3
# Regenerates test-fixtures/kernel-vectors.json from the running kernel (as root):
#   ip netns add jh; ip -n jh link set lo up; ip -n jh addr add 2001:db8::1/128 dev lo
#   ip -n jh addr add 2001:db8::9/128 dev lo; ip -n jh addr add 198.18.0.1/32 dev lo
#   python3 kernel-vectors.py > ../test-fixtures/kernel-vectors.json; ip netns del jh
# Each flow is sent once through an output chain that stores nft's jhash slot in a dynamic set.
import socket, subprocess, json, re
def nft(cmd): return subprocess.run(["ip","netns","exec","jh","nft"]+cmd, capture_output=True, text=True, check=True).stdout
out=[]
cases=[("ip",socket.AF_INET,"198.18.0.1",40000,"127.0.0.9",80,"tcp"),("ip",socket.AF_INET,"198.18.0.1",51234,"127.0.0.9",53,"udp"),
("ip",socket.AF_INET,"127.0.0.1",1,"127.0.0.9",65535,"udp"),
("ip6",socket.AF_INET6,"2001:db8::1",40001,"2001:db8::9",443,"tcp"),("ip6",socket.AF_INET6,"2001:db8::1",40002,"2001:db8::9",53,"udp")]
for fam,af,src,sport,dst,dport,proto in cases:
  for seed,size,mode in [(0x5eed,65537,"5-tuple"),(0,13,"5-tuple"),(0xffffffff,655373,"5-tuple"),(0x5eed,65537,"source-ip")]:
    nft(["flush","ruleset"])
    key = f"{fam} saddr . {proto} sport . {fam} daddr . {proto} dport" if mode=="5-tuple" else f"{fam} saddr"
    rules="table inet t {\n set seen { type mark; flags dynamic; }\n chain out {\n type filter hook output priority 0;\n " + f"{fam} daddr {dst} {proto} dport {dport} meta mark set jhash {key} mod {size} seed {seed} add @seen {{ meta mark }}" + "\n }\n}\n"
    subprocess.run(["ip","netns","exec","jh","nft","-f","-"],input=rules,text=True,check=True)
    code=f"""
import socket,sys
s=socket.socket({int(af)},socket.SOCK_{'DGRAM' if proto=='udp' else 'STREAM'}); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(("{src}",{sport}))
s.settimeout(0.3)
try:
  (s.sendto(b"x",("{dst}",{dport})) if "{proto}"=="udp" else s.connect(("{dst}",{dport})))
except Exception as e: pass
"""
    subprocess.run(["ip","netns","exec","jh","python3","-c",code])
    m=re.search(r"elements = \{ (0x[0-9a-f]+)", nft(["list","set","inet","t","seen"]))
    out.append(dict(src=src,sport=sport,dst=dst,dport=dport,protocol=proto,seed=seed,size=size,mode=mode,slot=int(m.group(1),16)))
print(json.dumps({"generatedBy": "packages/maglev/scripts/kernel-vectors.py (nftables 1.0.6, kernel 6.18)", "vectors": out}, indent=1))
