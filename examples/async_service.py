"""An asyncio web service (Starlette; FastAPI works the same way) that runs orders as
steadyhand workflows through `AsyncClient`:

    POST   /orders                 {"sku": "A-1", "quantity": 2}  -> 202 {"id": ...}
    GET    /orders/{id}?wait=10    the order's status, waiting up to 10 s for its end
    POST   /orders/{id}/approve    record the "approved" event the order waits for
    DELETE /orders/{id}            cancel (what was done is compensated)
    GET    /orders?state=completed one page of orders (cursor= for the next)

Run it: `.venv/bin/python examples/async_service.py` (it also runs a worker in the
process; in production run `steadyhand worker --app examples.async_service:app` apart).
"""

from __future__ import annotations

import argparse
import contextlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from steadyhand import App, AsyncClient, Context, InputError, NotFoundError, Step, Worker

app = App()


@dataclass
class Order:
    sku: str
    quantity: int


@app.agent()
def reserve(ctx: Context, order: Order) -> dict[str, Any]:
    """Reserve stock (a real agent would call the inventory service with ctx.idempotency_key)."""
    return {"reserved": order.quantity, "sku": order.sku}


@app.agent()
def release(ctx: Context) -> dict[str, Any]:
    return {"released": True}


app.workflow(
    "order",
    [Step("reserve", reserve, release), Step("approval", wait_for="approved", deadline=3600)],
)


def create_service(db: str) -> Starlette:
    """The web service, bound to the store at `db` (opened at start-up, closed at exit)."""
    state: dict[str, AsyncClient] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        state["client"] = app.connect_async(db)
        try:
            yield
        finally:
            await state["client"].aclose()

    def client() -> AsyncClient:
        return state["client"]

    async def create(request: Request) -> JSONResponse:
        body = await request.json()
        try:
            started = await client().start(
                "order", body, key=request.headers.get("idempotency-key")
            )
        except InputError as exc:
            return JSONResponse({"error": str(exc)}, 422)
        return JSONResponse({"id": started.workflow_id, "created": started.created}, 202)

    async def show(request: Request) -> JSONResponse:
        workflow_id = request.path_params["id"]
        try:
            wait = float(request.query_params.get("wait", "0"))
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await client().wait(workflow_id, timeout=min(wait, 60))
            status = await client().status(workflow_id)
        except NotFoundError as exc:
            return JSONResponse({"error": str(exc)}, 404)
        except ValueError:
            return JSONResponse({"error": "wait must be a number of seconds"}, 400)
        return JSONResponse(status.to_json())

    async def approve(request: Request) -> JSONResponse:
        try:
            sent = await client().signal(
                "approved", {"by": "api"}, workflow_id=request.path_params["id"]
            )
        except NotFoundError as exc:
            return JSONResponse({"error": str(exc)}, 404)
        return JSONResponse({"recorded": sent.recorded})

    async def cancel(request: Request) -> JSONResponse:
        try:
            status = await client().cancel(request.path_params["id"], "cancelled via the API")
        except NotFoundError as exc:
            return JSONResponse({"error": str(exc)}, 404)
        return JSONResponse({"state": status.state})

    async def listing(request: Request) -> JSONResponse:
        q = request.query_params
        try:
            page = await client().list(
                name="order", state=q.get("state") or None, cursor=q.get("cursor") or None
            )
        except InputError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        rows = [{"id": r.id, "state": r.state, "step": r.step} for r in page.rows]
        return JSONResponse({"orders": rows, "next_cursor": page.next_cursor})

    return Starlette(
        routes=[
            Route("/orders", create, methods=["POST"]),
            Route("/orders", listing, methods=["GET"]),
            Route("/orders/{id}", show, methods=["GET"]),
            Route("/orders/{id}", cancel, methods=["DELETE"]),
            Route("/orders/{id}/approve", approve, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    import uvicorn

    from steadyhand import open_store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite:///async_service.db")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    store = open_store(args.db)
    worker = Worker(app, store)
    thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False})
    thread.start()
    try:
        uvicorn.run(create_service(args.db), host="127.0.0.1", port=args.port)
    finally:
        worker.stop()
        thread.join()
        store.close()


if __name__ == "__main__":
    main()
