"""The PDE family of trSQP-PINN: 1-D transport, reaction, reaction-diffusion on a
space-time grid."""
