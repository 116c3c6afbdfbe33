# Time from elb.py's set_domain_rules returning to the agent's proxy routing
# by the new rules: `python bench.py BASE PROXY CHANGES`. Each change flips
# bench.example.com between up1 and up2; after the call returns, requests
# go through the proxy (one kept-alive connection) until one is answered
# by the new upstream. Prints p50/p99/max in ms.
import http.client
import sys
import time

from elb import ELB, BackendRule, RuleSet, UpStream

base, proxy, changes = sys.argv[1], sys.argv[2], int(sys.argv[3])
host, port = proxy.rsplit(":", 1)
elb = ELB(base)
conn = http.client.HTTPConnection(host, int(port), timeout=5)


def answered_by():
    conn.request("GET", "/", headers={"Host": "bench.example.com"})
    resp = conn.getresponse()
    return resp.status, resp.read().decode(errors="replace").split(" ")[0]


def route(upstream):
    elb.set_domain_rules("bench.example.com", RuleSet("b", [BackendRule("b", upstream)]))


route("up1")
deadline = time.monotonic() + 20
while answered_by() != (200, "up1"):
    if time.monotonic() > deadline:
        sys.exit("the proxy never routed bench.example.com to up1")
    time.sleep(0.01)

times, calls, polls = [], [], 0
for i in range(changes):
    want = "up2" if i % 2 == 0 else "up1"
    called = time.monotonic()
    route(want)
    t0 = time.monotonic()
    calls.append((t0 - called) * 1000)
    while True:
        polls += 1
        if answered_by() == (200, want):
            break
        if time.monotonic() - t0 > 10:
            sys.exit(f"change {i}: the proxy did not route to {want} within 10 s")
    times.append((time.monotonic() - t0) * 1000)

times.sort()
calls.sort()
pick = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))]
print(
    f"ELB admin API: set_domain_rules returned → proxy routes by the new rules, "
    f"{changes} changes: p50={pick(times, 0.5):.1f}ms p99={pick(times, 0.99):.1f}ms "
    f"max={times[-1]:.1f}ms ({polls / changes:.1f} requests per change; target p99 ≤ 20ms); "
    f"the call itself: p50={pick(calls, 0.5):.1f}ms p99={pick(calls, 0.99):.1f}ms"
)
