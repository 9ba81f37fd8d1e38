"""PyTorch reference of MAR + DiffLoss + DiSA sampling (LTH14/mar, MAR_DiSA), written
to follow the official code; used by the trainers and the golden generators."""
