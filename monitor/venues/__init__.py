"""Venue adapters: everything that talks to an exchange.

* ``parsing``, ``hyperliquid/parse``, ``dydx/parse``: PURE parsers, frame → events;
* ``backoff``, ``watchdog``: PURE reconnect delays and staleness tracking;
* ``feed``: the reconnecting WebSocket shell and the ``Feed`` protocol; ``hyperliquid/feed``,
  ``dydx/feed``: the native feeds; ``ccxt_pro``: Binance/Bybit/OKX and others through ccxt.pro;
* ``inbox``: the conflating queue between the feeds and the engine;
* ``recording``: JSONL recording of raw frames and deterministic replay;
* ``registry``: the explicit lists of parsers and feed builders.
"""
