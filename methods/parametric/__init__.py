"""Methods of the parametric family: LISCO training and inference, the IPOPT / OSQP / batched
BoxOSQP baselines."""
