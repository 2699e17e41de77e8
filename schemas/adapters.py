"""The served adapter bundle on the wire: activating one, and which is served (admin only)."""

from typing import Annotated

import msgspec

BundleDirectory = Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]


class AdapterActivate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A bundle directory every replica can read (`recursum train levels --out`), or "none" for the bare
    model."""

    directory: BundleDirectory


class BundleRead(msgspec.Struct, kw_only=True):
    """One activation: the bundle made active, when and by whom. `version` digests the adapters' weights,
    as `recursum_model_info` and each node's `adapter_version` name them."""

    id: int
    directory: str | None  # None: the bare model
    version: str
    activated: float
    activated_by: str


class AdaptersRead(msgspec.Struct, kw_only=True):
    """The bundle every replica serves (the latest activation) and the one before it (the rollback
    target); what this replica serves and holds loaded (jobs finish on the bundle they started with)."""

    served: BundleRead | None
    previous: BundleRead | None
    replica: str
    serving_here: str
    directory_here: str | None  # the served bundle's directory here (None: bare, or adapters named singly)
    loaded_here: list[str]
