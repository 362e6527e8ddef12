"""The planner behind HTTP: FastAPI app with validation, SSE streaming, an OpenAI-compatible subset,
health/readiness, a body-size cap, a generation timeout, and one generation at a time (queued)."""
from __future__ import annotations

import asyncio
import hmac
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool, iterate_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from eval.dag import build_graph
from eval.plan import parse_plan
from tinyagent_ft.catalog import JOIN, Catalog
from tinyagent_ft.planner import PlanResult, plan_result

from .schemas import MAX_QUERY_CHARS, ChatRequest, Dag, PlanRequest, PlanResponse, StepOut, ToolArg, ToolOut, Usage

MAX_BODY_BYTES = 64 * 1024


def jsonable(value):
    """Plan arguments come from ``ast.literal_eval``: make sets, bytes, tuples and non-finite floats JSON-safe."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return repr(value)


def step_out(step) -> StepOut:
    return StepOut(id=step.id, tool=step.tool, args=[jsonable(a) for a in step.args], dependencies=list(step.refs),
                   thought=step.thought)


def plan_response(r: PlanResult, started: float, catalog: Catalog) -> PlanResponse:
    plan = parse_plan(r.text, catalog)
    g = build_graph(plan)
    return PlanResponse(plan_text=r.text, steps=[step_out(s) for s in plan.steps],
                        dag=Dag(nodes=[{"id": n, "tool": d["tool"]} for n, d in g.nodes(data=True)], edges=list(g.edges)),
                        selected_tools=r.tools, valid=plan.valid, errors=[str(e) for e in plan.errors],
                        constrained=r.constrained, forced_end=r.forced_end,
                        usage=Usage(prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens),
                        latency_ms=round(1000 * (time.perf_counter() - started), 1))


def error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)


class BodyLimit:
    """Pure ASGI middleware: 413 for bodies over the cap, declared or streamed."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        too_big = error(413, f"request body over {self.limit} bytes")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.limit:
                return await too_big(scope, receive, send)
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True  # no declared length (chunked): read up to the cap, then replay
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await too_big(scope, receive, send)
            more = message.get("more_body", False)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, replay, send)


class ApiKey:
    """Pure ASGI middleware: every route but health and readiness needs ``Authorization: Bearer KEY``
    (compared in constant time); anything else gets 401 before the body is read. Added last
    (``app.add_middleware(ApiKey, key=...)``), it runs first."""

    OPEN = frozenset({"/healthz", "/readyz"})

    def __init__(self, app, key: str):
        self.app, self.expected = app, f"Bearer {key}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] not in self.OPEN:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                denied = error(401, "missing or wrong API key: send 'Authorization: Bearer KEY'", "authentication_error")
                denied.headers["www-authenticate"] = "Bearer"
                return await denied(scope, receive, send)
        await self.app(scope, receive, send)


class StepSplitter:
    """Feeds generated text pieces; returns each step as soon as its line is complete, so an executor
    can start independent calls before the plan is finished (as LLMCompiler does)."""

    def __init__(self, catalog: Catalog):
        self.text, self.sent, self.catalog = "", 0, catalog

    def feed(self, piece: str) -> list[StepOut]:
        self.text += piece
        if "\n" not in piece:
            return []
        new = [s for s in parse_plan(self.text[:self.text.rfind("\n")], self.catalog).steps if s.id > self.sent]
        if new:
            self.sent = new[-1].id
        return [step_out(s) for s in new]


def sse(event: str, data) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def create_app(load_planner: Callable[[], object], timeout_s: float = 60.0, grace_s: float = 5.0) -> FastAPI:
    """``load_planner`` runs in a thread at startup; /readyz answers 503 until it returns. Generation
    stops itself after ``timeout_s``; a request gives up ``grace_s`` later with a 504."""
    state: dict = {"planner": None, "error": None}
    lock = asyncio.Lock()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async def load():
            try:
                state["planner"] = await run_in_threadpool(load_planner)
            except Exception as exc:  # noqa: BLE001 - reported by /readyz, the process stays up
                state["error"] = f"{type(exc).__name__}: {exc}"
        task = asyncio.create_task(load())
        yield
        task.cancel()

    app = FastAPI(title="tinyagent-ft planner", version="1", lifespan=lifespan)
    app.add_middleware(BodyLimit)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return error(422, "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail))

    def planner_or_503():
        if state["planner"] is None:
            return None, error(503, state["error"] or "model is loading", "unavailable")
        return state["planner"], None

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        planner, err = planner_or_503()
        if err:
            return err
        return {"status": "ready", "classifier": planner.builder.classifier is not None,
                "index": planner.builder.index is not None}

    @app.get("/v1/tools", response_model=list[ToolOut])
    async def tools():
        """The loaded catalog's tools, in label order."""
        planner, err = planner_or_503()
        if err:
            return err
        return [ToolOut(name=t.name, app=t.group, signature=t.signature, description=t.description,
                        args=[ToolArg(name=a.name, type=a.type, nullable=a.nullable, optional=a.optional, format=a.format,
                                      enum=list(a.enum) or None) for a in t.args])
                for t in planner.catalog.tools]

    def unknown_tools(planner, names: list[str] | None, field: str) -> JSONResponse | None:
        """A 422 naming the requested tools the loaded catalog lacks."""
        unknown = [n for n in names or () if n not in planner.catalog]
        if unknown:
            return error(422, f"{field}: unknown tool(s) {', '.join(map(repr, unknown))}; GET /v1/tools lists them")
        return None

    async def generate(planner, req: PlanRequest, started: float) -> PlanResponse | JSONResponse:
        """The plan, or a 504 when generation outlives the timeout."""
        await lock.acquire()  # one generation at a time; the others wait their turn
        work = asyncio.ensure_future(run_in_threadpool(
            lambda: planner.generate([req.query], tools=[req.tools], max_new_tokens=req.max_new_tokens,
                                     temperature=req.temperature, num_examples=req.num_examples,
                                     max_time=timeout_s, constrain=req.constrain)[0]))
        work.add_done_callback(lambda _: lock.release())  # a thread cannot be stopped: the lock follows it
        try:
            r = await asyncio.wait_for(asyncio.shield(work), timeout_s + grace_s)
        except asyncio.TimeoutError:  # not the builtin: on Python 3.10 wait_for raises asyncio's own
            return error(504, f"generation took longer than {timeout_s} s", "timeout")
        except ValueError as exc:  # e.g. a budget too small for any constrained plan
            return error(422, str(exc))
        return plan_response(r, started, planner.catalog)

    async def stream_plan(planner, req: PlanRequest, started: float) -> AsyncIterator[str]:
        async with lock:
            shown, prompt_tokens, pieces, constraint = await run_in_threadpool(
                lambda: planner.stream(req.query, tools=req.tools, max_new_tokens=req.max_new_tokens,
                                       temperature=req.temperature, num_examples=req.num_examples, max_time=timeout_s,
                                       constrain=req.constrain))
            splitter = StepSplitter(planner.catalog)
            async for piece in iterate_in_threadpool(pieces):
                for step in splitter.feed(piece):
                    yield sse("step", step.model_dump())
        tokens = len(planner.tokenizer(splitter.text)["input_ids"])
        final = plan_response(plan_result(splitter.text, shown, prompt_tokens, tokens, constraint is not None,
                                          bool(constraint and constraint.forced_rows[0]), planner.catalog),
                              started, planner.catalog)
        for s in final.steps:
            if s.id > splitter.sent:
                yield sse("step", s.model_dump())
        yield sse("done", final.model_dump())

    @app.post("/v1/plan", response_model=PlanResponse)
    async def plan(req: PlanRequest):
        started = time.perf_counter()
        planner, err = planner_or_503()
        if err:
            return err
        if bad := unknown_tools(planner, req.tools, "tools"):
            return bad
        if req.stream:
            return StreamingResponse(stream_plan(planner, req, started), media_type="text/event-stream")
        return await generate(planner, req, started)

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest):
        started = time.perf_counter()
        planner, err = planner_or_503()
        if err:
            return err
        users = [m.content for m in req.messages if m.role == "user" and m.content and m.content.strip()]
        if not users:
            return error(400, "messages: need a user message with non-empty content")
        if len(users[-1]) > MAX_QUERY_CHARS:
            return error(400, f"messages: the last user message is over {MAX_QUERY_CHARS} characters")
        names = [t.function.name for t in req.tools] if req.tools else None
        if bad := unknown_tools(planner, names, "tools"):
            return bad
        preq = PlanRequest(query=users[-1], tools=names,
                           max_new_tokens=req.max_completion_tokens or req.max_tokens or 256,
                           temperature=req.temperature or 0.0, constrain=req.constrain)
        body = await generate(planner, preq, started)
        if isinstance(body, JSONResponse):
            return body
        return completion(body, req.model or "tinyagent-ft-planner", req.stream, planner.catalog)

    return app


def tool_calls(body: PlanResponse, catalog: Catalog) -> list[dict]:
    """Plan steps as OpenAI tool calls; arguments are named after the catalog, ``$k`` references kept."""
    calls = []
    for s in body.steps:
        if s.tool == JOIN or s.tool not in catalog:
            continue
        names = [a.name for a in catalog.get(s.tool).args]
        args = {names[i] if i < len(names) else f"arg{i}": v for i, v in enumerate(s.args)}
        calls.append({"id": f"call_{s.id}", "type": "function",
                      "function": {"name": s.tool, "arguments": json.dumps(args)}})
    return calls


def completion(body: PlanResponse, model: str, stream: bool, catalog: Catalog):
    cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    calls = tool_calls(body, catalog)
    finish = "tool_calls" if calls else "stop"
    usage = {"prompt_tokens": body.usage.prompt_tokens, "completion_tokens": body.usage.completion_tokens,
             "total_tokens": body.usage.prompt_tokens + body.usage.completion_tokens}
    if not stream:
        message = {"role": "assistant", "content": None if calls else body.plan_text}
        if calls:
            message["tool_calls"] = calls
        return {"id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage,
                "plan": {"valid": body.valid, "constrained": body.constrained, "forced_end": body.forced_end}}

    def chunk(delta: dict, finish_reason=None) -> str:
        return "data: " + json.dumps({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                                      "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}) + "\n\n"

    async def events():
        yield chunk({"role": "assistant", "content": None if calls else body.plan_text})
        for i, c in enumerate(calls):
            yield chunk({"tool_calls": [{"index": i, **c}]})
        yield chunk({}, finish)
        yield "data: [DONE]\n\n"
    return StreamingResponse(events(), media_type="text/event-stream")


def planner_app(model: str, device: str | None = None, classifier: str | None = None, index: str | None = None,
                timeout_s: float = 60.0, catalog: Catalog | None = None) -> FastAPI:
    """The app for a planner folder or preset (what ``tinyagent-ft serve`` runs); ``catalog`` defaults to
    the folder's own."""
    from tinyagent_ft.constrain import PlanConstraint
    from tinyagent_ft.planner import Planner

    def load() -> Planner:
        planner = Planner.from_pretrained(model, device, classifier=classifier, index=index, catalog=catalog)
        PlanConstraint.for_tokenizer(planner.tokenizer)  # the grammar engine's vocabulary, before the first request
        return planner
    return create_app(load, timeout_s)
