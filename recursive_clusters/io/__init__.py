"""Everything that reads or writes files: input tables and batches, a tree's files and its
DuckDB catalog, node models. ``core/`` computes figures, frames and models and never writes."""
