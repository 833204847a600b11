"""Running the learner on the host's devices: `programs` (jitted and vmapped entry points, one
per static config), `sharding` and `population` (members split over devices), `driver` (the
one host loop: chunks, seeding, evaluation keys), `runs` (a configuration over seeds),
`cohorts` (many configurations as few populations, with reports and stopping), `sizing`,
`memory` and `cost` (population sizes, memory per member, FLOPs and compile seconds),
`checkpoints`, `schedule`, `saved_runs`, `baselines` and `evaluation`."""
