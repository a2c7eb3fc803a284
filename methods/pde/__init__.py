"""Methods of the PDE family: trSQP (Algorithm 3), penalty / augmented Lagrangian baselines,
pretraining, quasi-Newton updates."""
