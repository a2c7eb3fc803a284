"""Methods of the stochastic family: SQP-Adam, SQP heavy ball, SQP-SGD, Adam with / without
constraints."""
