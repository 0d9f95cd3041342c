"""Request and response bodies of the service; FastAPI builds the OpenAPI schema from them. ``EmbeddingRequest`` is
OpenAI's ``POST /v1/embeddings`` body plus ``instruction`` (one string, or one per input), ``instructions``
(several, each asked of every input), ``truncate`` (TEI's field) and ``long_text``. Token-id inputs (lists of ints)
are refused with their own message: this service tokenizes itself.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from pydantic_core import PydanticCustomError

Instruction = StrictStr | list[StrictStr | None] | None


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def no_token_ids(value: Any) -> Any:
    """Refuse OpenAI's token-id inputs (a list of ints, or a list of lists of ints) with a message of their own."""
    if isinstance(value, list) and value and (all(_is_id(v) for v in value) or all(
            isinstance(v, list) and all(_is_id(i) for i in v) for v in value)):
        raise PydanticCustomError("token_ids", "token ids are not supported, send strings")
    return value


Texts = Annotated[StrictStr | list[StrictStr], BeforeValidator(no_token_ids)]
TRUNCATE = ("Cut an input longer than the model's limit (the instruction and the prompt count too) instead of "
            "refusing it with 413; `usage.truncated_inputs` counts the inputs cut.")


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Texts = Field(description="One text, or a list of texts (not empty; token ids are not accepted).")
    model: StrictStr | None = Field(None, description="A served model id (GET /v1/models); optional with one model.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="'float': lists of numbers; 'base64': little-endian float32 bytes, base64-encoded.")
    dimensions: StrictInt | None = Field(None, ge=1, description="Keep the first N dimensions, rescaled to length 1.")
    user: StrictStr | None = Field(None, description="Accepted for compatibility; not used.")
    instruction: Instruction = Field(None, description="One instruction for all inputs, or one per input (null: none).")
    instructions: list[StrictStr] | None = Field(
        None, min_length=1, description="Several instructions, each asked of every input (instead of "
        "`instruction`): the data holds every input under the first, then under the second, and so on, each item "
        "with its `input_index` and `instruction_index`.")
    truncate: StrictBool = Field(False, description=TRUNCATE)
    long_text: Literal["truncate", "chunk"] | None = Field(
        None, description="An input longer than the model's limit: refused with 413 (null, the default), cut "
        "('truncate', as `truncate: true`), or embedded in overlapping windows pooled by token count ('chunk').")
    chunk_overlap: StrictInt | None = Field(None, ge=0, description="Tokens shared by neighbouring windows "
                                            "(long_text 'chunk'); null: an eighth of the window.")


class AnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Texts = Field(description="One text, or a list of texts (not empty; token ids are not accepted).")
    model: StrictStr | None = Field(None, description="A served answer-family model id.")
    instruction: Instruction = Field(None, description="The question about each text: one, or one per input.")
    include_embeddings: bool = Field(False, description="Also return each answer's embedding (as floats).")
    truncate: StrictBool = Field(False, description=TRUNCATE)
    user: StrictStr | None = None


class Usage(BaseModel):
    prompt_tokens: int = Field(description="Tokens the model read: every (instruction, text) row, prompt included.")
    total_tokens: int
    truncated_inputs: int = Field(0, description="Rows cut to the model's limit (only with `truncate: true`).")


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str
    input_index: int | None = Field(None, description="With several instructions: the input embedded.")
    instruction_index: int | None = Field(None, description="With several instructions: the one it was asked.")


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class Answer(BaseModel):
    object: Literal["answer"] = "answer"
    index: int
    answer: str
    embedding: list[float] | None = None


class AnswerResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Answer]
    model: str
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "inbedder"
    family: str
    dimensions: int
    answers: bool


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    models: list[str]
    queued_rows: dict[str, int]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
