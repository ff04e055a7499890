"""The playground's HTTP side: a Starlette app over `Sessions`, and the `python -m jaxdl.playground` command.

    python -m jaxdl.playground [--host 127.0.0.1] [--port 8000] [--max_sessions 16] [--idle_minutes 10]
                               [--runs_dir runs] [--debug]

Routes (JSON in, JSON out; a bad message gets a 4xx and {"error": "..."}, never a crash):
  GET  /                          the page
  GET  /health                    {"status": "ok", "sessions": N, ...}
  POST /api/session               {settings} -> {"session", "settings", "query", "points", "view"}
  POST /api/session/ID/settings   {settings} -> the same, for new settings (fresh points and weights)
  POST /api/session/ID/step       {"epochs": N (0..100) or null: as many as fit in ~40 ms} -> {"view"}
  POST /api/session/ID/reset      {} -> {"view"}: fresh weights
  POST /api/session/ID/compare    {"vary": FIELD, "values": [...]} (2..8) or {"vary": null} -> {"points", "view"}
  POST /api/session/ID/save       {"name": NAME} -> {"workdir", "test"}: a complete run in RUNS_DIR/NAME
  DELETE /api/session/ID          frees the session
Settings: see `jaxdl.playground.settings`. A view: see `jaxdl.playground.session.Session.describe`.

Fair sharing: every training call (a chunk of about 40 ms, see `jaxdl.playground.session`) runs
in one worker thread, first come first served; each tab asks for its next chunk only when the last
one came back, so tabs take turns chunk by chunk and none holds the others up for longer than
a chunk. Starting a comparison (whose first call compiles the program of that many members, a
few seconds, if no tab used that many yet) and saving a run run in a second worker, so they do not
stop the training of other tabs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from jaxdl.deploy.command import parse_flags, run_command
from jaxdl.deploy.serve import listen, number_flag
from jaxdl.errors import InputError, check_range
from jaxdl.playground import settings as settings_lib
from jaxdl.playground.page import PAGE
from jaxdl.playground.save_run import save_run
from jaxdl.playground.session import Session, SessionError, Sessions

USAGE = ("usage: python -m jaxdl.playground [--host 127.0.0.1] [--port 8000] [--max_sessions 16] "
         "[--idle_minutes 10] [--runs_dir runs] [--debug]")
MAX_BODY = 1 << 16  # settings fit in a few hundred bytes
MAX_EPOCHS = 100  # per call: no call holds the worker (and the other tabs) for long
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


async def json_body(request: Request) -> dict:
    """The request's JSON object ({} for an empty body); SessionError 413 / 400 otherwise."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise SessionError(413, f"body: more than {MAX_BODY} bytes")
    if not body.strip():
        return {}
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SessionError(400, f"body: not JSON ({error})") from None
    if not isinstance(payload, dict):
        raise SessionError(400, "body: not a JSON object")
    return payload


def epochs_of(payload: dict) -> int | None:
    epochs = payload.get("epochs")
    if epochs is None:
        return None
    check_range("epochs", epochs, low=0, high=MAX_EPOCHS, integer=True)
    return epochs


def create_app(*, max_sessions: int = 16, idle_seconds: float = 600.0, runs_dir: str = "runs",
               warm_up: bool = True) -> Starlette:
    """The app (routes in the module docstring). `warm_up` compiles the one-member program before serving."""
    sessions = Sessions(max_sessions, idle_seconds)
    train_pool = ThreadPoolExecutor(1, thread_name_prefix="playground-train")
    slow_pool = ThreadPoolExecutor(1, thread_name_prefix="playground-slow")  # compiling a compare, saving a run

    async def in_pool(pool, session: Session, work):
        def locked():
            with session.lock:
                return work()
        return await asyncio.get_running_loop().run_in_executor(pool, locked)

    def opened(session: Session) -> dict:
        return {"session": session.id, "settings": session.settings.as_json(), "query": session.settings.query(),
                "vary": session.vary, "labels": session.labels, "points": session.point_list(),
                "regression": session.settings.regression, "view": session.step(0)}

    async def create(request: Request) -> Response:
        settings = settings_lib.from_fields(await json_body(request))
        loop = asyncio.get_running_loop()
        session = await loop.run_in_executor(train_pool, sessions.create, settings)
        return JSONResponse(await in_pool(train_pool, session, lambda: opened(session)))

    async def configure(request: Request) -> Response:
        session = sessions.get(request.path_params["id"])
        settings = settings_lib.from_fields(await json_body(request))

        def work():
            session.configure(settings)
            return opened(session)
        return JSONResponse(await in_pool(train_pool, session, work))

    async def step(request: Request) -> Response:
        session = sessions.get(request.path_params["id"])
        epochs = epochs_of(await json_body(request))
        return JSONResponse({"view": await in_pool(train_pool, session, lambda: session.step(epochs))})

    async def reset(request: Request) -> Response:
        session = sessions.get(request.path_params["id"])
        await json_body(request)
        return JSONResponse({"view": await in_pool(train_pool, session, lambda: (session.reset(), session.step(0))[1])})

    async def compare(request: Request) -> Response:
        session = sessions.get(request.path_params["id"])
        payload = await json_body(request)
        vary, values = (None, None)
        if payload.get("vary") is not None:
            vary, values = settings_lib.check_compare(payload.get("vary"), payload.get("values"))

        def work():
            session.configure(session.settings, vary, values)
            return opened(session)  # its first chunk compiles the program of this many members, if new
        return JSONResponse(await in_pool(slow_pool, session, work))

    async def save(request: Request) -> Response:
        session = sessions.get(request.path_params["id"])
        name = (await json_body(request)).get("name")
        if not isinstance(name, str) or not RUN_NAME.match(name):
            raise InputError("name", "not a run name", got=str(name)[:70],
                             expected="1 to 64 letters, digits, '_', '.', '-' (a folder under --runs_dir)")
        workdir = Path(runs_dir) / name
        if workdir.exists():
            raise SessionError(409, f"name: {workdir} exists already; choose another name")
        params, epoch = await in_pool(train_pool, session, session.host_state)
        settings, points = session.settings, session.points
        summary = await asyncio.get_running_loop().run_in_executor(
            slow_pool, lambda: save_run(str(workdir), settings, params, epoch, points))
        return JSONResponse({"workdir": summary["workdir"], "test": summary["test"], "epochs": epoch})

    async def close(request: Request) -> Response:
        sessions.close(request.path_params["id"])
        return JSONResponse({"closed": True})

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "sessions": sessions.sweep(), "max_sessions": max_sessions,
                             "idle_seconds": idle_seconds})

    def error(status: int, message: str) -> Response:
        return JSONResponse({"error": " ".join(message.split())}, status_code=status)

    async def on_session_error(request: Request, exc: SessionError) -> Response:
        return error(exc.status, exc.message)

    async def on_input_error(request: Request, exc: InputError) -> Response:
        return error(422, str(exc))

    async def on_http_error(request: Request, exc: HTTPException) -> Response:
        return error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    async def on_crash(request: Request, exc: Exception) -> Response:
        return error(500, f"internal error ({type(exc).__name__}); the server goes on")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            train_pool.shutdown(wait=False, cancel_futures=True)
            slow_pool.shutdown(wait=False, cancel_futures=True)

    if warm_up:  # compiles the program every one-member session runs (once per process)
        Session(settings_lib.Settings()).step(1)
    session_path = "/api/session/{id}"
    return Starlette(routes=[Route("/", page, methods=["GET"]), Route("/health", health, methods=["GET"]),
                             Route("/api/session", create, methods=["POST"]),
                             Route(session_path + "/settings", configure, methods=["POST"]),
                             Route(session_path + "/step", step, methods=["POST"]),
                             Route(session_path + "/reset", reset, methods=["POST"]),
                             Route(session_path + "/compare", compare, methods=["POST"]),
                             Route(session_path + "/save", save, methods=["POST"]),
                             Route(session_path, close, methods=["DELETE"])],
                     exception_handlers={SessionError: on_session_error, InputError: on_input_error,
                                         HTTPException: on_http_error, Exception: on_crash},
                     lifespan=lifespan)


def playground_command(argv: list[str]) -> int:
    flags, positional = parse_flags(argv, valued=("host", "port", "max_sessions", "idle_minutes", "runs_dir"),
                                    switches=(), usage=USAGE)
    if positional:
        raise InputError("arguments", "unexpected", got=" ".join(positional), expected=USAGE)
    host = flags.get("host", "127.0.0.1")
    port = number_flag(flags, "port", 8000, 0, 65535, integer=True)
    max_sessions = number_flag(flags, "max_sessions", 16, 1, 256, integer=True)
    idle_minutes = number_flag(flags, "idle_minutes", 10.0, 0.1, 24 * 60.0)
    sock = listen(host, port)
    app = create_app(max_sessions=max_sessions, idle_seconds=idle_minutes * 60, runs_dir=flags.get("runs_dir", "runs"))
    bound = sock.getsockname()
    print(f"playground http://{bound[0]}:{bound[1]}  (at most {max_sessions} sessions; Ctrl-C stops)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    server.run(sockets=[sock])
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(playground_command, argv, USAGE, __doc__)


if __name__ == "__main__":
    sys.exit(main())
