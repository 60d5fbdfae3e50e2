"""The currency client of Pyro's tutorial, unchanged Python Pyro5: finds `MyWorker` through the
nameserver by name and asks it for rates. Our Rust worker and nameserver serve it.

Run with: python examples/python/currency_client.py [PAIR ...]
(PYRO_NS_HOST / PYRO_NS_PORT say where the nameserver is; PYRO_SERIALIZER=json switches from
serpent to JSON.)
"""
import sys

import Pyro5.api
import Pyro5.errors

pairs = sys.argv[1:] or ["EUR/USD", "GBP/USD", "USD/JPY"]
worker = Pyro5.api.Proxy("PYRONAME:MyWorker")
for pair in pairs:
    try:
        print(pair, "=", worker.get_rate(pair))
    except RuntimeError as error:
        print(pair + ":", error)
