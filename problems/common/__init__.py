"""Pieces every problem family shares: validation and config errors (base), networks and
activations (networks), cached data."""
