"""The tree's shape, fixed by the chunk count and the budgets before anything is generated.

A merge reads `fan_in` consecutive children: as many as fit in `merge_tokens` if every child summary
were full length (`summary_tokens`), at most `max_children`. Because the shape does not wait on what the
summaries say, a merge is ready as soon as its own children are (the scheduler never waits for a whole
height), and an estimate counts the real tree's nodes exactly.

Heights merge in groups until a height has at most `max_children` nodes; that height's root either
composes them (their words fit in `root_words`: decided once the height is done) or merges them all.
"""

import msgspec

from recursum.service.engine.pipeline.tree import TreeConfig


class TreeShape(msgspec.Struct, frozen=True, kw_only=True):
    """Node counts per height (leaves first; the last is the root's 1) and the grouping between them."""

    levels: tuple[int, ...]
    fan_in: int
    top_children: int  # a height this small goes straight to the root

    def groups(self, height: int) -> list[range]:
        """The child index ranges of the nodes at `height + 1`: all of a top height, else `fan_in`
        consecutive children each, a lone last child joining the group before it."""
        size = self.levels[height]
        if size <= self.top_children:
            return [range(size)]
        starts = list(range(0, size, self.fan_in))
        if size - starts[-1] == 1:
            starts.pop()
        return [range(start, end) for start, end in zip(starts, starts[1:] + [size], strict=True)]

    def parent(self, height: int, index: int) -> int:
        """The index at `height + 1` of the node whose children include (`height`, `index`)."""
        return next(g for g, children in enumerate(self.groups(height)) if index in children)


def fan_in(config: TreeConfig) -> int:
    return max(2, min(config.max_children, config.merge_tokens // config.summary_tokens))


def tree_shape(chunks: int, config: TreeConfig) -> TreeShape:
    """The shape of the tree over `chunks` leaves under `config`."""
    shape = TreeShape(levels=(chunks,), fan_in=fan_in(config), top_children=config.max_children)
    while shape.levels[-1] > 1:
        above = len(shape.groups(len(shape.levels) - 1))
        shape = msgspec.structs.replace(shape, levels=shape.levels + (above,))
    return shape
