"""Evaluators for the support bot of ``examples/llm_pipeline.py``, to run over its spans.

An evaluator is a plain function of one ``JudgedRun`` (an ended span, its input and output
read as text) that returns LangSmith's evaluation result: a dict with a ``key`` and a
``score``, ``value``, ``comment`` or ``correction``, or None when it has nothing to say.
Three kinds of judge, each as a support bot would have it:

- ``sentiment``: how the customer feels, from their message, with VADER (a lexicon model that
  ships inside the ``vaderSentiment`` package: nothing is downloaded);
- ``cites_source`` and ``json_answer``: checks in code on the answer, a regular expression
  and a JSON parse;
- ``llm_judge`` (and ``llm_judge_async``): an LLM as a judge of the answer's correctness,
  through the ``openai`` client. With ``OPENAI_API_KEY`` set it asks OpenAI, or the
  OpenAI-compatible server ``OPENAI_BASE_URL`` names (``JUDGE_MODEL`` names the model); with
  neither set it asks a stand-in started on 127.0.0.1 (``examples/_openai_standin.py``), which
  is not OpenAI and runs no model: it grades by a fixed rule, so that the example runs offline
  and gives the same verdicts every time.

They need the ``examples`` extra (``pip install 'otel-feedback[examples]'``). Name them by
``module:function`` from the repository's root, online or over stored spans::

    otel_feedback.configure(evaluators=[sentiment, cites_source, llm_judge])
    otel-feedback evaluate --evaluator examples.evaluators:sentiment spans.json
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import openai
from pydantic import BaseModel, ConfigDict, Field, ValidationError

# vaderSentiment ships no type information.
from vaderSentiment.vaderSentiment import (  # type: ignore[import-untyped]
    SentimentIntensityAnalyzer,
)

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

    from otel_feedback import JudgedRun

__all__ = [
    "JudgeAnswerError",
    "cites_source",
    "json_answer",
    "llm_judge",
    "llm_judge_async",
    "sentiment",
]

Result = dict[str, Any]
"""One evaluation result, as LangSmith writes it: ``key`` and ``score``, ``value``, ..."""

# --- sentiment ---------------------------------------------------------------------------------

# VADER's own thresholds on its compound score (its README): at or above 0.05 is positive, at
# or below -0.05 negative, neutral between.
POSITIVE_AT = 0.05
NEGATIVE_AT = -0.05

_analyzer: Any = None
_analyzer_lock = threading.Lock()


def _sentiment_analyzer() -> Any:
    """The one VADER analyzer, built on first use: reading its lexicon takes a moment.

    Built under a lock, as evaluators run on several threads; once built it only reads its
    lexicon, so that the threads share it.
    """
    global _analyzer  # noqa: PLW0603 - the process's one analyzer, built lazily
    analyzer = _analyzer
    if analyzer is None:
        with _analyzer_lock:
            if _analyzer is None:
                _analyzer = SentimentIntensityAnalyzer()
            analyzer = _analyzer
    return analyzer


def sentiment(run: JudgedRun) -> Result | None:
    """The sentiment of the user's message (the run's input text), by VADER.

    Returns:
        ``{"key": "user_sentiment", "score": compound, "value": label}``: ``compound`` is VADER's
        normalised score in [-1, 1], ``label`` ``"positive"``, ``"neutral"`` or ``"negative"``
        by VADER's thresholds (±0.05). None when the run has no input text.
    """
    text = (run.input_text or "").strip()
    if not text:
        return None
    compound = float(_sentiment_analyzer().polarity_scores(text)["compound"])
    if compound >= POSITIVE_AT:
        label = "positive"
    elif compound <= NEGATIVE_AT:
        label = "negative"
    else:
        label = "neutral"
    return {"key": "user_sentiment", "score": compound, "value": label}


# --- checks in code ----------------------------------------------------------------------------

# How the support bot cites a knowledge-base article: "[kb-101]".
CITATION = re.compile(r"\[(kb-\d+)\]")
KB_ID = re.compile(r"\bkb-\d+\b")


def cites_source(run: JudgedRun) -> Result | None:
    """Whether the answer cites a knowledge-base article as ``[kb-N]``, and only ones it was given.

    The bot is told to cite the documents it uses. When the run's input shows the documents
    (the ``generate`` LLM span's prompt has them as ``[kb-N] text``), every cited id must be one
    of them; otherwise any citation counts.

    Returns:
        ``{"key": "cites_source", "score": 1 or 0, "value": the cited ids, "comment": ...}``,
        the comment saying what is missing or wrong when the score is 0. None when the run has
        no output text.
    """
    answer = run.output_text
    if not answer or not answer.strip():
        return None
    cited = sorted(set(CITATION.findall(answer)))
    given = set(KB_ID.findall(run.input_text or ""))
    value = ", ".join(cited) or "none"
    if not cited:
        return {
            "key": "cites_source",
            "score": 0,
            "value": value,
            "comment": "No knowledge-base article cited (expected [kb-N]).",
        }
    unknown = [kb for kb in cited if given and kb not in given]
    if unknown:
        return {
            "key": "cites_source",
            "score": 0,
            "value": value,
            "comment": f"Cites {', '.join(unknown)}, not among the documents it was given "
            f"({', '.join(sorted(given))}).",
        }
    return {"key": "cites_source", "score": 1, "value": value, "comment": f"Cites {value}."}


# The fields a structured answer of the bot carries, and the type of each.
ANSWER_FIELDS: dict[str, type[object]] = {"answer": str, "sources": list}


def json_answer(run: JudgedRun) -> Result | None:
    """Whether the output is a structured answer: a JSON object with ``answer`` and ``sources``.

    For a bot asked for structured output (``response_format={"type": "json_object"}``): the
    output must parse as a JSON object with a non-empty string ``answer`` and a list of
    knowledge-base ids ``sources``.

    Returns:
        ``{"key": "json_answer", "score": 1 or 0, "comment": ...}``, the comment naming the
        parse error or the missing and mistyped fields when the score is 0. None when the run
        has no output text.
    """
    output = run.output_text
    if not output or not output.strip():
        return None
    try:
        parsed = json.loads(output)
    except json.JSONDecodeError as error:
        return {"key": "json_answer", "score": 0, "comment": f"Not JSON: {error}."}
    if not isinstance(parsed, dict):
        found = type(parsed).__name__
        return {"key": "json_answer", "score": 0, "comment": f"A JSON {found}, not an object."}
    problems = []
    for name, kind in ANSWER_FIELDS.items():
        if name not in parsed:
            problems.append(f"{name} is missing")
        elif not isinstance(parsed[name], kind):
            problems.append(f"{name} is not a {kind.__name__}")
    if isinstance(parsed.get("answer"), str) and not parsed["answer"].strip():
        problems.append("answer is empty")
    if isinstance(parsed.get("sources"), list):
        bad = [source for source in parsed["sources"] if not KB_ID.fullmatch(str(source))]
        if bad:
            problems.append(f"sources has {json.dumps(bad)}, not knowledge-base ids (kb-N)")
    if problems:
        comment = "; ".join(problems)
        return {"key": "json_answer", "score": 0, "comment": comment[0].upper() + comment[1:]}
    return {"key": "json_answer", "score": 1, "comment": "A JSON answer with its sources."}


# --- LLM as a judge ----------------------------------------------------------------------------

JUDGE_MODEL = "gpt-4o-mini"
"""The judge's model, unless ``JUDGE_MODEL`` is set."""
# A judge call answers in a second or two; a stuck one must not hold an evaluator thread.
JUDGE_TIMEOUT_S = 5.0
JUDGE_RETRIES = 1
JUDGE_INSTRUCTIONS = (
    "You grade the answers of Acme's customer support assistant. Judge whether the answer is "
    "correct and responsive to the customer's question, using only the facts given with the "
    "question. Reply with a JSON object and nothing else: "
    '{"score": <a number from 0 (wrong) to 1 (correct)>, "reasoning": "<one or two sentences>"}.'
)


class JudgeAnswerError(ValueError):
    """The judge's answer is not the JSON verdict it was asked for."""


class Verdict(BaseModel):
    """The judge's answer: a score in [0, 1] and why."""

    # Strict: a score of "0.8" or true is a judge not following its instructions.
    model_config = ConfigDict(strict=True, extra="ignore")

    score: float = Field(ge=0, le=1)
    reasoning: str = Field(min_length=1)


def _judge_messages(question: str, answer: str) -> list[ChatCompletionMessageParam]:
    return [
        {"role": "system", "content": JUDGE_INSTRUCTIONS},
        {
            "role": "user",
            "content": f"<question>\n{question}\n</question>\n<answer>\n{answer}\n</answer>",
        },
    ]


def _verdict(completion: ChatCompletion) -> Result:
    """The evaluation result from the judge's completion; JudgeAnswerError if it is no verdict."""
    if not completion.choices:
        raise JudgeAnswerError("The judge answered with no choices.")
    content = completion.choices[0].message.content
    if not content or not content.strip():
        raise JudgeAnswerError("The judge answered nothing.")
    try:
        verdict = Verdict.model_validate_json(content)
    except ValidationError as error:
        shown = content if len(content) <= 200 else content[:200] + "..."
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in error.errors()
        )
        raise JudgeAnswerError(
            f'The judge\'s answer is not a JSON {{"score": 0..1, "reasoning": ...}} '
            f"({problems}): {shown!r}"
        ) from None
    return {"key": "correctness", "score": verdict.score, "comment": verdict.reasoning}


_standin_url: str | None = None
_clients: dict[tuple[str | None, str], openai.OpenAI] = {}
_clients_lock = threading.Lock()


def _start_standin() -> tuple[str, Callable[[], None]]:
    """Start the loopback stand-in of ``_openai_standin.py``, beside this file."""
    # Found by this module's package, so that it loads whether this file was imported as
    # examples.evaluators (from the repository's root, as --evaluator names it) or from
    # examples/ as evaluators; loaded only when no judge is configured.
    name = f"{__package__}._openai_standin" if __package__ else "_openai_standin"
    started: tuple[str, Callable[[], None]] = importlib.import_module(name).start()
    return started


def _endpoint() -> tuple[str | None, str]:
    """The judge's base URL and API key: the environment's, else the loopback stand-in's.

    Read on every call, so that a changed environment takes effect. A base URL with no key is a
    local OpenAI-compatible server that wants none; the client needs some key all the same.
    """
    global _standin_url
    base_url = os.environ.get("OPENAI_BASE_URL") or None
    api_key = os.environ.get("OPENAI_API_KEY") or None
    if api_key or base_url:
        return base_url, api_key or "unused"
    with _clients_lock:
        if _standin_url is None:
            # Not OpenAI: the loopback stand-in, which grades by a fixed rule (see its module).
            _standin_url, stop = _start_standin()
            atexit.register(stop)
        return _standin_url, "not-a-real-key"


def _client() -> openai.OpenAI:
    """A client for the judge's endpoint, one per endpoint: clients are safe to share."""
    endpoint = _endpoint()
    with _clients_lock:
        client = _clients.get(endpoint)
        if client is None:
            base_url, api_key = endpoint
            client = openai.OpenAI(
                base_url=base_url,
                api_key=api_key,
                timeout=JUDGE_TIMEOUT_S,
                max_retries=JUDGE_RETRIES,
            )
            _clients[endpoint] = client
        return client


def _to_judge(run: JudgedRun) -> tuple[str, str] | None:
    question, answer = (run.input_text or "").strip(), (run.output_text or "").strip()
    return (question, answer) if question and answer else None


def llm_judge(run: JudgedRun) -> Result | None:
    """An LLM's verdict on whether the answer is correct for the question.

    Asks the judge model (``JUDGE_MODEL``, default ``gpt-4o-mini``) through ``openai.OpenAI``
    for a JSON verdict, with a timeout of a few seconds. The server is ``OPENAI_BASE_URL`` /
    ``OPENAI_API_KEY`` when set; otherwise a stand-in on 127.0.0.1 that is not OpenAI (see the
    module's docstring).

    Returns:
        ``{"key": "correctness", "score": 0..1, "comment": the judge's reasoning}``; None when
        the run lacks an input or an output text.

    Raises:
        JudgeAnswerError: The judge's answer is not the JSON verdict asked for.
        openai.OpenAIError: The call failed (a timeout, a refused connection, an error status).
    """
    judged = _to_judge(run)
    if judged is None:
        return None
    completion = _client().chat.completions.create(
        model=os.environ.get("JUDGE_MODEL") or JUDGE_MODEL,
        messages=_judge_messages(*judged),
        response_format={"type": "json_object"},
        temperature=0,
    )
    return _verdict(completion)


async def llm_judge_async(run: JudgedRun) -> Result | None:
    """``llm_judge`` for an event loop, through ``openai.AsyncOpenAI``: same verdict, same errors.

    The client lives for the one call: an async client's connections belong to the event loop
    that opened them, and evaluators may run on more than one loop.
    """
    judged = _to_judge(run)
    if judged is None:
        return None
    base_url, api_key = _endpoint()
    async with openai.AsyncOpenAI(
        base_url=base_url, api_key=api_key, timeout=JUDGE_TIMEOUT_S, max_retries=JUDGE_RETRIES
    ) as client:
        completion = await client.chat.completions.create(
            model=os.environ.get("JUDGE_MODEL") or JUDGE_MODEL,
            messages=_judge_messages(*judged),
            response_format={"type": "json_object"},
            temperature=0,
        )
    return _verdict(completion)


EVALUATORS: list[Callable[[JudgedRun], Any]] = [sentiment, cites_source, llm_judge]
"""The ones that fit the support bot's answers, for ``configure(evaluators=EVALUATORS)``."""
