"""CTR models over long behaviour sequences; all take the same inputs, chosen by name."""
