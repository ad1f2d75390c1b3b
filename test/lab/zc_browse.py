"""python-zeroconf ServiceBrowser in a lab host: prints JSON lines {ev: added|updated|removed, ...}.

usage: /usr/bin/python3 zc_browse.py _pp-node._tcp.local.
"""
import zc_guard  # noqa: F401  (must come first: refuses to run outside a lab host)

import json
import signal
import sys
import time

from zeroconf import IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf


def out(**ev):
    ev["t"] = int(time.time() * 1000)
    print(json.dumps(ev), flush=True)


def on_change(zeroconf, service_type, name, state_change):
    ev = {"ev": state_change.name.lower(), "name": name}
    if state_change is not ServiceStateChange.Removed:
        info = zeroconf.get_service_info(service_type, name, timeout=3000)
        if info:
            ev.update(
                server=info.server,
                port=info.port,
                addresses=info.parsed_addresses(),
                txt={k.decode(): (v or b"").decode() for k, v in info.properties.items()},
            )
    out(**ev)


zc = Zeroconf(ip_version=IPVersion.V4Only)
browser = None


def stop(*_):
    if browser:
        browser.cancel()
    zc.close()
    out(ev="stopped")
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)  # before "ready": the test may stop us right after it
browser = ServiceBrowser(zc, sys.argv[1], handlers=[on_change])
out(ev="ready")
while True:
    signal.pause()
