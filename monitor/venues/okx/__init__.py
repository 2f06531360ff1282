"""OKX v5 public: native parser of the mark-price and funding-rate channels (pure)."""
