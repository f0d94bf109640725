"""A small web service on one shared client: edit now, or queue a job for the batch worker.

Written with Starlette (FastAPI is Starlette underneath; the same lifespan and handlers
work there). Needs ``pip install starlette uvicorn``::

    export ATLASCLOUD_API_KEY=...
    uvicorn examples.fastapi_service:app

    curl -X POST localhost:8000/edit -d '{"prompt": "...", "images": ["https://..."]}'
    curl -X POST localhost:8000/jobs -d '{"prompt": "...", "images": ["https://..."]}'
    curl localhost:8000/jobs/<job id>

One :class:`AsyncSeedream` lives for the whole app (created in the lifespan), so every
request shares its connection pool and retry policy. ``/edit`` awaits one edit in the
request; ``/jobs`` puts the job on a queue that one background ``edit_batch`` consumes,
with its concurrency limit, rate limiting and journal shared by all jobs.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from seedream_async import AsyncSeedream, InvalidInput, SeedreamError

Job = dict[str, Any]


async def batch_worker(
    client: AsyncSeedream, queue: MemoryObjectReceiveStream[Job], jobs: dict[str, Job]
) -> None:
    """Feed queued jobs into one long-running batch and record each result."""

    async def items() -> AsyncIterator[Job]:
        async with queue:
            async for job in queue:
                jobs[job["key"]]["status"] = "running"
                yield job

    async with client.edit_batch(items(), concurrency=32) as run:
        async for result in run:
            jobs[result.key].update(
                status=str(result.status),
                prediction_id=result.prediction_id,
                outputs=list(result.outputs),
                error=result.error_message,
            )


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    send, receive = anyio.create_memory_object_stream[Job](max_buffer_size=1000)
    async with send, AsyncSeedream() as client, anyio.create_task_group() as group:
        app.state.client = client
        app.state.queue = send
        app.state.jobs = {}
        group.start_soon(batch_worker, client, receive, app.state.jobs)
        yield
        group.cancel_scope.cancel()


async def _edit_fields(request: Request) -> tuple[str, list[str], dict[str, Any]]:
    body = await request.json()
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    images = body.get("images")
    # Web callers give URLs only: a path here would read files off this server.
    if not isinstance(images, list) or not all(
        isinstance(url, str) and url.startswith(("https://", "http://")) for url in images
    ):
        raise InvalidInput("images must be a list of http(s) URLs", field="images")
    params = {name: body[name] for name in ("size", "max_images", "seed") if name in body}
    return str(body.get("prompt", "")), images, params


async def edit(request: Request) -> JSONResponse:
    """Edit now: the response comes when the prediction is done."""
    client: AsyncSeedream = request.app.state.client
    try:
        prompt, images, params = await _edit_fields(request)
        prediction = await client.edit(prompt, images, **params)
    except InvalidInput as err:
        return JSONResponse({"error": str(err), "field": err.field}, status_code=422)
    except SeedreamError as err:
        return JSONResponse({"error": str(err)}, status_code=502)
    return JSONResponse({"id": prediction.id, "outputs": prediction.outputs})


async def submit_job(request: Request) -> JSONResponse:
    """Queue a job for the batch worker; poll ``/jobs/{id}`` for its result."""
    try:
        prompt, images, params = await _edit_fields(request)
    except InvalidInput as err:
        return JSONResponse({"error": str(err), "field": err.field}, status_code=422)
    key = uuid.uuid4().hex
    request.app.state.jobs[key] = {"status": "queued"}
    await request.app.state.queue.send({"key": key, "prompt": prompt, "images": images, **params})
    return JSONResponse({"id": key}, status_code=202)


async def job_status(request: Request) -> JSONResponse:
    """A queued job's state, and its outputs once done."""
    job = request.app.state.jobs.get(request.path_params["key"])
    if job is None:
        return JSONResponse({"error": "no such job"}, status_code=404)
    return JSONResponse(job)


app = Starlette(
    routes=[
        Route("/edit", edit, methods=["POST"]),
        Route("/jobs", submit_job, methods=["POST"]),
        Route("/jobs/{key}", job_status),
    ],
    lifespan=lifespan,
)
