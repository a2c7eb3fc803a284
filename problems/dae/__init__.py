"""Neural DAEs trained by collocation: the family's base, the Radau grid, tank, predator-prey,
bioreactor."""
