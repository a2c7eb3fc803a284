"""The stochastic SQP-momentum family: spring, butene, Burgers, Darcy (with its FNO)."""
