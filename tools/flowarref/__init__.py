"""PyTorch reference of FlowAR (scale-wise autoregression with a flow-matching head)."""
