"""The example evaluators (examples/evaluators.py) on runs made here, and their OpenAI stand-in.

The LLM judge goes through the real ``openai`` client to the loopback stand-in of
examples/_openai_standin.py (which is not OpenAI); every answer of the stand-in is read with
the ``openai`` package's own ``ChatCompletion`` model.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from otel_feedback import JudgedRun

# The examples extra; the run against the lowest versions of the package's own dependencies
# goes without it.
openai = pytest.importorskip("openai")
pytest.importorskip("vaderSentiment")
ChatCompletion = importlib.import_module("openai.types.chat").ChatCompletion
# Imported by name, as --evaluator names them: examples/ is no package, and type checkers
# read its files as top-level modules.
evaluators = importlib.import_module("examples.evaluators")
standin = importlib.import_module("examples._openai_standin")

pytestmark = [
    # vaderSentiment 3.3.2 reads its lexicons with codecs.open, which Python 3.14 deprecates;
    # on 3.10 to 3.13 it warns about nothing. Its own warning only, not a blanket filter.
    pytest.mark.filterwarnings(
        r"ignore:codecs\.open\(\) is deprecated:DeprecationWarning:vaderSentiment"
    ),
]

QUESTION = "How long is the warranty on headphones?"
CONTEXT = (
    "Context:\n[kb-103] Headphones and other electronics carry a 2-year limited warranty "
    f"against manufacturing defects.\n\nQuestion: {QUESTION}"
)
RIGHT = "Headphones carry a 2-year limited warranty against manufacturing defects [kb-103]."
WRONG = "Headphones carry a 1-year limited warranty against manufacturing defects [kb-103]."


def make_run(
    input_text: str | None = QUESTION, output_text: str | None = RIGHT, **fields: Any
) -> JudgedRun:
    values: dict[str, Any] = {
        "name": "answer_question",
        "trace_id": 0x4BF92F3577B34DA6A3CE929D0E0E4736,
        "span_id": 0x00F067AA0BA902B7,
        "parent_span_id": None,
        "kind": "chain",
        "span_kind": "internal",
        "status": "ok",
        "error": None,
        "start_time": None,
        "end_time": None,
        "attributes": {},
        "events": (),
        "resource": {"service.name": "support-bot"},
        "scope": "support-bot",
        "inputs": {"input": input_text} if input_text is not None else {},
        "outputs": {"output": output_text} if output_text is not None else {},
        "convention": "openinference",
        "input_text": input_text,
        "output_text": output_text,
    }
    values.update(fields)
    return JudgedRun(**values)


@pytest.fixture
def judge_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The judge configured, as a deployment would, to a stand-in of its own."""
    with standin.running() as base_url:
        monkeypatch.setenv("OPENAI_BASE_URL", base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.delenv("JUDGE_MODEL", raising=False)
        yield base_url


def answering(monkeypatch: pytest.MonkeyPatch, base_url: str) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def post(base_url: str, path: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(
        base_url + path, data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


# --- sentiment ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Thank you so much, that was really helpful!", "positive"),
        ("This is terrible. My order arrived broken and nobody answers.", "negative"),
        ("Where is my order?", "neutral"),
    ],
)
def test_sentiment_of_the_users_message(text: str, label: str) -> None:
    result = evaluators.sentiment(make_run(input_text=text))
    assert set(result) == {"key", "score", "value"}
    assert result["key"] == "user_sentiment"
    assert result["value"] == label
    assert -1 <= result["score"] <= 1
    if label == "positive":
        assert result["score"] >= 0.05
    elif label == "negative":
        assert result["score"] <= -0.05
    else:
        assert -0.05 < result["score"] < 0.05


def test_sentiment_reads_the_input_not_the_output() -> None:
    happy_user = make_run(input_text="I love this shop!", output_text="That is terrible news.")
    assert evaluators.sentiment(happy_user)["value"] == "positive"


@pytest.mark.parametrize("text", [None, "", "   \n"])
def test_sentiment_has_nothing_to_say_without_input(text: str | None) -> None:
    assert evaluators.sentiment(make_run(input_text=text)) is None


class FixedCompound:
    def __init__(self, compound: float) -> None:
        self.compound = compound

    def polarity_scores(self, text: str) -> dict[str, float]:
        return {"neg": 0.0, "neu": 1.0, "pos": 0.0, "compound": self.compound}


@pytest.mark.parametrize(
    ("compound", "label"),
    [
        (0.05, "positive"),
        (0.0499, "neutral"),
        (0.0, "neutral"),
        (-0.0499, "neutral"),
        (-0.05, "negative"),
        (-1.0, "negative"),
    ],
)
def test_sentiment_labels_by_vaders_thresholds(
    monkeypatch: pytest.MonkeyPatch, compound: float, label: str
) -> None:
    monkeypatch.setattr(evaluators, "_analyzer", FixedCompound(compound))
    result = evaluators.sentiment(make_run(input_text="anything"))
    assert result == {"key": "user_sentiment", "score": compound, "value": label}


def test_the_analyzer_is_built_once_for_all_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    real = evaluators.SentimentIntensityAnalyzer

    def counting() -> object:
        analyzer = real()
        built.append(analyzer)
        return analyzer

    monkeypatch.setattr(evaluators, "_analyzer", None)
    monkeypatch.setattr(evaluators, "SentimentIntensityAnalyzer", counting)
    threads, start = 8, threading.Barrier(8)
    results: list[dict[str, Any]] = []

    def judge() -> None:
        start.wait(timeout=10)
        results.append(evaluators.sentiment(make_run(input_text="Great, thanks!")))

    workers = [threading.Thread(target=judge) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert len(built) == 1
    assert evaluators._analyzer is built[0]
    assert len(results) == threads
    assert all(result == results[0] for result in results)
    assert results[0]["value"] == "positive"


def test_vader_reads_its_lexicon_from_its_package_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object) -> None:
        raise AssertionError("vaderSentiment tried to connect")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(evaluators, "_analyzer", None)
    result = evaluators.sentiment(make_run(input_text="What a wonderful day"))
    assert result["value"] == "positive"
    # Its lexicon and its emoji lexicon, read whole from the package's directory.
    assert len(evaluators._analyzer.lexicon) > 7000
    assert len(evaluators._analyzer.emojis) > 3000


# --- checks in code ----------------------------------------------------------------------------


def test_cites_source_passes_an_answer_citing_what_it_was_given() -> None:
    result = evaluators.cites_source(make_run(input_text=CONTEXT, output_text=RIGHT))
    assert result == {
        "key": "cites_source",
        "score": 1,
        "value": "kb-103",
        "comment": "Cites kb-103.",
    }


def test_cites_source_takes_any_citation_when_the_input_shows_no_documents() -> None:
    result = evaluators.cites_source(make_run(output_text="See [kb-7] and [kb-12], and [kb-7]."))
    assert result["score"] == 1
    assert result["value"] == "kb-12, kb-7"


def test_cites_source_fails_an_answer_without_citation() -> None:
    result = evaluators.cites_source(make_run(output_text="It is two years, see kb 103."))
    assert result["score"] == 0
    assert result["value"] == "none"
    assert "[kb-N]" in result["comment"]


def test_cites_source_fails_a_citation_of_a_document_it_was_not_given() -> None:
    answer = "Two years [kb-103], or see [kb-999]."
    result = evaluators.cites_source(make_run(input_text=CONTEXT, output_text=answer))
    assert result["score"] == 0
    assert result["value"] == "kb-103, kb-999"
    assert "kb-999" in result["comment"]
    assert "(kb-103)" in result["comment"]


@pytest.mark.parametrize("evaluator", ["cites_source", "json_answer"])
@pytest.mark.parametrize("output", [None, "", "  "])
def test_checks_have_nothing_to_say_without_output(evaluator: str, output: str | None) -> None:
    assert getattr(evaluators, evaluator)(make_run(output_text=output)) is None


def test_json_answer_passes_a_structured_answer() -> None:
    output = json.dumps({"answer": "Two years.", "sources": ["kb-103"], "confidence": 0.9})
    result = evaluators.json_answer(make_run(output_text=output))
    assert result == {
        "key": "json_answer",
        "score": 1,
        "comment": "A JSON answer with its sources.",
    }


@pytest.mark.parametrize(
    ("output", "comment"),
    [
        ("Two years [kb-103].", "Not JSON: Expecting value: line 1 column 1 (char 0)."),
        ('{"answer": "Two years.", "sources": [', "Not JSON: Expecting value: line 1 column 38"),
        ('["kb-103"]', "A JSON list, not an object."),
        ('"Two years."', "A JSON str, not an object."),
        ('{"answer": "Two years."}', "Sources is missing"),
        ("{}", "Answer is missing; sources is missing"),
        ('{"answer": 2, "sources": "kb-103"}', "Answer is not a str; sources is not a list"),
        ('{"answer": " ", "sources": []}', "Answer is empty"),
        (
            '{"answer": "Two years.", "sources": ["kb-103", "the manual", 7]}',
            'Sources has ["the manual", 7], not knowledge-base ids (kb-N)',
        ),
    ],
)
def test_json_answer_says_what_is_wrong(output: str, comment: str) -> None:
    result = evaluators.json_answer(make_run(output_text=output))
    assert result["key"] == "json_answer"
    assert result["score"] == 0
    assert result["comment"].startswith(comment)


# --- the stand-in ------------------------------------------------------------------------------


def chat_body(content: str, **fields: Any) -> bytes:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}
    return json.dumps({**body, **fields}).encode()


def test_standin_answers_a_valid_chat_completion() -> None:
    prompt = f"<question>\n{CONTEXT}\n</question>\n<answer>\n{RIGHT}\n</answer>"
    with standin.running() as base_url:
        status, body = post(base_url, "/chat/completions", chat_body(prompt))
        again = post(base_url, "/chat/completions", chat_body(prompt))[1]
    assert status == 200
    completion = ChatCompletion.model_validate(body)
    # Nothing the openai package's model does not know.
    assert completion.model_dump(exclude_unset=True) == body
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    verdict = json.loads(completion.choices[0].message.content)
    assert verdict["score"] == 1.0
    assert "kb-103" in verdict["reasoning"]
    # The same prompt, the same answer.
    assert (again["id"], again["choices"]) == (body["id"], body["choices"])


def test_standin_answers_a_prompt_that_is_no_judge_prompt_in_plain_text() -> None:
    with standin.running() as base_url:
        status, body = post(base_url, "/chat/completions", chat_body("Hello there"))
    assert status == 200
    content = ChatCompletion.model_validate(body).choices[0].message.content
    assert "<question>" in content
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": "", "messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": "gpt-4o-mini"}', "messages"),
        (b'{"model": "gpt-4o-mini", "messages": []}', "messages"),
        (b'{"model": "gpt-4o-mini", "messages": ["hi"]}', "messages[0]"),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}]}', "messages[0].content"),
        (b"[]", None),
        (b"not json", None),
    ],
)
def test_standin_refuses_a_malformed_request_as_the_api_does(
    body: bytes, param: str | None
) -> None:
    with standin.running() as base_url:
        status, answer = post(base_url, "/chat/completions", body)
    assert status == 400
    assert answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["param"] == param
    assert answer["error"]["message"]


def test_standin_refusal_reaches_the_openai_client_as_its_error() -> None:
    with standin.running() as base_url:
        client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=5)
        with client, pytest.raises(openai.BadRequestError) as raised:
            client.chat.completions.create(model="", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.status_code == 400
    assert raised.value.param == "model"
    assert "model parameter" in raised.value.message


def test_standin_has_only_chat_completions() -> None:
    with standin.running() as base_url:
        status, answer = post(base_url, "/embeddings", chat_body("hi"))
    assert status == 404
    assert "/v1/embeddings" in answer["error"]["message"]


def test_standin_stops() -> None:
    base_url, stop = standin.start()
    assert post(base_url, "/chat/completions", chat_body("hi"))[0] == 200
    stop()
    stop()  # twice is harmless
    with pytest.raises(urllib.error.URLError):
        post(base_url, "/chat/completions", chat_body("hi"))


@pytest.mark.parametrize(
    ("question", "answer", "score", "reasoning"),
    [
        (CONTEXT, RIGHT, 1.0, "It addresses the question"),
        (
            CONTEXT,
            WRONG,
            0.0,
            "states 1, which the question's context does not support (it gives 2)",
        ),
        (QUESTION, WRONG, 1.0, "It cites kb-103."),  # no context: no figure to check against
        (QUESTION, "They carry a limited warranty.", 0.5, "It cites no knowledge-base article."),
        (QUESTION, "Please contact an agent [kb-1].", 0.5, "It does not address"),
        (QUESTION, "I do not know.", 0.0, "does not address"),
        (QUESTION, "", 0.0, "The answer is empty."),
    ],
)
def test_standin_grading_rule(question: str, answer: str, score: float, reasoning: str) -> None:
    prompt = f"<question>\n{question}\n</question>\n<answer>\n{answer}\n</answer>"
    verdict = json.loads(standin.judge_reply([{"role": "user", "content": prompt}]))
    assert verdict["score"] == score
    assert reasoning in verdict["reasoning"]


# --- the LLM judge -----------------------------------------------------------------------------


def test_llm_judge_through_the_openai_client(judge_url: str) -> None:
    right = evaluators.llm_judge(make_run(input_text=CONTEXT, output_text=RIGHT))
    wrong = evaluators.llm_judge(make_run(input_text=CONTEXT, output_text=WRONG))
    assert right["key"] == wrong["key"] == "correctness"
    assert right["score"] == 1.0
    assert "kb-103" in right["comment"]
    assert wrong["score"] == 0.0
    assert "states 1" in wrong["comment"]
    assert set(right) == {"key", "score", "comment"}


def test_llm_judge_async_through_the_async_openai_client(judge_url: str) -> None:
    async def both() -> tuple[Any, Any]:
        return await asyncio.gather(
            evaluators.llm_judge_async(make_run(input_text=CONTEXT, output_text=RIGHT)),
            evaluators.llm_judge_async(make_run(input_text=CONTEXT, output_text=WRONG)),
        )

    right, wrong = asyncio.run(both())
    assert right == evaluators.llm_judge(make_run(input_text=CONTEXT, output_text=RIGHT))
    assert right["score"] == 1.0
    assert wrong["score"] == 0.0
    # A second event loop: no client of the first is reused.
    assert asyncio.run(evaluators.llm_judge_async(make_run()))["score"] == 1.0


def test_llm_judge_sends_the_question_and_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[Mapping[str, Any]]] = []

    def recording(messages: list[Mapping[str, Any]]) -> str:
        seen.append(messages)
        reply: str = standin.judge_reply(messages)
        return reply

    with standin.running(recording) as base_url:
        answering(monkeypatch, base_url)
        result = evaluators.llm_judge(make_run(input_text=QUESTION, output_text=RIGHT))
    assert result["score"] == 1.0
    [messages] = seen
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "JSON" in messages[0]["content"]
    assert (
        messages[1]["content"]
        == f"<question>\n{QUESTION}\n</question>\n<answer>\n{RIGHT}\n</answer>"
    )


def test_llm_judge_without_configuration_asks_the_loopback_standin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    first = evaluators.llm_judge(make_run(input_text=CONTEXT, output_text=WRONG))
    url = evaluators._standin_url
    second = asyncio.run(
        evaluators.llm_judge_async(make_run(input_text=CONTEXT, output_text=RIGHT))
    )
    assert url is not None
    assert url.startswith("http://127.0.0.1:")
    assert evaluators._standin_url == url  # started once, on first use
    assert first["score"] == 0.0
    assert second["score"] == 1.0


@pytest.mark.parametrize(
    ("input_text", "output_text"), [(None, RIGHT), (QUESTION, None), ("", " ")]
)
def test_llm_judge_has_nothing_to_say_without_question_or_answer(
    monkeypatch: pytest.MonkeyPatch, input_text: str | None, output_text: str | None
) -> None:
    # Nothing listens here: a call would fail.
    answering(monkeypatch, "http://127.0.0.1:9/v1")
    run = make_run(input_text=input_text, output_text=output_text)
    assert evaluators.llm_judge(run) is None
    assert asyncio.run(evaluators.llm_judge_async(run)) is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("Sure! The answer looks right to me.", "Invalid JSON"),
        ('{"score": 0.8}', "reasoning: Field required"),
        ('{"score": 7, "reasoning": "Good."}', "score: Input should be less than or equal to 1"),
        ('{"score": "0.8", "reasoning": "Good."}', "score: Input should be a valid number"),
        ('{"score": true, "reasoning": "Good."}', "score: Input should be a valid number"),
        ('{"score": 0.8, "reasoning": ""}', "reasoning: String should have at least 1 character"),
        ("[0.8]", "Input should be an object"),
        ('{"score": 0.8, "reasoning": "cut sh', "Invalid JSON"),
    ],
)
def test_a_judge_answering_garbage_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, content: str, problem: str
) -> None:
    run = make_run(input_text=CONTEXT, output_text=RIGHT)
    with standin.running(lambda messages: content) as base_url:
        answering(monkeypatch, base_url)
        with pytest.raises(evaluators.JudgeAnswerError) as raised:
            evaluators.llm_judge(run)
        with pytest.raises(evaluators.JudgeAnswerError) as raised_async:
            asyncio.run(evaluators.llm_judge_async(run))
    message = str(raised.value)
    assert message == str(raised_async.value)
    assert message.startswith('The judge\'s answer is not a JSON {"score": 0..1, "reasoning": ...}')
    assert problem in message
    assert repr(content[:200]) in message
    assert isinstance(raised.value, ValueError)


def test_a_judge_answering_nothing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with standin.running(lambda messages: "  ") as base_url:
        answering(monkeypatch, base_url)
        with pytest.raises(evaluators.JudgeAnswerError, match="The judge answered nothing"):
            evaluators.llm_judge(make_run())


def test_a_judge_that_never_answers_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    # A socket that takes connections (the kernel's backlog) and never answers.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        monkeypatch.setattr(evaluators, "JUDGE_TIMEOUT_S", 0.2)
        monkeypatch.setattr(evaluators, "JUDGE_RETRIES", 0)
        answering(monkeypatch, f"http://127.0.0.1:{silent.getsockname()[1]}/v1")
        with pytest.raises(openai.APITimeoutError):
            evaluators.llm_judge(make_run())
        with pytest.raises(openai.APITimeoutError):
            asyncio.run(evaluators.llm_judge_async(make_run()))


def test_the_evaluators_are_plain_callables_of_one_run() -> None:
    suggested = [evaluators.sentiment, evaluators.cites_source, evaluators.llm_judge]
    assert list(evaluators.EVALUATORS) == suggested
    assert inspect.iscoroutinefunction(evaluators.llm_judge_async)
    assert not inspect.iscoroutinefunction(evaluators.llm_judge)
