"""Numba kernels of the hot paths.  Each kernel has a NumPy/Python twin
(same module, suffix ``_twin``) that gives identical bits; tests check it."""
