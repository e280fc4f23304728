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


def next_message(ps, timeout=10.0):
    """The next message (subscribe confirmations included), waiting up to `timeout`."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = ps.get_message(timeout=0.5)
        if m is not None:
            return m
    raise AssertionError("no pub/sub message within %ss" % timeout)


def pubsub(c, ns):
    """PubSub as applications use it: channels, patterns, keyspace notifications,
    handlers, PING while subscribed; its channels and keys start with `ns`."""
    ps = c.pubsub()
    ps.subscribe(ns + "chan")
    assert next_message(ps) == {"type": "subscribe", "pattern": None, "channel": (ns + "chan").encode(), "data": 1}
    ps.psubscribe(ns + "p.*")
    assert next_message(ps)["type"] == "psubscribe"
    assert c.pubsub_numsub(ns + "chan", ns + "none") == [((ns + "chan").encode(), 1), ((ns + "none").encode(), 0)]
    assert (ns + "chan").encode() in c.pubsub_channels(ns + "*")
    assert c.pubsub_numpat() >= 1
    # The count is the receivers on the node that answers (one node here).
    assert c.publish(ns + "chan", "hello") == 1
    m = next_message(ps)
    assert m == {"type": "message", "pattern": None, "channel": (ns + "chan").encode(), "data": b"hello"}, m
    assert c.publish(ns + "p.x", b"\x00bin") == 1
    m = next_message(ps)
    assert m == {"type": "pmessage", "pattern": (ns + "p.*").encode(), "channel": (ns + "p.x").encode(), "data": b"\x00bin"}, m
    # PING while subscribed.
    ps.ping("still here")
    m = next_message(ps)
    assert m["type"] == "pong" and m["data"] == b"still here", m
    # Keyspace notifications, switched on as with Redis.
    assert c.config_set("notify-keyspace-events", "KEA") is True
    assert c.config_get("notify-keyspace-events") == {"notify-keyspace-events": "AKE"}
    ps.psubscribe("__keyspace@0__:" + ns + "k:*")
    assert next_message(ps)["type"] == "psubscribe"
    c.set(ns + "k:a", 1, px=100_000)
    c.hset(ns + "k:h", "f", "v")
    c.rename(ns + "k:a", ns + "k:b")
    c.set(ns + "k:gone", 1, px=50)
    msgs = [next_message(ps) for _ in range(7)]
    got = [(m["channel"].decode().split(":", 1)[1], m["data"]) for m in msgs]
    k = lambda key: ns + key
    assert got == [
        (k("k:a"), b"set"), (k("k:a"), b"expire"), (k("k:h"), b"hset"),
        (k("k:a"), b"rename_from"), (k("k:b"), b"rename_to"),
        (k("k:gone"), b"set"), (k("k:gone"), b"expire"),
    ], got
    # Expiry through the log: the leader's active expiry removes it, every node says so.
    m = next_message(ps, timeout=10)
    assert (m["channel"].decode(), m["data"]) == ("__keyspace@0__:" + ns + "k:gone", b"expired"), m
    ps.punsubscribe("__keyspace@0__:" + ns + "k:*")
    assert next_message(ps)["type"] == "punsubscribe"
    # A handler, called from get_message; confirmations left out.
    got = []
    handled = c.pubsub(ignore_subscribe_messages=True)
    handled.subscribe(**{ns + "h": lambda m: got.append(m["data"])})
    assert handled.get_message(timeout=1) is None  # the confirmation, ignored
    c.publish(ns + "h", "one")
    c.publish(ns + "h", "two")
    import time

    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:
        handled.get_message(timeout=0.5)
    assert got == [b"one", b"two"], got
    handled.close()
    ps.unsubscribe()
    ps.punsubscribe()
    kinds = sorted(next_message(ps)["type"] for _ in range(2))
    assert kinds == ["punsubscribe", "unsubscribe"], kinds
    ps.close()
    assert c.pubsub_numsub(ns + "chan") == [((ns + "chan").encode(), 0)]
    c.config_set("notify-keyspace-events", "")


pipelines(r, "py:default:")
pubsub(r, "py:default:")
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
    pubsub(c, "py:%d:" % protocol)
print("redis-py", redis.__version__, "with its default protocol (RESP3), RESP2 and RESP3: plain, pipeline(transaction=False), pipeline() (MULTI/EXEC), WATCH, pubsub (channels, patterns, keyspace notifications, handlers): ok")
