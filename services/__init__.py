"""DAIG's server processes: the API, the scheduler and the aggregator."""
