"""Delivering a done prediction: its outputs saved into ``out_dir`` and verified whole.

An item counts as delivered only once every output is on disk under its name and reads
back as a whole image (:mod:`.._verify`). What can go wrong here happens *after* billing,
so it is never a reason to submit again: an expired URL or a broken download is fetched
again by prediction id (fresh URLs) and downloaded once more; if that fails too, the
error is raised with the id kept, so a re-run fetches it again instead of paying again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import anyio
import anyio.to_thread

from .._base._exceptions import OutputExpired, OutputInvalid
from .._media._verify import DEFAULT_MAX_OUTPUT_BYTES, looks_whole, verify_image_file
from .._wire._parsing import Prediction
from ._names import output_stems

__all__ = ["Deliverer", "stale_parts"]


class _Saver(Protocol):
    async def get_prediction(self, prediction_id: str) -> Prediction: ...

    async def save_output(self, output: str, dest: str | os.PathLike[str]) -> Path: ...


async def stale_parts(out_dir: Path) -> list[Path]:
    """Half-written downloads (``.<name>.<hex>.part``) left in ``out_dir`` by a run that
    was killed; each item removes its own when it is claimed (a live run's are its own)."""

    def scan() -> list[Path]:
        try:
            return [p for p in out_dir.iterdir() if p.name.startswith(".") and p.suffix == ".part"]
        except OSError:
            return []

    return await anyio.to_thread.run_sync(scan)


class Deliverer:
    """Saves and verifies a prediction's outputs.

    Args:
        client: what downloads (``save_output``) and fetches a prediction again.
        out_dir: the output folder.
        max_in_flight: the most downloads at once.
        max_output_bytes: the size cap of one output file.
        stale: ``.part`` files found at start, removed when their item comes by.
    """

    def __init__(
        self,
        client: _Saver,
        out_dir: Path,
        *,
        max_in_flight: int,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        stale: Sequence[Path] = (),
    ) -> None:
        self._client = client
        self.out_dir = out_dir
        self._slots = anyio.CapacityLimiter(max_in_flight)
        self._max_bytes = max_output_bytes
        self._stale = list(stale)

    async def remove_stale(self, name: str) -> None:
        """Remove ``name``'s half-written downloads left by a killed run."""
        mine = [p for p in self._stale if p.name[1:].startswith(f"{name}.")]
        for path in mine:
            self._stale.remove(path)
            await anyio.Path(path).unlink(missing_ok=True)

    async def deliver(self, prediction: Prediction, name: str) -> tuple[Path, ...]:
        """Save every output of the done ``prediction`` as ``name`` (then ``name.2`` ... for
        several), verified; return the files.

        Raises:
            OutputExpired: no output listed, or still expired after fetching fresh URLs.
            OutputInvalid: still not a whole image after a second download.
            OSError: the disk refused (full, read-only): the caller keeps the id.
        """
        outputs = list(prediction.outputs)
        if not outputs:
            raise OutputExpired(f"prediction {prediction.id} is done but listed no outputs")
        files: list[Path] = []
        fresh = False
        for index, stem in enumerate(output_stems(name, len(outputs))):
            # One slot for the whole of an output, the second try included: a fresh URL
            # must not wait in the queue until it expires too.
            async with self._slots:
                try:
                    files.append(await self._save(outputs[index], stem))
                    continue
                except (OutputExpired, OutputInvalid):
                    if fresh:
                        raise
                # Signed URLs expire, and a storage hiccup can hand out a broken body: ask
                # for the prediction again (fresh URLs) and download once more.
                fresh = True
                outputs = list((await self._client.get_prediction(prediction.id)).outputs)
                if len(outputs) <= index:
                    raise OutputExpired(
                        f"prediction {prediction.id} listed {len(outputs)} outputs when "
                        "fetched again"
                    )
                files.append(await self._save(outputs[index], stem))
        return tuple(files)

    async def _save(self, output: str, stem: str) -> Path:
        path = await self._client.save_output(output, self.out_dir / stem)
        try:
            await anyio.to_thread.run_sync(self._verify, path)
        except OutputInvalid:
            await anyio.Path(path).unlink(missing_ok=True)
            raise
        return path

    def _verify(self, path: Path) -> None:
        verify_image_file(path, max_bytes=self._max_bytes)
        if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
            raise OutputInvalid(f"{path} was saved without an image suffix")

    async def verified(self, files: Sequence[str]) -> bool:
        """True when every one of ``files`` (delivered by an earlier run, verified then) is
        still there and still looks whole (a cheap check: its start and its end)."""
        if not files:
            return False

        def check() -> bool:
            return all(looks_whole(file, max_bytes=self._max_bytes) for file in files)

        return await anyio.to_thread.run_sync(check)
