"""Who may see and use a model of the catalogue: everyone (no audience, as for the models of the file), or its owner,
the groups it is shared with, and everyone once an administrator publishes it (a fine-tuned model starts as its
owner's alone).

Below the settings, like the model cards: the catalogue keeps a model's audience with its settings, so that every
process applies a change within ``SOCLE_CATALOGUE_REFRESH_S``.
"""
from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field


class _Caller(Protocol):
    """What the check needs of a principal (:class:`socle.identity.permissions.Principal`)."""

    @property
    def user_id(self) -> int: ...

    @property
    def group_ids(self) -> frozenset[int]: ...


class Audience(BaseModel):
    """The people a model is served to; anyone else is told the model does not exist (404)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    owner_id: int = Field(ge=1, description="The user who owns the model (who trained it)")
    group_ids: tuple[int, ...] = Field(default=(), description="Groups whose members may use it")
    public: bool = Field(default=False, description="Every user may use it (an administrator published it)")

    def admits(self, caller: _Caller) -> bool:
        return (self.public or caller.user_id == self.owner_id
                or any(group in caller.group_ids for group in self.group_ids))
