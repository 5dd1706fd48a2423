"""Dagster assets: thin wrappers, one module per stage of the tree."""
