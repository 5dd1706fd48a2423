"""Labelled synthetic tables with known structure (or none), for tests and quality benchmarks.

Every generator is pure numpy, deterministic for a seed and needs no network. Distances are in
units of the within-cluster standard deviation (1 per feature), so a separation reads as "how
many noise widths apart" the centres are.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def _orthonormal(n_features: int, n_directions: int, rng: np.random.Generator) -> np.ndarray:
    """``n_directions`` random orthonormal rows: centres on them are pairwise equidistant
    and not aligned with the feature axes (so no single column gives the structure away)."""
    if n_directions > n_features:
        raise ValueError(f"Need n_features >= {n_directions} directions, got {n_features}.")
    q, _ = np.linalg.qr(rng.standard_normal((n_features, n_directions)))
    return q.T


def _split_sizes(n_rows: int, n_parts: int, rng: np.random.Generator) -> np.ndarray:
    """Near-equal part sizes summing to ``n_rows``; which parts get the remainder is random."""
    sizes = np.full(n_parts, n_rows // n_parts)
    sizes[rng.permutation(n_parts)[: n_rows % n_parts]] += 1
    return sizes


def gaussian_blob(n_rows: int, n_features: int, seed: int) -> np.ndarray:
    """One isotropic standard Gaussian: no cluster structure at all."""
    return np.random.default_rng(seed).standard_normal((n_rows, n_features))


def structure_free(n_rows: int, n_features: int, kind: str, seed: int) -> np.ndarray:
    """A single-population table of a given shape, for testing against spurious splits.

    ``gaussian``: isotropic; ``anisotropic``: a Gaussian whose feature variances decay like
    1/k (a long principal axis invites a cut in two); ``uniform``: a hypercube (flat, no
    mode); ``student_t``: heavy tails with 3 degrees of freedom (outliers make islands).
    """
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.standard_normal((n_rows, n_features))
    if kind == "anisotropic":
        scales = 1.0 / np.sqrt(np.arange(1, n_features + 1))
        rotation = _orthonormal(n_features, n_features, rng)
        return (rng.standard_normal((n_rows, n_features)) * scales) @ rotation
    if kind == "uniform":
        return rng.uniform(-np.sqrt(3), np.sqrt(3), size=(n_rows, n_features))
    if kind == "student_t":
        return rng.standard_t(3, size=(n_rows, n_features))
    raise ValueError(f"Unknown structure-free kind {kind!r}")


def planted_hierarchy(
    n_rows: int,
    n_features: int,
    n_top: int,
    n_sub: int,
    top_separation: float,
    sub_separation: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A two-level hierarchy: ``n_top`` groups, each made of ``n_sub`` Gaussian leaves.

    Group centres are pairwise ``top_separation`` apart; inside a group the leaf centres are
    pairwise ``sub_separation`` apart, along directions orthogonal to the group directions.
    With ``sub_separation`` well below ``top_separation`` the whole-table embedding sees the
    groups, and the leaves only separate once a group is embedded on its own.

    Returns (X, top label per row, leaf label per row); leaf ``t * n_sub + s`` is leaf ``s``
    of group ``t``. Rows are shuffled.
    """
    chunks = list(
        planted_hierarchy_chunks(
            n_rows, n_features, n_top, n_sub, top_separation, sub_separation, seed, n_rows
        )
    )
    return tuple(np.concatenate(parts) for parts in zip(*chunks, strict=True))


def planted_hierarchy_chunks(
    n_rows: int,
    n_features: int,
    n_top: int,
    n_sub: int,
    top_separation: float,
    sub_separation: float,
    seed: int,
    chunk_rows: int,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``planted_hierarchy``'s rows, the same values, in consecutive chunks of at most
    ``chunk_rows`` rows: tens of millions of rows can be written without holding them all
    (the generator draws its noise in row order, so the chunks concatenate to the whole)."""
    if n_top < 1 or n_sub < 1:
        raise ValueError("n_top and n_sub must be at least 1.")
    rng = np.random.default_rng(seed)
    directions = _orthonormal(n_features, n_top + n_sub, rng)
    top_centres = directions[:n_top] * top_separation / np.sqrt(2)
    sub_offsets = directions[n_top:] * sub_separation / np.sqrt(2)
    n_leaves = n_top * n_sub
    leaf = np.repeat(np.arange(n_leaves), _split_sizes(n_rows, n_leaves, rng))
    leaf = leaf[rng.permutation(n_rows)]
    for start in range(0, max(n_rows, 1), max(1, chunk_rows)):  # 0 rows: one empty chunk
        part = leaf[start : start + chunk_rows]
        top = part // n_sub
        centres = top_centres[top] + sub_offsets[part % n_sub]
        yield centres + rng.standard_normal((len(part), n_features)), top, part


def gaussian_mixture(
    n_rows: int,
    n_features: int,
    n_clusters: int,
    separation: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """A flat mixture with unequal weights and anisotropic shapes, as real tables have.

    Weights are drawn from a Dirichlet(2) (the smallest cluster is usually several times
    smaller than the largest); each cluster's feature scales lie in [0.5, 1.5] and the
    centres are pairwise ``separation`` apart. Returns (X, cluster label per row).
    """
    rng = np.random.default_rng(seed)
    centres = _orthonormal(n_features, n_clusters, rng) * separation / np.sqrt(2)
    weights = rng.dirichlet(np.full(n_clusters, 2.0))
    labels = rng.choice(n_clusters, size=n_rows, p=weights)
    scales = rng.uniform(0.5, 1.5, size=(n_clusters, n_features))
    X = centres[labels] + rng.standard_normal((n_rows, n_features)) * scales[labels]
    return X, labels


def nested_grid_hierarchy(
    branching: int, levels: int, rows_per_leaf: int, seed: int, leaf_separation: float = 5.0
) -> tuple[np.ndarray, np.ndarray]:
    """A tree of ``levels`` levels below the root, each node with ``branching`` children, in
    two columns: ``branching ** levels`` leaves of ``rows_per_leaf`` rows at a small cost per
    node, to grow trees with thousands of nodes.

    Each node lays its children on a square grid centred on it; a level's grid spacing is
    twice its side times the spacing of the level below, so the gap between two groups is
    wider than a group's own grid and each level separates only once its parent is zoomed
    into. All levels share the two columns, so standardising scales every level alike. The
    leaves' centres are ``leaf_separation`` noise widths apart: at 5, each leaf of 20 rows is
    its own cluster, and yet its 15 nearest neighbours tie it to its siblings, so the k-NN
    graph has one piece per group (UMAP's start for thousands of disconnected pieces takes
    many minutes). Returns (X, labels):
    ``labels[:, k]`` is each row's node index at level ``k + 1`` (0 .. branching ** (k+1) - 1).
    Rows are shuffled.
    """
    if branching < 2 or levels < 1 or rows_per_leaf < 1:
        raise ValueError("Need branching >= 2, levels >= 1 and rows_per_leaf >= 1.")
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(branching)))
    grid = np.stack(np.divmod(np.arange(branching), side), axis=1) - (side - 1) / 2
    leaf = rng.permutation(np.repeat(np.arange(branching**levels), rows_per_leaf))
    labels = np.stack([leaf // branching ** (levels - k - 1) for k in range(levels)], axis=1)
    X = rng.standard_normal((len(leaf), 2))
    spacing = leaf_separation
    for k in reversed(range(levels)):
        X += grid[labels[:, k] % branching] * spacing
        spacing *= 2 * side
    return X, labels
