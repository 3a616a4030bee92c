"""The ``lightly-topo`` console script."""
