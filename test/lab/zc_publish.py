"""python-zeroconf registers a service in a lab host; SIGTERM unregisters it (goodbye).

usage: /usr/bin/python3 zc_publish.py TYPE INSTANCE PORT TXT_JSON   (address: $PP_LAB_ADDR)
"""
import zc_guard  # noqa: F401  (must come first: refuses to run outside a lab host)

import json
import os
import signal
import socket
import sys
import time

from zeroconf import IPVersion, ServiceInfo, Zeroconf


def out(**ev):
    ev["t"] = int(time.time() * 1000)
    print(json.dumps(ev), flush=True)


type_, instance, port, txt = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
info = ServiceInfo(
    type_,
    instance + "." + type_,
    port=port,
    addresses=[socket.inet_aton(os.environ["PP_LAB_ADDR"])],
    server=socket.gethostname() + "-zc.local.",
    properties=txt,
)
zc = Zeroconf(ip_version=IPVersion.V4Only)


def stop(*_):
    try:
        zc.unregister_service(info)  # goodbye
    finally:
        zc.close()
    out(ev="stopped")
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)  # before "registered": the test may stop us right after it
t0 = int(time.time() * 1000)
zc.register_service(info)
out(ev="registered", t0=t0)
while True:
    signal.pause()
