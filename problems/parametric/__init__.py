"""Parametric optimisation (LISCO): DC3's QP, non-convex QP and Rosenbrock instances."""
