#!/usr/bin/env python3
"""Print command-table rows (crates/concord-resp/src/command/table.rs) for Redis commands, copied
from a running redis-server's COMMAND INFO and COMMAND DOCS, so the table says exactly what Redis 7
says (cluster clients route by it, and tests/cluster.rs compares the two).

    redis-server --port 7999 --save '' --daemonize yes
    python3 tools/command-rows.py 7999 hset hget hdel > /tmp/rows.rs

A command whose key spec is not "index 1, range" (the only shape the table models) is printed as a
comment to handle by hand.
"""
import sys
import redis

port, names = int(sys.argv[1]), sys.argv[2:]
r = redis.Redis(port=port, decode_responses=True)


def pairs(flat):
    return dict(zip(flat[::2], flat[1::2]))


def raw(*args):
    """A command's reply without redis-py's parsing callbacks (which misread COMMAND DOCS)."""
    conn = r.connection_pool.get_connection()
    try:
        conn.send_command(*args)
        return conn.read_response()
    finally:
        r.connection_pool.release(conn)


def rust_list(items):
    return "&[" + ", ".join(f'"{i}"' for i in items) + "]"


for name in names:
    info = r.execute_command("COMMAND", "INFO", name)[name]
    docs = raw("COMMAND", "DOCS", name)
    doc = docs[name] if isinstance(docs, dict) else pairs(docs)[name]
    doc = pairs(doc) if isinstance(doc, list) else doc
    arity, flags, acl, tips = info["arity"], info["flags"], info["acl_categories"], info["tips"]
    first, last, step = info["first_key_pos"], info["last_key_pos"], info["step_count"]
    keyspecs = info["key_specifications"]
    summary = doc.get("summary", "").replace('"', '\\"')
    row = (
        f'    spec("{name}", {arity}, {rust_list(flags)}, ({first}, {last}, {step}), "{doc.get("group")}", '
        f'"{doc.get("since")}", "{summary}")\n        .acl({rust_list(acl)})'
    )
    if tips:
        row += f"\n        .tips({rust_list(tips)})"
    if keyspecs:
        if len(keyspecs) > 1:
            print(f"    // {name}: {len(keyspecs)} key specs – write by hand: {keyspecs}")
            continue
        spec = keyspecs[0]
        begin, find = spec["begin_search"], spec["find_keys"]
        if begin["type"] != "index" or begin["spec"]["index"] != 1 or find["type"] != "range":
            print(f"    // {name}: key spec {spec} – write by hand")
            continue
        row += f"\n        .key_spec({rust_list(spec['flags'])})"
        if spec.get("notes"):
            row += f'\n        .notes("{spec["notes"]}")'
    print(row + ",")
