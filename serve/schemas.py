"""Request and response bodies. Requests forbid unknown fields and range-check every number."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tinyagent_ft.grammar import MIN_PLAN_TOKENS

MAX_QUERY_CHARS = 2000
MAX_TOOLS = 256  # tools one request may show


def _budget_fits(constrain: bool, max_tokens: int | None, field: str) -> None:
    if constrain and max_tokens is not None and max_tokens < MIN_PLAN_TOKENS:
        raise ValueError(f"{field} must be at least {MIN_PLAN_TOKENS} with constrain=true "
                         "(the shortest plan must fit)")


def _unique_tools(names: list[str] | None) -> list[str] | None:
    """Names must be unique; whether the loaded catalog has them is checked by the app (a 422 naming them)."""
    if names is not None and len(set(names)) != len(names):
        raise ValueError("tool names must be unique")
    return names


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanRequest(Strict):
    query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS, pattern=r"\S")]
    tools: Annotated[list[str] | None, Field(max_length=MAX_TOOLS, description="omit to let the classifier choose")] = None
    num_examples: Annotated[int | None, Field(ge=0, le=12)] = None
    max_new_tokens: Annotated[int, Field(ge=1, le=1024)] = 256
    temperature: Annotated[float, Field(ge=0, le=2, description="0 (or below 0.001): greedy")] = 0.0
    stream: bool = False
    constrain: bool = Field(True, description="decode under the plan grammar (false: free decoding)")

    _tools = field_validator("tools")(_unique_tools)

    @model_validator(mode="after")
    def _budget(self):
        _budget_fits(self.constrain, self.max_new_tokens, "max_new_tokens")
        return self


class StepOut(BaseModel):
    id: int
    tool: str
    args: list[Any]
    dependencies: list[int]
    thought: str | None = None


class Dag(BaseModel):
    nodes: list[dict]
    edges: list[tuple[int, int]]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class PlanResponse(BaseModel):
    plan_text: str
    steps: list[StepOut]
    dag: Dag
    selected_tools: list[str]
    valid: bool
    errors: list[str]
    constrained: bool = Field(description="decoded under the plan grammar")
    forced_end: bool = Field(description="the token budget ran out and the shortest plan ending was forced")
    usage: Usage
    latency_ms: float


class ToolArg(BaseModel):
    name: str
    type: str
    nullable: bool
    optional: bool = False
    format: str | None = None
    enum: list | None = None


class ToolOut(BaseModel):
    name: str
    app: str
    signature: str
    description: str
    args: list[ToolArg]


# --- the OpenAI chat-completions subset ---

class ChatMessage(Strict):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: Annotated[str | None, Field(max_length=MAX_QUERY_CHARS * 4)] = None
    name: str | None = None
    tool_calls: list[dict] | None = None
    tool_call_id: str | None = None


class FunctionName(BaseModel):
    model_config = ConfigDict(extra="allow")  # description and parameters are the loaded catalog's; ignored
    name: str


class ChatTool(Strict):
    type: Literal["function"]
    function: FunctionName


class ChatRequest(Strict):
    model: str | None = None
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=64)]
    tools: Annotated[list[ChatTool] | None, Field(max_length=MAX_TOOLS)] = None
    tool_choice: str | dict | None = None
    stream: bool = False
    max_tokens: Annotated[int | None, Field(ge=1, le=1024)] = None
    max_completion_tokens: Annotated[int | None, Field(ge=1, le=1024)] = None
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    n: Annotated[int | None, Field(ge=1, le=1)] = None
    user: str | None = None
    constrain: bool = Field(True, description="extension: decode under the plan grammar (false: free decoding)")

    @model_validator(mode="after")
    def _budget(self):
        _budget_fits(self.constrain, self.max_completion_tokens or self.max_tokens, "max_tokens")
        return self

    @field_validator("tools")
    @classmethod
    def _catalog_tools(cls, tools):
        if tools is not None:
            _unique_tools([t.function.name for t in tools])
        return tools
