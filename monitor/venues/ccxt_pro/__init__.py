"""ccxt.pro connector: Binance USDⓈ-M, Bybit, OKX and other ccxt exchanges that stream marks."""
