"""Bybit v5 linear: native parser of the public tickers stream (pure)."""
