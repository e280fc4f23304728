"""redis-py, as an application uses it with its defaults, against raftkv on argv[1].

Run by tests/compat.rs (redis_py_connects_with_its_defaults). Exits non-zero on failure.
"""
import sys

import redis

port = int(sys.argv[1])
r = redis.Redis(host="127.0.0.1", port=port)
assert r.ping() is True
assert r.set("py:k", "v") is True
assert r.get("py:k") == b"v"
assert r.get("py:missing") is None
assert r.set("py:k", "w", nx=True) is None
assert r.mget("py:k", "py:missing") == [b"v", None]
assert r.incr("py:n") == 1
assert r.incrby("py:n", 41) == 42
assert r.delete("py:k", "py:missing") == 1
assert r.exists("py:k") == 0
assert r.client_setname("py-app") is True
assert r.client_getname() in ("py-app", b"py-app")
me = r.client_info()
assert me["name"] == "py-app", me
assert me["lib-name"].startswith("redis-py"), me
# redis-py 8 opens with HELLO 3 when no protocol is given: this connection is RESP3.
assert r.connection_pool.connection_kwargs.get("protocol") is None
assert me["resp"] == "3", me
# A pipeline without MULTI.
p = r.pipeline(transaction=False)
p.set("py:a", 1).incr("py:a").get("py:a")
assert p.execute() == [True, 2, b"2"]
assert r.hset("py:h", mapping={"f": "v", "g": "w"}) == 2
# HGETALL: a map in RESP3 (redis-py keeps it as a dict), a flat array in RESP2.
assert r.hgetall("py:h") == {b"f": b"v", b"g": b"w"}
assert r.hgetall("py:nohash") == {}


def pipelines(c, ns):
    """pipeline() as applications use it, on a connection of either protocol; its keys
    start with `ns`."""
    # Without a transaction: one round trip; an error is that command's answer.
    p = c.pipeline(transaction=False)
    p.set(ns + "s", "x").incr(ns + "s").get(ns + "s").hgetall("py:h")
    res = p.execute(raise_on_error=False)
    assert res[0] is True and isinstance(res[1], redis.ResponseError), res
    assert res[2:] == [b"x", {b"f": b"v", b"g": b"w"}], res
    # The default pipeline is MULTI ... EXEC: queued, applied as one log entry.
    p = c.pipeline()
    p.set(ns + "t", 1).incr(ns + "t").get(ns + "t").hgetall("py:h")
    p.hset(ns + "h", "a", "1").hincrby(ns + "h", "a", 5).ttl(ns + "t")
    assert p.execute() == [True, 2, b"2", {b"f": b"v", b"g": b"w"}, 1, 6, -1]
    # An error at EXEC is that command's entry; the others apply.
    p = c.pipeline()
    p.set(ns + "u", "x").incr(ns + "u").set(ns + "v", "y")
    res = p.execute(raise_on_error=False)
    assert res[0] is True and isinstance(res[1], redis.ResponseError), res
    assert res[2] is True and c.get(ns + "v") == b"y", res
    try:
        p = c.pipeline()
        p.set(ns + "u", "z").incr(ns + "u").execute()
        raise AssertionError("the failed INCR raises")
    except redis.ResponseError:
        pass
    assert c.get(ns + "u") == b"z"
    # An unknown command while queueing aborts the whole transaction (EXECABORT).
    p = c.pipeline()
    p.set(ns + "w", "1").execute_command("NOSUCHCOMMAND")
    try:
        p.execute()
        raise AssertionError("EXECABORT raises")
    except redis.ResponseError:
        pass
    assert c.get(ns + "w") is None
    # WATCH: optimistic locking, retried by redis-py's transaction() helper.
    def bump(pipe):
        v = int(pipe.get(ns + "t"))
        pipe.multi()
        pipe.set(ns + "t", v + 1)

    assert c.transaction(bump, ns + "t") == [True]
    assert c.get(ns + "t") == b"3"
    # A watched key another client changes: EXEC answers nil, redis-py raises WatchError.
    other = redis.Redis(host="127.0.0.1", port=port)
    with c.pipeline() as p:
        p.watch(ns + "t")
        assert p.get(ns + "t") == b"3"
        other.set(ns + "t", "changed")
        p.multi()
        p.set(ns + "t", "mine")
        try:
            p.execute()
            raise AssertionError("WatchError expected")
        except redis.WatchError:
            pass
    assert c.get(ns + "t") == b"changed"
    other.close()


pipelines(r, "py:default:")
info = r.info()
assert info["redis_version"] and info["connected_clients"] >= 1, info
assert "db0" in r.info("keyspace")
# Explicit RESP3 and RESP2.
for protocol in (2, 3):
    c = redis.Redis(host="127.0.0.1", port=port, protocol=protocol)
    assert c.get("py:a") == b"2"
    assert int(c.client_info()["resp"]) == protocol
    assert c.hgetall("py:h") == {b"f": b"v", b"g": b"w"}
    pipelines(c, "py:%d:" % protocol)
print("redis-py", redis.__version__, "with its default protocol (RESP3), RESP2 and RESP3: plain, pipeline(transaction=False), pipeline() (MULTI/EXEC), WATCH: ok")
