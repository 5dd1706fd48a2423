"""Operations on a stored tree, without Dagster: publish it, name its clusters, score new rows
with it. The assets, the sensors and the CLI call these."""
