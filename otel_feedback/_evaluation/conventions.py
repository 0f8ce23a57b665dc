"""A run's inputs and outputs, read from the attributes and events its instrumentation wrote.

Three conventions are read, each as its instrumentation writes it:

``gen_ai`` (the OpenTelemetry GenAI semantic conventions)
    ``gen_ai.input.messages``, ``gen_ai.output.messages`` and ``gen_ai.system_instructions``:
    JSON strings of parts-based messages, ``{"role": "user", "parts": [{"type": "text",
    "content": "..."}]}``; output messages carry ``finish_reason``. Found on the span, or on a
    ``gen_ai.client.inference.operation.details`` span event. The older span-event styles are
    read too: ``gen_ai.content.prompt`` / ``gen_ai.content.completion`` events with a JSON
    ``gen_ai.prompt`` / ``gen_ai.completion`` attribute (semantic conventions 1.26-1.27), and
    ``gen_ai.system.message``, ``gen_ai.user.message``, ``gen_ai.assistant.message``,
    ``gen_ai.tool.message`` and ``gen_ai.choice`` events whose ``content`` attribute (or
    ``message.content`` for a choice) holds the text.
``openinference`` (OpenInference, Arize Phoenix)
    ``llm.input_messages.N.message.role`` / ``.content`` (or ``.contents.M.message_content.text``)
    and ``llm.output_messages.N.message...``; else ``input.value`` / ``output.value``, parsed as
    JSON when ``input.mime_type`` / ``output.mime_type`` is ``application/json``.
``openllmetry`` (OpenLLMetry / Traceloop)
    ``gen_ai.prompt.N.role`` / ``.content`` and ``gen_ai.completion.N.role`` / ``.content`` /
    ``.finish_reason``; else ``traceloop.entity.input`` / ``traceloop.entity.output``, the JSON
    its ``@workflow`` and ``@task`` decorators write. (OpenLLMetry's recent releases write the
    GenAI attributes above instead; those spans read as ``gen_ai``.)

The first convention found gives both the inputs and the outputs, in the order above.

Shapes, as LangSmith evaluators expect them (dicts):

* chat messages: ``{"messages": [{"role": ..., "content": <text or None>}, ...]}``. ``content``
  is the message's text parts joined with newlines (None when it has none). A message that
  has other parts too (tool calls, images, reasoning) keeps them all, as written, under
  ``"parts"``; an output message keeps its ``"finish_reason"``. System instructions come first,
  as a ``"system"`` message.
* a JSON object: the object as parsed.
* anything else: ``{"input": value}`` / ``{"output": value}`` (the text, or a JSON value that
  is not an object).

``input_text`` is the last user message's text, or the plain input; ``output_text`` the last
output message's text, or the plain output. For a JSON object without messages it is the
object's one string (an OpenAI completion's last choice's text), else the JSON text itself.

Reading never raises and stays bounded: a value that is malformed or of the wrong type is
taken as text or skipped, and no value over :data:`MAX_PARSED_BYTES` (1 MiB) is parsed as
JSON (it is kept as text).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

__all__ = ["MAX_PARSED_BYTES", "RunContent", "read_content"]

MAX_PARSED_BYTES: Final = 1 << 20
"""The largest attribute value parsed as JSON, in UTF-8 bytes; a larger one stays text."""

_JSON_MIME = "application/json"
# A JSON text shorter than this many characters has fewer bytes than the limit whatever its
# characters (at most 4 UTF-8 bytes each): only longer ones need encoding to be measured.
_SURELY_SMALL = MAX_PARSED_BYTES // 4
# At most this many nested lists and objects are searched for a JSON object's one string.
_LONE_TEXT_DEPTH = 3
_LONE_TEXT_NODES = 64


class _Event(Protocol):
    """What is read of a span event (a :class:`~otel_feedback._evaluation.judged.RunEvent`)."""

    @property
    def name(self) -> str: ...

    @property
    def attributes(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class RunContent:
    """A run's inputs and outputs as one convention wrote them (see the module's docstring)."""

    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    input_text: str | None = None
    output_text: str | None = None
    convention: str | None = None
    """``"gen_ai"``, ``"openinference"``, ``"openllmetry"``, or None when nothing was read."""


_NOTHING: Final = RunContent()


def read_content(attributes: Mapping[str, Any], events: Sequence[_Event] = ()) -> RunContent:
    """The inputs and outputs written on a span's attributes and events, in any convention.

    Never raises: a value that is malformed, of a wrong type or larger than
    :data:`MAX_PARSED_BYTES` is read as text or skipped. Nothing readable gives empty inputs
    and outputs, no texts and no convention.
    """
    try:
        found = _gen_ai(attributes, events)
        if found is not None:
            return found
        # One pass over the attributes finds the indexed messages of both other conventions.
        oi_inputs, oi_outputs, tl_prompts, tl_completions = _indexed(attributes, _INDEXED)
        return (
            _openinference(attributes, oi_inputs, oi_outputs)
            or _openllmetry(attributes, tl_prompts, tl_completions)
            or _NOTHING
        )
    except Exception:  # noqa: BLE001 - a run whose content cannot be read is judged without it
        return _NOTHING


# --- JSON and text ----------------------------------------------------------------------------


def _parse(text: str) -> Any:
    """The JSON value of ``text``; ``text`` itself when it is not JSON or is too large."""
    size = len(text)
    if size > MAX_PARSED_BYTES or (
        size > _SURELY_SMALL and len(text.encode("utf-8", "surrogatepass")) > MAX_PARSED_BYTES
    ):
        return text
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def _as_text(value: Any) -> str | None:
    """A value as text: strings as they are, numbers written out, anything else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _join_texts(texts: list[str]) -> str | None:
    return "\n".join(texts) if texts else None


def _message_content(content: Any) -> tuple[str | None, list[Any] | None]:
    """The text of an OpenAI-style ``content`` (a string or a list of parts).

    Returned with the parts when some are not text.
    """
    if isinstance(content, str):
        # OpenLLMetry writes a list of content parts as their JSON text.
        if content.startswith("[") and content.endswith("]"):
            parts = _parse(content)
            if isinstance(parts, list):
                return _content_parts(parts)
        return content, None
    if isinstance(content, list):
        return _content_parts(content)
    return _as_text(content), None


def _content_parts(parts: list[Any]) -> tuple[str | None, list[Any] | None]:
    """The text of a list of parts.

    GenAI's ``{"type": "text", "content"}`` or OpenAI's ``{"type": "text", "text"}``; returned
    with the parts when some are not text.
    """
    texts: list[str] = []
    other = False
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Mapping) and part.get("type") == "text":
            text = part.get("content", part.get("text"))
            if isinstance(text, str):
                texts.append(text)
            else:
                other = True
        else:
            other = True
    return _join_texts(texts), (parts if other else None)


def _message(role: Any, content: Any, finish_reason: Any = None) -> dict[str, Any]:
    text, parts = _message_content(content)
    message: dict[str, Any] = {"role": role if isinstance(role, str) else None, "content": text}
    if parts is not None:
        message["parts"] = parts
    if isinstance(finish_reason, str):
        message["finish_reason"] = finish_reason
    return message


def _messages_of(value: Any, *, output: bool) -> list[dict[str, Any]] | None:
    """Messages from a JSON list of GenAI (``parts``) or OpenAI-style (``content``) messages."""
    if not isinstance(value, list):
        return None
    messages = []
    for item in value:
        if not isinstance(item, Mapping):
            continue
        if output and "message" in item and isinstance(item["message"], Mapping):
            # An OpenAI choice: {"index", "finish_reason", "message": {...}}.
            inner = item["message"]
            messages.append(
                _message(inner.get("role"), inner.get("content"), item.get("finish_reason"))
            )
            continue
        content = item["parts"] if "parts" in item else item.get("content")
        messages.append(
            _message(item.get("role"), content, item.get("finish_reason") if output else None)
        )
    return messages


def _last_text(messages: list[dict[str, Any]], role: str | None) -> str | None:
    for message in reversed(messages):
        if role is None or message["role"] == role:
            text: str | None = message["content"]
            return text
    return None


def _lone_text(value: Any) -> str | None:
    """The one string inside a small JSON value, or None when there are none or several."""
    found: list[str] = []
    budget = [_LONE_TEXT_NODES]

    def visit(node: Any, depth: int) -> None:
        budget[0] -= 1
        if budget[0] < 0 or len(found) > 1:
            return
        if isinstance(node, str):
            found.append(node)
        elif depth < _LONE_TEXT_DEPTH:
            children: Iterable[Any] = (
                node.values()
                if isinstance(node, Mapping)
                else node
                if isinstance(node, list)
                else ()
            )
            for child in children:
                visit(child, depth + 1)

    visit(value, 0)
    return found[0] if len(found) == 1 and budget[0] >= 0 else None


def _value_side(
    raw: Any, is_json: bool, key: str, *, output: bool
) -> tuple[dict[str, Any], str | None]:
    """One side (inputs or outputs) from a single value: JSON or plain text."""
    text = _as_text(raw)
    if text is None:
        return {}, None
    value = _parse(text) if is_json else text
    if isinstance(value, dict):
        return value, _text_of_object(value, text, output=output)
    if isinstance(value, str):
        return {key: value}, value
    return {key: value}, text


def _text_of_object(value: dict[str, Any], raw: str, *, output: bool) -> str:
    """The text of a parsed JSON object (see the module's docstring)."""
    if output and isinstance(value.get("choices"), list):
        messages = _messages_of(value["choices"], output=True)
        if messages:
            text = _last_text(messages, None)
            if text is not None:
                return text
    if isinstance(value.get("messages"), list):
        messages = _messages_of(value["messages"], output=output) or []
        text = _last_text(messages, None if output else "user")
        if text is not None:
            return text
    lone = _lone_text(value)
    return lone if lone is not None else raw


def _content(
    inputs: dict[str, Any],
    input_text: str | None,
    outputs: dict[str, Any],
    output_text: str | None,
    convention: str,
) -> RunContent | None:
    if not inputs and not outputs:
        return None
    return RunContent(inputs, outputs, input_text, output_text, convention)


def _chat_side(
    messages: list[dict[str, Any]] | None, *, output: bool
) -> tuple[dict[str, Any], str | None]:
    if not messages:
        return {}, None
    return {"messages": messages}, _last_text(messages, None if output else "user")


# --- GenAI semantic conventions ---------------------------------------------------------------

_GEN_AI_INPUT = "gen_ai.input.messages"
_GEN_AI_OUTPUT = "gen_ai.output.messages"
_GEN_AI_SYSTEM = "gen_ai.system_instructions"
_GEN_AI_DETAILS_EVENT = "gen_ai.client.inference.operation.details"
# Semantic conventions 1.28-1.36: one event per message, its role in the event's name.
_MESSAGE_EVENTS: Final = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def _json_list(value: Any) -> Any:
    return _parse(value) if isinstance(value, str) else value


def _gen_ai(attributes: Mapping[str, Any], events: Sequence[_Event]) -> RunContent | None:
    source: Mapping[str, Any] | None = None
    if _GEN_AI_INPUT in attributes or _GEN_AI_OUTPUT in attributes:
        source = attributes
    else:
        for event in events:
            if event.name == _GEN_AI_DETAILS_EVENT:
                source = event.attributes
                break
    if source is not None:
        raw_inputs = source.get(_GEN_AI_INPUT)
        inputs = _messages_of(_json_list(raw_inputs), output=False)
        system = _json_list(source.get(_GEN_AI_SYSTEM))
        if system is not None and (inputs is not None or raw_inputs is None):
            text, parts = (
                _content_parts(system) if isinstance(system, list) else (_as_text(system), None)
            )
            if text is not None or parts is not None:
                inputs = [_message("system", parts if parts is not None else text), *(inputs or [])]
        raw_outputs = source.get(_GEN_AI_OUTPUT)
        found = _content(
            *_gen_ai_side(inputs, raw_inputs, "input", output=False),
            *_gen_ai_side(
                _messages_of(_json_list(raw_outputs), output=True),
                raw_outputs,
                "output",
                output=True,
            ),
            "gen_ai",
        )
        if found is not None:
            return found
    return _gen_ai_events(events) if events else None


def _gen_ai_side(
    messages: list[dict[str, Any]] | None, raw: Any, key: str, *, output: bool
) -> tuple[dict[str, Any], str | None]:
    """Messages read, or the text they were written as when it is no list of messages."""
    if messages is None and isinstance(raw, str):
        return {key: raw}, raw
    return _chat_side(messages, output=output)


def _gen_ai_events(events: Sequence[_Event]) -> RunContent | None:
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    for event in events:
        name = event.name
        attributes = event.attributes
        if name == "gen_ai.content.prompt":
            inputs.extend(
                _messages_of(_json_list(attributes.get("gen_ai.prompt")), output=False) or []
            )
        elif name == "gen_ai.content.completion":
            outputs.extend(
                _messages_of(_json_list(attributes.get("gen_ai.completion")), output=True) or []
            )
        elif name in _MESSAGE_EVENTS:
            inputs.append(
                _message(attributes.get("role", _MESSAGE_EVENTS[name]), attributes.get("content"))
            )
        elif name == "gen_ai.choice":
            content = attributes.get("message.content", attributes.get("content"))
            outputs.append(
                _message(
                    attributes.get("message.role", "assistant"),
                    content,
                    attributes.get("finish_reason"),
                )
            )
    return _content(*_chat_side(inputs, output=False), *_chat_side(outputs, output=True), "gen_ai")


# --- OpenInference ----------------------------------------------------------------------------

_OI_INPUT_MESSAGES = "llm.input_messages."
_OI_OUTPUT_MESSAGES = "llm.output_messages."


def _indexed(
    attributes: Mapping[str, Any], prefixes: tuple[str, ...]
) -> list[dict[int, dict[str, Any]]]:
    """The attributes ``<prefix><N>.<rest>`` of each prefix, as ``{N: {rest: value}}``.

    Each prefix is two dotted words, ``"llm.input_messages."``: what follows the second dot
    of a key is its index.
    """
    found: list[dict[int, dict[str, Any]]] = [{} for _ in prefixes]
    slots = dict(zip(prefixes, found, strict=True))
    for key, value in attributes.items():
        # One test in C for most keys, which have none of the prefixes.
        if not key.startswith(prefixes):
            continue
        start = key.index(".", key.index(".") + 1) + 1
        index, _, rest = key[start:].partition(".")
        if index.isdigit() and rest:
            slots[key[:start]].setdefault(int(index), {})[rest] = value
    return found


def _openinference_messages(indexed: dict[int, dict[str, Any]]) -> list[dict[str, Any]] | None:
    messages = []
    for _, fields in sorted(indexed.items()):
        content: Any = fields.get("message.content")
        if content is None:
            # Multimodal messages: message.contents.M.message_content.type / .text / ...
            parts = _indexed(fields, ("message.contents.",))[0]
            if parts:
                content = [
                    {
                        "type": part.get("message_content.type"),
                        "text": part.get("message_content.text"),
                    }
                    for _, part in sorted(parts.items())
                ]
        messages.append(_message(fields.get("message.role"), content))
    return messages or None


def _openinference(
    attributes: Mapping[str, Any],
    input_messages: dict[int, dict[str, Any]],
    output_messages: dict[int, dict[str, Any]],
) -> RunContent | None:
    inputs = _chat_side(_openinference_messages(input_messages), output=False)
    outputs = _chat_side(_openinference_messages(output_messages), output=True)
    if not inputs[0] and "input.value" in attributes:
        inputs = _value_side(
            attributes["input.value"],
            attributes.get("input.mime_type") == _JSON_MIME,
            "input",
            output=False,
        )
    if not outputs[0] and "output.value" in attributes:
        outputs = _value_side(
            attributes["output.value"],
            attributes.get("output.mime_type") == _JSON_MIME,
            "output",
            output=True,
        )
    return _content(*inputs, *outputs, "openinference")


# --- OpenLLMetry / Traceloop ------------------------------------------------------------------

_TL_PROMPT = "gen_ai.prompt."
_TL_COMPLETION = "gen_ai.completion."
_INDEXED: Final = (_OI_INPUT_MESSAGES, _OI_OUTPUT_MESSAGES, _TL_PROMPT, _TL_COMPLETION)


def _openllmetry_messages(
    indexed: dict[int, dict[str, Any]], *, output: bool
) -> list[dict[str, Any]] | None:
    messages = [
        _message(
            fields.get("role"),
            fields.get("content"),
            fields.get("finish_reason") if output else None,
        )
        for _, fields in sorted(indexed.items())
    ]
    return messages or None


def _openllmetry(
    attributes: Mapping[str, Any],
    prompts: dict[int, dict[str, Any]],
    completions: dict[int, dict[str, Any]],
) -> RunContent | None:
    inputs = _chat_side(_openllmetry_messages(prompts, output=False), output=False)
    outputs = _chat_side(_openllmetry_messages(completions, output=True), output=True)
    if not inputs[0] and "traceloop.entity.input" in attributes:
        inputs = _value_side(attributes["traceloop.entity.input"], True, "input", output=False)
    if not outputs[0] and "traceloop.entity.output" in attributes:
        outputs = _value_side(attributes["traceloop.entity.output"], True, "output", output=True)
    return _content(*inputs, *outputs, "openllmetry")
