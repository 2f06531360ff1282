"""Binance USDⓈ-M futures: native parser of the mark price streams (pure)."""
