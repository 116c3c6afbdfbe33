# Drives the cluster with ELB's own Python client (elb.py 0.0.6, from PyPI),
# unchanged: `python3 client.py PHASE BASE[,BASE…] UP1 UP2 DIRECT`.
# Prints what it saw as one JSON object.
import json
import sys

from elb import (ELB, ELBRespError, ELBRuleError, ELBSet, BackendRule,
                 PathRule, RuleSet, UARule, UpStream)

phase, bases = sys.argv[1], sys.argv[2].split(",")
up1, up2, direct = sys.argv[3:6]
elbs = ELBSet(bases)
one = ELB(bases[0])
out = {}


def refused(call):
    """The body of the refusal `call` got, or None if it was accepted."""
    try:
        call()
    except ELBRespError as e:
        body = e.args[0]
        return body.decode() if isinstance(body, bytes) else str(body)
    return None


def seen():
    out["domains"] = [ELB(b).get_domain_rules() for b in bases]
    out["upstreams"] = [ELB(b).get_upstream() for b in bases]


if phase == "set":
    # ELB's README example, through every master of the set.
    elbs.set_upstream(UpStream("up1", {up1: "weight=10 max_fails=2"}))
    elbs.set_upstream(UpStream("up2", {up2: ""}))
    rules = [
        UARule("r1", r"httpie(\S+)$", "r4", "r3"),
        PathRule("r4", r"^\/blog\/(\S+)$", True, False, "r2", "r3"),
        BackendRule("r2", "up1"),
        BackendRule("r3", "up2"),
    ]
    elbs.set_domain_rules("example.com", RuleSet("r1", rules))
    # A backend may name an address instead of an upstream.
    elbs.set_domain_rules("direct.example.com", RuleSet("d", [BackendRule("d", direct)]))
    out["dump"] = elbs.dump_to_etcd()
    seen()
elif phase == "bad":
    try:
        RuleSet("r1", [UARule("r1", "x", "r9", "r9")]).dump()
        out["client"] = "sent"
    except ELBRuleError:
        out["client"] = "refused"
    # What the client would refuse, sent past its check.
    url = one.base + "/__erulb__/domain"
    dangling = {"example.com": {"init": "r1", "rules": {
        "r1": UARule("r1", "x", "r9", "r3").dump(),
        "r3": BackendRule("r3", "up2").dump()}}}
    out["dangling"] = refused(lambda: one.req("PUT", url, json=dangling))
    out["regex"] = refused(lambda: one.set_domain_rules("example.com", RuleSet(
        "r1", [UARule("r1", "httpie(", "r2", "r2"), BackendRule("r2", "up1")])))
    out["upstream"] = refused(lambda: one.set_domain_rules("example.com", RuleSet(
        "r1", [BackendRule("r1", "up3")])))
    out["param"] = refused(lambda: one.set_upstream(UpStream("up1", {up1: "weight=ten"})))
    out["in_use"] = refused(lambda: one.delete_upstream(["up1"]))
    seen()
elif phase == "delete":
    elbs.delete_domain_rules(["example.com", "direct.example.com"])
    elbs.delete_upstream(["up1", "up2"])
    seen()
print(json.dumps(out))
