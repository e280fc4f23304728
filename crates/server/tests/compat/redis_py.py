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
# A pipeline without MULTI (MULTI/EXEC belong to the transactions work).
p = r.pipeline(transaction=False)
p.set("py:a", 1).incr("py:a").get("py:a")
assert p.execute() == [True, 2, b"2"]
info = r.info()
assert info["redis_version"] and info["connected_clients"] >= 1, info
assert "db0" in r.info("keyspace")
# Explicit RESP3 and RESP2.
for protocol in (2, 3):
    c = redis.Redis(host="127.0.0.1", port=port, protocol=protocol)
    assert c.get("py:a") == b"2"
    assert int(c.client_info()["resp"]) == protocol
print("redis-py", redis.__version__, "with its default protocol (RESP3): ok")
