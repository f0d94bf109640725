"""A small FastAPI service on one shared client: edit now, or queue a job for the batch worker.

Needs ``pip install fastapi uvicorn``::

    export ATLASCLOUD_API_KEY=...
    uvicorn examples.fastapi_service:app

    curl -X POST localhost:8000/edit -H 'content-type: application/json' \\
        -d '{"prompt": "...", "images": ["https://..."]}'
    curl -X POST localhost:8000/jobs -H 'content-type: application/json' \\
        -d '{"prompt": "...", "images": ["https://..."]}'
    curl localhost:8000/jobs/<job id>
    curl localhost:8000/progress            # the batch worker's live counters, as JSON
    curl -N localhost:8000/progress/stream  # the same as server-sent events, on each change

One :class:`AsyncSeedream` lives for the whole app (created in the lifespan), so every
request shares its connection pool and retry policy. ``/edit`` awaits one edit in the
request; ``/jobs`` puts the job on a queue that one background ``edit_batch`` consumes,
with its concurrency limit, rate limiting and journal shared by all jobs. FastAPI checks
the request bodies against the pydantic models below and answers 422 on its own.

Webhook completion: set ``SEEDREAM_WEBHOOK_URL`` to the public URL that reaches this
service's ``/atlas/webhooks/`` (for example ``https://api.example.com/atlas/webhooks/``;
keep the final slash, a mount redirects without it, and the sender does not follow);
``/edit`` then waits for Atlas Cloud's signed delivery instead of polling (polling stays
as a late fallback), received by the client's receiver mounted below.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, HttpUrl

from seedream_async import AsyncSeedream, BatchProgress, InvalidInput, SeedreamError

Job = dict[str, Any]


class EditRequest(BaseModel):
    """An edit: a prompt and 1 to 10 reference images, given as http(s) URLs.

    Web callers give URLs only: a path here would read files off this server.
    """

    prompt: str = Field(min_length=1, max_length=4000)
    images: list[HttpUrl] = Field(min_length=1, max_length=10)
    size: str | None = None
    max_images: int | None = Field(default=None, ge=1, le=15)
    seed: int | None = None

    def params(self) -> dict[str, Any]:
        """The optional request fields that were given."""
        return self.model_dump(include={"size", "max_images", "seed"}, exclude_none=True)

    def urls(self) -> list[str]:
        """The images as strings."""
        return [str(url) for url in self.images]


class Edited(BaseModel):
    """A finished edit."""

    id: str
    outputs: list[str]


class Queued(BaseModel):
    """A queued job's id; poll ``/jobs/{id}``."""

    id: str


class JobState(BaseModel):
    """A job's state, and its outputs once done."""

    status: str
    prediction_id: str | None = None
    outputs: list[str] = []
    error: str | None = None


class Progress(BaseModel):
    """The batch worker's live counters (:class:`BatchProgress`) and its derived totals."""

    queued: int
    uploading: int
    waiting: int
    running: int
    downloading: int
    succeeded: int
    failed: int
    ambiguous: int
    not_submitted: int
    from_journal: int
    executions: int
    spent: float
    concurrency_limit: int
    finished: int
    in_progress: int

    @classmethod
    def of(cls, progress: BatchProgress) -> Progress:
        """A snapshot of the live counters."""
        return cls(
            **dataclasses.asdict(progress),
            finished=progress.finished,
            in_progress=progress.in_progress,
        )


async def batch_worker(
    client: AsyncSeedream,
    queue: MemoryObjectReceiveStream[Job],
    jobs: dict[str, JobState],
    progress: list[BatchProgress],
) -> None:
    """Feed queued jobs into one long-running batch and record each result."""

    async def items() -> AsyncIterator[Job]:
        async with queue:
            async for job in queue:
                jobs[job["key"]].status = "running"
                yield job

    async with client.edit_batch(items(), concurrency=32) as run:
        progress.append(run.progress)  # read live by /progress
        async for result in run:
            jobs[result.key] = JobState(
                status=str(result.status),
                prediction_id=result.prediction_id,
                outputs=list(result.outputs),
                error=result.error_message,
            )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    send, receive = anyio.create_memory_object_stream[Job](max_buffer_size=1000)
    async with send, AsyncSeedream() as client, anyio.create_task_group() as group:
        app.state.client = client
        app.state.queue = send
        app.state.jobs = {}
        app.state.progress = []
        group.start_soon(batch_worker, client, receive, app.state.jobs, app.state.progress)
        yield
        group.cancel_scope.cancel()


def shared_client(request: Request) -> AsyncSeedream:
    """The app's one client (made in the lifespan)."""
    client: AsyncSeedream = request.app.state.client
    return client


Client = Annotated[AsyncSeedream, Depends(shared_client)]
app = FastAPI(title="seedream-async service", lifespan=lifespan)
WEBHOOK_URL = os.environ.get("SEEDREAM_WEBHOOK_URL")


async def webhook_receiver(scope: Any, receive: Any, send: Any) -> None:
    """Atlas Cloud's deliveries, handed to the shared client's verifying receiver."""
    await scope["app"].state.client.webhooks.app(scope, receive, send)


app.mount("/atlas/webhooks", webhook_receiver)


@app.post("/edit")
async def edit(body: EditRequest, client: Client) -> Edited:
    """Edit now: the response comes when the prediction is done."""
    try:
        completion = {"completion": "webhook", "webhook_url": WEBHOOK_URL} if WEBHOOK_URL else {}
        prediction = await client.edit(body.prompt, body.urls(), **completion, **body.params())
    except InvalidInput as err:
        raise HTTPException(422, {"error": str(err), "field": err.field}) from err
    except SeedreamError as err:
        raise HTTPException(502, {"error": str(err)}) from err
    return Edited(id=prediction.id, outputs=list(prediction.outputs))


@app.post("/jobs", status_code=202)
async def submit_job(body: EditRequest, request: Request) -> Queued:
    """Queue a job for the batch worker; poll ``/jobs/{id}`` for its result."""
    key = uuid.uuid4().hex
    request.app.state.jobs[key] = JobState(status="queued")
    queue: MemoryObjectSendStream[Job] = request.app.state.queue
    await queue.send({"key": key, "prompt": body.prompt, "images": body.urls(), **body.params()})
    return Queued(id=key)


@app.get("/jobs/{key}")
async def job_status(key: str, request: Request) -> JobState:
    """A queued job's state, and its outputs once done."""
    job: JobState | None = request.app.state.jobs.get(key)
    if job is None:
        raise HTTPException(404, "no such job")
    return job


def live_progress(request: Request) -> BatchProgress:
    """The batch worker's live counters (all zero until it has started)."""
    started: list[BatchProgress] = request.app.state.progress
    return started[0] if started else BatchProgress()


@app.get("/progress")
async def progress(request: Request) -> Progress:
    """The batch worker's live counters, now."""
    return Progress.of(live_progress(request))


@app.get("/progress/stream")
async def progress_stream(
    request: Request,
    interval: Annotated[float, Query(gt=0, le=60)] = 0.5,
    max_events: Annotated[int | None, Query(ge=1)] = None,
) -> StreamingResponse:
    """The live counters as server-sent events (``text/event-stream``): one ``progress``
    event at once, then one each time they change (checked every ``interval`` seconds),
    until the client goes away or ``max_events`` were sent."""

    async def events() -> AsyncIterator[str]:
        last, sent = None, 0
        while max_events is None or sent < max_events:
            snapshot = Progress.of(live_progress(request)).model_dump()
            if snapshot != last:
                yield f"event: progress\ndata: {json.dumps(snapshot)}\n\n"
                last, sent = snapshot, sent + 1
                continue
            if await request.is_disconnected():
                return
            await anyio.sleep(interval)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )
