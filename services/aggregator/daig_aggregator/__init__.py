"""The aggregator: accepts or rejects results, closes rounds, writes weights and the final model."""
