"""Model cards: what a person reads about a model before choosing it (AI Act transparency).

Below the settings and the backends alike: the catalogue's YAML may write a model's card, and a backend
that serves a bundled model brings that model's own.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ModelCard(BaseModel):
    """What a person reads about a model before choosing it (AI Act transparency), shown by the UI and
    ``/v1/models``. The bundled models have theirs built in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field(default="", max_length=2000, description="What the model is, in French, for the "
                             "people who choose it")
    provider: str = Field(max_length=200, description="Who made the model")
    license: str = Field(max_length=200)
    intended_use: str = Field(max_length=2000, description="What it is for")
    limitations: str = Field(default="", max_length=2000, description="What it does badly, or must not do")
    languages: list[str] = Field(default_factory=list, description="Languages it handles well (ISO 639-1)")
    runs_on: str = Field(default="", max_length=500, description="Where it runs, in words a user understands "
                         "(never a server's address)")
    url: str | None = Field(default=None, max_length=500, description="Where to read more (its model card)")
    demonstration: bool = Field(default=False, description="A demonstration model: it proves the platform works "
                                "but writes no reliable answer, so questions about documents are answered by "
                                "extracts unless the person asks for its answer")
