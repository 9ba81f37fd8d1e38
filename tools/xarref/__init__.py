"""PyTorch reference of xAR (next-X prediction with flow matching) and its DiSA sampler.

model.py follows xAR_DiSA/models/xar.py and models/rope.py of Qinyu-Allen-Zhao/DiSA
(the same module structure and state_dict names), sampler.py follows models/sampler.py.
"""
