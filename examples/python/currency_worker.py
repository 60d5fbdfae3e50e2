"""The currency worker of Pyro's tutorial, in Python: serves `get_rate` as `currency.worker`
on the given port, so a Rust proxy can call it (`examples/currency_python_client.rs`).

Run with: python examples/python/currency_worker.py [PORT]
"""
import sys

import Pyro5.api

RATES = {"EUR/USD": 1.0842, "GBP/USD": 1.2671, "USD/JPY": 151.37}


@Pyro5.api.expose
class Worker:
    def get_rate(self, pair):
        try:
            return RATES[pair.upper()]
        except KeyError:
            raise ValueError("no rate known for " + pair) from None

    def echo(self, value):
        return value


port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
daemon = Pyro5.api.Daemon(host="127.0.0.1", port=port)
uri = daemon.register(Worker, "currency.worker")
print(uri, flush=True)
daemon.requestLoop()
