"""The learner: pure functions, no host loop. `config` (the leaf: static `PPOConfig`, traced
`PPOHyperparams`, member shapes; each tunable setting declared once on its field),
`networks` (actor-critic), `losses` (GAE, the clipped loss, masked statistics), `policies`
(the evaluation scan every policy plays: PPO's network, uniform random, the heuristics) and
`ppo` (one update, a chunk of updates, the whole run as one scan)."""
