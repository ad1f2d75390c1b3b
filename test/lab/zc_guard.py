"""Refuses to run outside a lab host (see netlab.ts): imported first by the zc_*.py helpers."""
import os
import socket
import sys


def _refusal():
    if not os.environ.get("PP_LAB"):
        return "PP_LAB is not set (start me through Lab.spawn)"
    root = os.environ.get("PP_LAB_ROOT_NETNS")
    if not root:
        return "PP_LAB_ROOT_NETNS is not set"
    if os.readlink("/proc/self/ns/net") == root:
        return "this is the test runner network namespace"
    names = sorted(name for _, name in socket.if_nameindex())
    if any(n not in ("lo", "lan0") for n in names):
        return "unexpected interfaces: " + ", ".join(names)
    with open("/proc/self/net/route") as f:
        if any(line.split()[1] == "00000000" for line in f.readlines()[1:] if line.split()):
            return "this namespace has a default route"
    return None


_why = _refusal()
if _why:
    sys.stderr.write("zeroconf helper: refusing to run: %s\n" % _why)
    sys.exit(2)
