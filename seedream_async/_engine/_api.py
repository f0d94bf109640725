"""The few calls the batch engine needs from a client: the engine's only view of one.

:class:`~seedream_async.AsyncSeedream` implements it; tests may hand the engine's parts a
small fake instead. The engine never reaches for a client's other attributes.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Protocol

from .._base._observe import Observer
from .._network._driver import RefusedHook
from .._network._upload import PreparedUpload, UploadRules
from .._policies._polling import PollPolicy
from .._webhook._completion import Webhooks
from .._wire._parsing import Prediction, UploadedMedia
from .._wire._pricing import PriceModel
from .._wire._requests import EditRequest

__all__ = ["EngineAPI", "PollAPI", "RefusedHook"]


class PollAPI(Protocol):
    """What the poll scheduler needs: a prediction's state, and the rate-limit pressure."""

    @property
    def rate_limited_at(self) -> float:
        """When the API last answered 429, on the event loop's clock (``-inf`` if never)."""
        ...

    async def get_prediction(self, prediction_id: str) -> Prediction:
        """Fetch a prediction's current state."""
        ...


class EngineAPI(PollAPI, Protocol):
    """Upload, submit, get a prediction, save an output, and the settings that go with them."""

    @property
    def upload_rules(self) -> UploadRules:
        """What an image must be before it is uploaded (checked before any request)."""
        ...

    @property
    def price_per_execution(self) -> float:
        """US dollars per submitted prediction."""
        ...

    @property
    def price(self) -> PriceModel:
        """How the API bills the default model, for the budget and cost figures."""
        ...

    def price_for(self, model: str) -> PriceModel:
        """How the API bills a prediction of ``model``: the user's price, else its own."""
        ...

    @property
    def poll(self) -> PollPolicy:
        """The polling policy a batch uses unless its options give one."""
        ...

    @property
    def rng(self) -> random.Random:
        """The random source for jitter."""
        ...

    @property
    def webhooks(self) -> Webhooks:
        """The receiver ``completion="webhook"`` records deliveries through."""
        ...

    @property
    def observer(self) -> Observer:
        """Told what happens to each item (see :class:`~seedream_async.Observer`)."""
        ...

    async def upload_prepared(
        self, prepared: PreparedUpload, *, keep_trying_for: float | None = None
    ) -> UploadedMedia:
        """Upload a checked image; go on with passing failures for ``keep_trying_for`` s."""
        ...

    async def submit(
        self, request: EditRequest, *, on_refused: RefusedHook | None = None
    ) -> Prediction:
        """Submit a prediction; ``on_refused`` takes over 429 and 503."""
        ...

    async def save_output(self, output: str, dest: str | os.PathLike[str]) -> Path:
        """Save one output (a URL or base64) to ``dest``; return the final path."""
        ...
