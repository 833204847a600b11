"""The game and all that only plays it: scenarios, rules, opponents, the env."""
