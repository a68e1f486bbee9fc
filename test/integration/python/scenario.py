"""python-etcd (Debian python3-etcd) driving an etcd v2 server; prints one JSON line per step.

Run against the real etcd and against ours; the test compares the two transcripts.
Indexes are printed relative to the index before the first write.
"""
import json
import sys
import threading

import etcd

host, port = sys.argv[1], int(sys.argv[2])
c = etcd.Client(host=host, port=port, protocol="http")
base = c.read("/").etcd_index
out = []


def rel(i):
    return None if i is None else i - base


def relkey(k):
    # in-order keys are named by their absolute index
    head, _, tail = k.rpartition("/")
    return f"{head}/#{int(tail) - base}" if len(tail) == 20 and tail.isdigit() else k


def node(r):
    return {
        "key": relkey(r.key),
        "value": r.value,
        "dir": r.dir,
        "action": r.action,
        "created": rel(r.createdIndex),
        "modified": rel(r.modifiedIndex),
        "ttl": r.ttl,
    }


def step(name, fn):
    try:
        out.append({"step": name, "ok": fn()})
    except Exception as e:  # the exception class is part of the contract python-etcd users code against
        out.append({"step": name, "error": type(e).__name__, "msg": str(e).split(" : ")[0]})


step("write", lambda: node(c.write("/py/a", "1")))
step("read", lambda: node(c.read("/py/a")))
step("set", lambda: node(c.set("/py/a", "2")))
step("get", lambda: node(c.get("/py/a")))
step("test_and_set ok", lambda: node(c.test_and_set("/py/a", "3", "2")))
step("test_and_set fail", lambda: node(c.test_and_set("/py/a", "4", "nope")))
step("write prevExist false fails", lambda: node(c.write("/py/a", "x", prevExist=False)))
step("write prevIndex", lambda: node(c.write("/py/a", "5", prevIndex=c.read("/py/a").modifiedIndex)))
step("read missing", lambda: node(c.read("/py/none")))
step("append 1", lambda: node(c.write("/py/queue", "job1", append=True)))
step("append 2", lambda: node(c.write("/py/queue", "job2", append=True)))
step("queue sorted", lambda: [n.value for n in c.read("/py/queue", recursive=True, sorted=True).leaves])
step("mkdir", lambda: node(c.write("/py/dir", None, dir=True)))
step("ttl", lambda: node(c.write("/py/ttl", "t", ttl=60))["ttl"] is not None)
step("delete", lambda: node(c.delete("/py/a")))
step("delete dir not empty", lambda: node(c.delete("/py/queue", dir=True)))
step("delete recursive", lambda: node(c.delete("/py/queue", recursive=True)))
step("ls", lambda: sorted(n.key for n in c.read("/py", recursive=True).leaves))
step("members", lambda: len(c.members))
step("leader has name", lambda: "name" in c.leader)
step("machines", lambda: len(c.machines))


# A watch that blocks until another thread writes.
def watched():
    result = {}

    def w():
        result["r"] = c.read("/py/w", wait=True, timeout=10)

    t = threading.Thread(target=w)
    t.start()
    import time

    time.sleep(0.5)
    c.write("/py/w", "fired")
    t.join(10)
    return node(result["r"])


step("watch", watched)
step("watch history", lambda: node(c.watch("/py/w", index=c.read("/py/w").modifiedIndex)))
step("watch outdated", lambda: [c.write("/py/churn", str(i)) for i in range(1010)] and node(c.read("/py/w", wait=True, waitIndex=base + 1, timeout=5)))


def lock():
    l = etcd.Lock(c, "biglock")
    l.acquire(blocking=True, lock_ttl=30)
    held = l.is_acquired
    l.release()
    return [held, l.is_acquired]


step("lock", lock)
print(json.dumps(out))
