"""Learning rounds: the round itself, its runner (jobs and schedule), the trainer process and how it is launched,
the training set, distillation, the gate and the adapter store."""
