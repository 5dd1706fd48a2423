"""Node paths of a cluster tree (``root``, ``root.3``, ``root.3.1``): the one place where a
path is built, read, numbered, keyed for Dagster and seeded.

A ``NodePath`` is a ``str``, so it is a dict key, a JSON value, a Parquet value and a
directory name as it is; what it adds is that it is valid by construction (it never becomes
an arbitrary file name) and knows its parent, child number, level and seed.
"""

from __future__ import annotations

import re
import zlib

ROOT = "root"
NOISE_NAME = "noise"  # last part of the leaf that holds a split node's noise rows
_PATH_PATTERN = re.compile(r"^root(\.(0|[1-9][0-9]{0,5}))*$")

# Dynamic-partition keys of nodes at level >= 2 are ``<tree id>:<path>``, e.g.
# ``3fa2c1d09be47a10:root.3.1``. Why the tree id is in the key: successive trees (the same
# data again, new data, new settings) have nodes with the same paths. Keys that never collide
# across trees let a new tree add its partitions while the current tree's are still there,
# so no tick ever adds and deletes one key (Dagster's daemon refuses such a tick), and a user
# sees in the UI which tree each partition belongs to. Partitions of a tree are deleted once
# another tree has replaced it (see ``growth.plan_growth``).
PARTITION_KEY_SEPARATOR = ":"


class PathError(ValueError):
    """A string that is not a cluster path (and so must never become a file name)."""


class NodePath(str):
    """A validated node path."""

    __slots__ = ()

    def __new__(cls, path: str) -> NodePath:
        if isinstance(path, NodePath):
            return path
        if not isinstance(path, str) or not _PATH_PATTERN.match(path):
            raise PathError(f"Not a cluster path: {path!r} (expected e.g. 'root' or 'root.3.1')")
        return super().__new__(cls, path)

    @property
    def is_root(self) -> bool:
        return self == ROOT

    def child(self, index: int) -> NodePath:
        return NodePath(f"{self}.{int(index)}")

    @property
    def noise_leaf(self) -> str:
        """The leaf of this node's noise rows (not a node: it is never clustered)."""
        return f"{self}.{NOISE_NAME}"

    @property
    def parent(self) -> NodePath:
        if self.is_root:
            raise PathError("The root has no parent.")
        return NodePath(self.rsplit(".", 1)[0])

    @property
    def index(self) -> int:
        """This node's child number in its parent."""
        if self.is_root:
            raise PathError("The root is no parent's child.")
        return int(self.rsplit(".", 1)[1])

    @property
    def level(self) -> int:
        """The level at which the node is clustered: the root is level 1."""
        return self.count(".") + 1

    @property
    def depth(self) -> int:
        """Steps from the root: the root is at depth 0, its children at depth 1."""
        return self.count(".")

    def seed(self, random_state: int) -> int:
        """A per-node seed that depends only on the global seed and the path.

        Every node gets its own stream, yet the result of a node never depends on the order
        in which the nodes happen to be computed (sensor, CLI or parallel runs).
        """
        return (random_state * 1_000_003 + zlib.crc32(self.encode())) % (2**31 - 1)

    def partition_key(self, tree_id: str) -> str:
        """Dynamic-partition key of this node (level >= 2) in tree ``tree_id``."""
        if self.is_root:
            raise PathError("The root is not partitioned: it is the level-1 node.")
        if not tree_id or PARTITION_KEY_SEPARATOR in tree_id:
            raise PathError(f"Not a tree id for a partition key: {tree_id!r}")
        return f"{tree_id}{PARTITION_KEY_SEPARATOR}{self}"

    def descendants_key_prefix(self, tree_id: str) -> str:
        """What the partition key of every node below this one in ``tree_id`` starts with."""
        return f"{tree_id}{PARTITION_KEY_SEPARATOR}{self}."

    @classmethod
    def from_partition_key(cls, key: str) -> tuple[str, NodePath]:
        """Inverse of ``partition_key``: the tree id and the node's path."""
        tree_id, separator, path = key.partition(PARTITION_KEY_SEPARATOR)
        if not separator or not tree_id:
            raise PathError(f"Not a node partition key: {key!r} (expected '<tree id>:root.3')")
        return tree_id, cls(path)


def is_path(name: str) -> bool:
    """Whether ``name`` is a node path (e.g. a directory that holds a node's files)."""
    return isinstance(name, str) and bool(_PATH_PATTERN.match(name))


def leaf_sort_key(leaf: str) -> tuple[tuple[int, int], ...]:
    """Tree order of node and leaf paths: children by number, each node's noise leaf last."""
    return tuple((1, 0) if part == NOISE_NAME else (0, int(part)) for part in leaf.split(".")[1:])


def is_noise_leaf(leaf: str) -> bool:
    """Whether a leaf path is a split node's noise (``root.3.noise``)."""
    return leaf.endswith(f".{NOISE_NAME}")
