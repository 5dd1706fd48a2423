"""The Dagster code location: definitions, keys, resources, assets, planners, sensors, jobs."""
