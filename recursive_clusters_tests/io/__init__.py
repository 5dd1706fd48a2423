"""Tests of what reads and writes files (recursive_clusters/io)."""
