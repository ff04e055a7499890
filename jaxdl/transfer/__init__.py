"""Transfer learning: start from trained weights, freeze what should stay, train in phases.

pretrained (read a jaxdl checkpoint, match variables by path and shape, the load report),
phases (head-only then everything at lower rates).
"""
