"""Methods of the neural-DAE family: simultaneous collocation + IPOPT, the sequential baseline, the
network Hessian for IPOPT."""
