"""A support bot that answers from a knowledge base (RAG), traced, and the feedback it gets.

Each question is one trace: a CHAIN span ``answer_question`` with a RETRIEVER span ``retrieve``
(itself with an EMBEDDING span ``embed_query``) and an LLM span ``generate`` under it, described
with OpenInference attributes (``openinference.span.kind``, ``input.value``,
``retrieval.documents.*``, ``llm.token_count.*``, ...) so that Phoenix, MLflow and other LLM
tools show the prompts, the documents and the tokens. The models are canned, so that the demo
runs anywhere; the short sleeps stand in for their latency.

Feedback comes from five places, as in a real deployment:

- during the run, checks in code: ``retrieval_hit`` on ``retrieve``, ``cites_sources`` on
  ``generate`` (source type ``api``: Phoenix and MLflow show them as CODE);
- after the run, an LLM judge scores each answer: ``correctness`` on the ended
  ``answer_question`` span, with a comment (``model``: LLM);
- later, the user rates an answer with the ``traceparent`` the app handed to the frontend:
  ``user_rating`` (``app``: HUMAN);
- later still, a reviewer corrects the answer the judge flagged, naming the run by the ids a
  review queue keeps: ``correctness`` with a ``correction`` (``reviewer``: HUMAN);
- online evaluators, in the background as the spans end (``OnlineEvaluationProcessor``, with
  the evaluators of ``examples/evaluators.py``): ``llm_judge`` judges every ``generate`` LLM
  span (``correctness``, with its reasoning) and ``sentiment`` the user's question on every
  ``answer_question`` span (``user_sentiment``), each inside an ``evaluate <name>`` span under
  the span it judges (``model``: LLM). With no ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` set,
  the LLM judge asks a stand-in on 127.0.0.1 that is not OpenAI and grades by a fixed rule
  (``examples/_openai_standin.py``), so that the demo runs offline.

Feedback given after a span has ended travels on a short ``feedback <key>`` span under it.

With no OpenTelemetry variables set, nothing leaves the process: the traces and their feedback
are printed at the end. A file name also appends the records to it as JSON lines::

    python examples/llm_pipeline.py
    python examples/llm_pipeline.py feedback.jsonl

With ``OTEL_PYTHON_FEEDBACK_EXPORTER`` or an OTLP endpoint set, ``otel_feedback.configure()``
sends spans and feedback where the standard variables say, e.g. to Arize Phoenix::

    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://localhost:6006/v1/traces \\
    OTEL_RESOURCE_ATTRIBUTES=openinference.project.name=support-bot \\
    OTEL_PYTHON_FEEDBACK_EXPORTER=phoenix PHOENIX_COLLECTOR_ENDPOINT=http://localhost:6006 \\
    python examples/llm_pipeline.py

or to MLflow (experiment 0)::

    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://localhost:5000/v1/traces \\
    OTEL_EXPORTER_OTLP_TRACES_HEADERS=x-mlflow-experiment-id=0 \\
    OTEL_PYTHON_FEEDBACK_EXPORTER=mlflow MLFLOW_TRACKING_URI=http://localhost:5000 \\
    python examples/llm_pipeline.py
"""

from __future__ import annotations

import importlib
import json
import os
import random
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span

import otel_feedback
from otel_feedback import (
    Feedback,
    FeedbackExporter,
    FeedbackSpanProcessor,
    InMemoryFeedbackExporter,
    JsonlFeedbackExporter,
    JudgedRun,
    OnlineEvaluationProcessor,
    RunHandle,
    current_run,
    record_feedback,
)

SERVICE = "support-bot"
CHAT_MODEL = "gpt-4o-mini"
EMBEDDING_MODEL = "text-embedding-3-small"
SYSTEM_PROMPT = (
    "You are Acme's support assistant. Answer from the context only and cite the "
    "documents you use as [doc-id]. If the context does not answer, say so."
)

tracer = trace.get_tracer(SERVICE)
# Seeded, so that every run of the demo looks alike.
rng = random.Random(7)


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str


KNOWLEDGE_BASE = [
    Document(
        "kb-101",
        "Refunds",
        "You can get a refund for a damaged or faulty item within 30 days of delivery; "
        "damaged items need not be sent back.",
    ),
    Document(
        "kb-102",
        "Shipping",
        "Standard shipping takes 3 to 5 business days; express shipping takes 1 to 2 "
        "business days.",
    ),
    Document(
        "kb-103",
        "Warranty",
        "Headphones and other electronics carry a 2-year limited warranty against "
        "manufacturing defects.",
    ),
    Document(
        "kb-104",
        "Order changes",
        "An order can be changed or cancelled from the Orders page until it ships.",
    ),
]

# What the canned chat model answers, by the best document in its context. The warranty
# answer is wrong on purpose (the document says 2 years): the judge and a reviewer catch it.
COMPLETIONS = {
    "kb-101": "Yes. A damaged item can be refunded within 30 days of delivery, and you do "
    "not need to send it back [kb-101].",
    "kb-102": "Express shipping takes 1 to 2 business days [kb-102].",
    "kb-103": "Headphones carry a 1-year limited warranty against manufacturing defects [kb-103].",
    None: "I could not find that in our help center. Let me connect you with an agent.",
}

# What the judge compares answers with: the facts a right answer states, from the evaluation
# set a team keeps. No facts: the help center does not cover it, and a right answer says so.
REFERENCE_FACTS = {
    "Can I get a refund for a damaged blender?": ["30 days", "not need to send it back"],
    "How long does express shipping take?": ["1 to 2 business days"],
    "How long is the warranty on headphones?": ["2-year limited warranty"],
    "Do you price-match other stores?": [],
}
QUESTIONS = list(REFERENCE_FACTS)
STOPWORDS = {"a", "an", "the", "on", "for", "of", "do", "does", "how", "is", "i", "can", "you"}


@dataclass
class Answer:
    """What the app keeps of one answered question, and what its frontend gets."""

    question: str
    text: str
    span: Span  # the answer_question span, ended once the answer is returned
    run: RunHandle  # its ids and traceparent, as sent to the frontend


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower())) - STOPWORDS


def model_latency(low_ms: int, high_ms: int) -> None:
    """Stand in for a model or a vector store answering."""
    time.sleep(rng.uniform(low_ms, high_ms) / 1000)


def tokens(text: str) -> int:
    """A tokenizer's count, roughly: four characters a token."""
    return max(1, len(text) // 4)


def embed_query(question: str) -> list[float]:
    with tracer.start_as_current_span("embed_query") as span:
        span.set_attribute("openinference.span.kind", "EMBEDDING")
        span.set_attribute("embedding.model_name", EMBEDDING_MODEL)
        span.set_attribute("embedding.embeddings.0.embedding.text", question)
        span.set_attribute("input.value", question)
        model_latency(20, 45)
        vector = [rng.uniform(-1, 1) for _ in range(8)]
        span.set_attribute("embedding.embeddings.0.embedding.vector", vector)
        return vector


def retrieve(question: str) -> list[tuple[Document, float]]:
    with tracer.start_as_current_span("retrieve") as span:
        span.set_attribute("openinference.span.kind", "RETRIEVER")
        span.set_attribute("input.value", question)
        # A vector store would search by this vector; the demo's ranks by shared words.
        embed_query(question)
        model_latency(30, 70)
        asked = words(question)
        scored = [(doc, len(asked & words(doc.text)) / len(asked)) for doc in KNOWLEDGE_BASE]
        found = sorted((hit for hit in scored if hit[1] >= 0.5), key=lambda h: -h[1])[:2]
        for i, (doc, score) in enumerate(found):
            prefix = f"retrieval.documents.{i}.document"
            span.set_attribute(f"{prefix}.id", doc.id)
            span.set_attribute(f"{prefix}.content", doc.text)
            span.set_attribute(f"{prefix}.score", round(score, 3))
            span.set_attribute(f"{prefix}.metadata", json.dumps({"title": doc.title}))
        # A check in code, while the run is open: did the knowledge base have anything?
        record_feedback(
            "retrieval_hit",
            score=bool(found),
            comment=f"best match {found[0][0].id}" if found else "no document matched",
            feedback_source_type="api",
        )
        return found


def generate(question: str, documents: Sequence[Document]) -> str:
    with tracer.start_as_current_span("generate") as span:
        context = "\n".join(f"[{doc.id}] {doc.text}" for doc in documents) or "(none)"
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {question}"},
        ]
        span.set_attribute("openinference.span.kind", "LLM")
        span.set_attribute("llm.model_name", CHAT_MODEL)
        span.set_attribute("llm.provider", "openai")
        span.set_attribute("llm.invocation_parameters", json.dumps({"temperature": 0.2}))
        span.set_attribute("input.value", json.dumps({"messages": messages}))
        span.set_attribute("input.mime_type", "application/json")
        for i, message in enumerate(messages):
            span.set_attribute(f"llm.input_messages.{i}.message.role", message["role"])
            span.set_attribute(f"llm.input_messages.{i}.message.content", message["content"])
        # The same call in the OpenTelemetry GenAI conventions; gen_ai.response.id is the
        # id the provider gave the completion, the one key log-only tools can match on.
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.provider.name", "openai")
        span.set_attribute("gen_ai.request.model", CHAT_MODEL)
        model_latency(90, 150)

        reply = COMPLETIONS[documents[0].id if documents else None]
        prompt_tokens, completion_tokens = tokens(json.dumps(messages)), tokens(reply)
        span.set_attribute("gen_ai.response.id", f"chatcmpl-{rng.getrandbits(96):024x}")
        span.set_attribute("gen_ai.response.model", f"{CHAT_MODEL}-2024-07-18")
        span.set_attribute("gen_ai.usage.input_tokens", prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", completion_tokens)
        span.set_attribute("llm.token_count.prompt", prompt_tokens)
        span.set_attribute("llm.token_count.completion", completion_tokens)
        span.set_attribute("llm.token_count.total", prompt_tokens + completion_tokens)
        span.set_attribute("llm.output_messages.0.message.role", "assistant")
        span.set_attribute("llm.output_messages.0.message.content", reply)
        span.set_attribute("output.value", reply)
        span.set_attribute("output.mime_type", "text/plain")

        # A check in code on the model's output: does it cite what it was given?
        cited = set(re.findall(r"\[(kb-\d+)\]", reply))
        given = {doc.id for doc in documents}
        record_feedback(
            "cites_sources",
            score=bool(cited) and cited <= given,
            value=", ".join(sorted(cited)) or "none",
            feedback_source_type="api",
        )
        return reply


def answer_question(question: str, session: str) -> Answer:
    """The app's entry point: one trace per question."""
    with tracer.start_as_current_span("answer_question") as span:
        span.set_attribute("openinference.span.kind", "CHAIN")
        span.set_attribute("input.value", question)
        span.set_attribute("session.id", session)
        found = retrieve(question)
        reply = generate(question, [doc for doc, _ in found])
        span.set_attribute("output.value", reply)
        # What the frontend receives with the answer: the run's ids and traceparent, so that
        # the user's rating, minutes later and in another request, finds this run.
        run = current_run()
        assert run is not None  # a recording span is current here
        return Answer(question, reply, span, run)


def judge(answer: Answer) -> tuple[float, str]:
    """An LLM judge, canned: which of the reference facts does the answer state?"""
    facts = REFERENCE_FACTS[answer.question]
    model_latency(30, 60)
    if not facts:
        return 0.5, "Not in the help center; it declines rather than guess, and hands over."
    missing = [fact for fact in facts if fact not in answer.text]
    if not missing:
        return 1.0, "States every reference fact and cites its source."
    return 1 - len(missing) / len(facts), f"Misses: {'; '.join(missing)}."


def run_the_demo() -> None:
    # 1. The app answers; checks in code record feedback inside the spans.
    answers = [answer_question(q, session="chat-8f3a") for q in QUESTIONS]

    # 2. After the run, an LLM judge scores every answer: on the ended span itself.
    verdicts = [(answer, *judge(answer)) for answer in answers]
    for answer, score, comment in verdicts:
        record_feedback(
            "correctness",
            score=score,
            comment=comment,
            feedback_source_type="model",
            source_info={"judge_model": CHAT_MODEL},
            span=answer.span,
        )

    # 3. Minutes later, in another request, the user rates two answers. The frontend sends
    #    back the traceparent it got with each answer.
    ratings = {QUESTIONS[0]: ("thumbs_up", 1), QUESTIONS[2]: ("thumbs_down", 0)}
    for answer in answers:
        if answer.question in ratings:
            label, score = ratings[answer.question]
            record_feedback(
                "user_rating",
                score=score,
                value=label,
                feedback_source_type="app",
                user_id="customer-1017",
                traceparent=answer.run.traceparent,
            )

    # 4. A reviewer works through a queue of the answers the judge scored 0, kept as
    #    LangSmith ids (strings), and writes what the answer should have been.
    review_queue = [answer.run.as_dict() for answer, score, _ in verdicts if score == 0]
    for flagged in review_queue:  # here, the warranty answer
        record_feedback(
            "correctness",
            score=0,
            comment="2 years, not 1 (kb-103).",
            correction={"answer": "Headphones carry a 2-year limited warranty [kb-103]."},
            feedback_source_type="reviewer",
            user_id="maria@support.acme.example",
            trace_id=flagged["trace_id"],
            run_id=flagged["run_id"],
        )


def example_evaluators() -> Any:
    """``examples/evaluators.py``, beside this file, however this file was loaded.

    By its package's name when imported from the repository's root (``examples.evaluators``),
    by its own when run as ``python examples/llm_pipeline.py`` (``examples/`` is then first on
    ``sys.path``).
    """
    return importlib.import_module(f"{__package__}.evaluators" if __package__ else "evaluators")


def is_llm_call(span: ReadableSpan) -> bool:
    """The spans the LLM judge reads: the chat model's calls (``generate``)."""
    return (span.attributes or {}).get("openinference.span.kind") == "LLM"


def is_question(span: ReadableSpan) -> bool:
    """The spans whose input is the user's own message: the app's entry point."""
    return span.name == "answer_question"


def online_judges(provider: TracerProvider) -> list[OnlineEvaluationProcessor]:
    """Evaluators that judge the spans as they end, in the background: one processor per
    kind of span, each with the evaluators that fit it and a span_filter that picks them.

    The judge reads the LLM call, whose input holds the retrieved documents it can check the
    answer against; the sentiment reads the question as the user typed it, the root's input.
    """
    try:
        evaluators = example_evaluators()
    except ModuleNotFoundError as missing:  # vaderSentiment or openai
        print(
            f"No online evaluators: {missing.name} is not installed "
            "(pip install 'otel-feedback[examples]')",
            file=sys.stderr,
        )
        return []
    judge: Callable[[JudgedRun], Any] = evaluators.llm_judge
    sentiment: Callable[[JudgedRun], Any] = evaluators.sentiment
    return [
        OnlineEvaluationProcessor([judge], span_filter=is_llm_call, tracer_provider=provider),
        OnlineEvaluationProcessor([sentiment], span_filter=is_question, tracer_provider=provider),
    ]


def set_up(
    jsonl_path: str | None,
) -> tuple[TracerProvider, InMemorySpanExporter, InMemoryFeedbackExporter]:
    """The SDK, from the environment when it names a destination; the summary's collectors."""
    destinations = (
        "OTEL_PYTHON_FEEDBACK_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_TRACES_EXPORTER",
    )
    if any(os.environ.get(name) for name in destinations):
        os.environ.setdefault("OTEL_SERVICE_NAME", SERVICE)
        # A provider with the OTLP span exporter the variables describe, and a processor
        # with the feedback exporters OTEL_PYTHON_FEEDBACK_EXPORTER names.
        otel_feedback.configure()
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider)
    else:
        provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
        # Global, because feedback given after a span ended rides a span of the global
        # provider.
        trace.set_tracer_provider(provider)
    # Kept in memory as well, for the summary at the end.
    spans, records = InMemorySpanExporter(), InMemoryFeedbackExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    exporters: list[FeedbackExporter] = [records]
    if jsonl_path:
        exporters.append(JsonlFeedbackExporter(jsonl_path))
    provider.add_span_processor(FeedbackSpanProcessor(exporters))
    # The online evaluators, after the processor that exports their results: its flush waits
    # for theirs.
    for judges in online_judges(provider):
        provider.add_span_processor(judges)
    return provider, spans, records


def evaluator_span_of(record: Feedback) -> int | None:
    """The span id of the evaluator span that gave ``record`` (its ``source_run_id``)."""
    metadata = record.feedback_source.metadata if record.feedback_source else None
    run = (metadata or {}).get("__run")
    return UUID(run["run_id"]).int if isinstance(run, dict) and "run_id" in run else None


def describe(record: Feedback, names: dict[int, str]) -> str:
    score = record.score
    shown = round(score, 3) if isinstance(score, float) else score
    parts = [f"{record.key} = {shown if score is not None else record.value}"]
    if record.score is not None and isinstance(record.value, str):
        parts.append(f"({record.value})")
    parts.append(f"by {record.feedback_source.type if record.feedback_source else 'api'}")
    evaluator = evaluator_span_of(record)
    if evaluator is not None and evaluator in names:
        parts.append(f"in {names[evaluator]}")
    if record.comment:
        parts.append(f'"{record.comment}"')
    if record.correction:
        parts.append(f"correction {json.dumps(record.correction)}")
    return " ".join(parts)


def print_traces(spans: Sequence[ReadableSpan], records: Sequence[Feedback]) -> None:
    """Each trace as a tree of its spans, each span followed by the feedback on it."""
    children: dict[int | None, list[ReadableSpan]] = defaultdict(list)
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        children[span.parent.span_id if span.parent else None].append(span)
    names = {s.context.span_id: s.name for s in spans if s.context is not None}
    on_run: dict[int, list[Feedback]] = defaultdict(list)
    for record in records:
        if record.run_id is not None:
            on_run[record.run_id.int].append(record)

    def show(span: ReadableSpan, depth: int) -> None:
        context = span.get_span_context()
        assert context is not None
        kind = (span.attributes or {}).get("openinference.span.kind", "-")
        took = ((span.end_time or 0) - (span.start_time or 0)) // 1_000_000
        name = f"{'  ' * depth}{span.name}"
        print(f"{name:<26} {kind!s:<10} {took:>4} ms  span {context.span_id:016x}")
        for record in on_run[context.span_id]:
            print(f"{'  ' * depth}  * {describe(record, names)}")
        for child in children[context.span_id]:
            show(child, depth + 1)

    for root in children[None]:
        context = root.get_span_context()
        assert context is not None
        print(f"\ntrace {context.trace_id:032x}: {(root.attributes or {}).get('input.value')}")
        show(root, 1)


def main() -> None:
    provider, spans, records = set_up(sys.argv[1] if len(sys.argv) > 1 else None)
    run_the_demo()
    provider.force_flush()  # spans first, then the feedback about them
    print_traces(spans.get_finished_spans(), records.get_finished_feedback())
    provider.shutdown()


if __name__ == "__main__":
    main()
