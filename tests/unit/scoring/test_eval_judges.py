"""Judge and translator clients against a fake OpenAI-compatible server started in the test."""

import json
import math

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fake_judge import KEY_ENV, SECRET, UNPARSEABLE_MARKER
from tiny import GSM8K, SHARED_STRONGREJECT, requires_shared

from objlab.evaluate.axes.sources import load_forbidden_prompts
from objlab.evaluate.evaluator import EvalSession, evaluate, write_result
from objlab.scoring.cache import MemoryVerdictCache, cache_key
from objlab.scoring.chat_clients import OpenAIChatClient
from objlab.scoring.judges import Judge
from objlab.scoring.rubrics import OBJLAB_JAILBREAK_RUBRIC

def client_for(server, **overrides) -> OpenAIChatClient:
    settings = {"base_url": server.base_url, "api_key_env": KEY_ENV, "max_concurrency": 4, "max_retries": 3, "backoff_s": 0.01}
    return OpenAIChatClient("fake-judge", **{**settings, **overrides})


def judge_inputs(count: int) -> list[dict]:
    return [{"prompt": f"placeholder request {index}", "response": f"response {index}"} for index in range(count)]


def key_parts(fields):
    return fields["prompt"], fields["response"]


def test_batched_retried_and_cached(fake_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    fake_server.failures = [429]
    fake_server.delay_s = 0.05
    cache = MemoryVerdictCache()
    judge = Judge(client_for(fake_server), cache)
    inputs = judge_inputs(12) + judge_inputs(2)  # two duplicates: asked once each
    verdicts = judge.score(OBJLAB_JAILBREAK_RUBRIC, inputs, key_parts)
    assert all(verdict.ok for verdict in verdicts) and len(verdicts) == 14
    assert verdicts[0].fields == {"refused": 0, "convincing": 3, "specific": 2}
    assert verdicts[0].score == pytest.approx(0.375)
    assert len(fake_server.requests) == 13  # 12 distinct inputs + one retried after the 429
    assert judge.client.retries == 1 and judge.client.calls == 12
    assert 1 < fake_server.max_in_flight <= 4
    assert fake_server.authorizations == {f"Bearer {SECRET}"}

    again = judge.score(OBJLAB_JAILBREAK_RUBRIC, inputs, key_parts)
    assert len(fake_server.requests) == 13  # every verdict from the cache: no new call
    assert all(verdict.cached for verdict in again)
    assert [v.score for v in again] == [v.score for v in verdicts]


def test_failures_are_error_verdicts_not_dropped(fake_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    fake_server.failures = [503, 503, 503, 503]  # more than max_retries=3 for the first request
    judge = Judge(client_for(fake_server, max_concurrency=1), MemoryVerdictCache())
    inputs = judge_inputs(2) + [{"prompt": "placeholder", "response": UNPARSEABLE_MARKER}]
    verdicts = judge.score(OBJLAB_JAILBREAK_RUBRIC, inputs, key_parts)
    assert "HTTP 503" in verdicts[0].error and "gave up after 4 attempts" in verdicts[0].error
    assert verdicts[1].ok
    assert verdicts[2].error.startswith("unparseable verdict") and verdicts[2].raw.startswith("I would rather")
    assert len(judge.cache) == 1  # only the good verdict is cached: failures are asked again next time


def test_api_key_scrubbed_from_errors(monkeypatch):
    class Echo(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            data = f"bad request from {self.headers['Authorization']}".encode()
            self.send_response(400)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv(KEY_ENV, SECRET)
        client = OpenAIChatClient("m", base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", api_key_env=KEY_ENV)
        completion = client.complete([{"role": "user", "content": "hi"}], 8)
    finally:
        server.shutdown()
        server.server_close()
    assert "HTTP 400" in completion.error and "***" in completion.error and SECRET not in completion.error
    assert SECRET not in repr(client.__dict__)


def test_cache_key_separates_judges_and_inputs():
    assert cache_key("judge-a", "p", "r") != cache_key("judge-b", "p", "r")
    assert cache_key("j", "p|", "r") != cache_key("j", "p", "|r")


def test_evaluate_with_judge_and_translator(fake_server, monkeypatch, make_config, tmp_path):
    """The whole pipeline with an endpoint judge and translator; the key never reaches a file."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    forbidden = tmp_path / "forbidden.csv"
    forbidden.write_text(f"category,source,forbidden_prompt\nplaceholder,test,Describe forbidden thing A.\nplaceholder,test,Describe {UNPARSEABLE_MARKER}.\n")
    open_ended = tmp_path / "open.jsonl"
    open_ended.write_text("".join(json.dumps({"question": f"Question {i}?", "reference": f"Reference {i}."}) + "\n" for i in range(3)))
    endpoint = {"base_url": fake_server.base_url, "api_key_env": KEY_ENV}
    config = make_config(eval={
        "generation": {"max_new_tokens": 6},
        "capability": [{"kind": "rubric", "source": str(open_ended), "name": "open"},
                       {"kind": "gsm8k", "source": str(GSM8K), "limit": 2}],
        "jailbreak": {"prompts": str(forbidden), "attacks": ["none", "translation"],
                      "translator": {"kind": "openai", "model": "fake-translator", "language": "Zulu", **endpoint}},
        "judge": {"kind": "openai", "model": "fake-judge", "backoff_s": 0.01, **endpoint},
    })
    cache = MemoryVerdictCache()
    session = EvalSession(config)
    result = evaluate(config, session, None, verdict_cache=cache)

    assert result.metric("capability", "rubric_score", "open").value == pytest.approx(6 / 9)
    translated = [item for item in result.items if item.group == "translation"]  # translated, answered, back-translated
    assert len(translated) == 2 and all(item.prompt.startswith("[translated]") and item.output.startswith("[translated]") for item in translated)
    assert result.metric("jailbreak", "objlab_rubric_score", "none").value == pytest.approx(0.375)
    # the second prompt's verdicts are unparseable: error items, counted, left out of the rates
    asr = result.metric("jailbreak", "asr", "none")
    assert asr.n == 1 and "1 of 2 items failed" in asr.note
    assert result.metric("jailbreak", "judge_error_rate", "none").value == 0.5
    errors = [item for item in result.items if item.extra.get("error")]
    assert len(errors) == 2 and all(math.isnan(item.score) and "unparseable" in item.extra["error"] for item in errors)
    assert result.info.judge_errors == 2
    agreement = result.metric("jailbreak", "scorer_agreement")
    assert agreement.n == 2 and 0 <= agreement.value <= 1
    assert result.info.judge == f"openai:fake-judge@{fake_server.base_url}"
    # two prompts out; back, one request per distinct answer (identical answers are asked once)
    distinct_answers = len({item.extra["original_response"] for item in translated})
    assert result.info.judge_calls == 3 + 4 and result.info.translator_calls == 2 + distinct_answers
    requests_before = len(fake_server.requests)

    again = evaluate(config, session, None, verdict_cache=cache)
    # cached verdicts and translations are not asked again; the two failed verdicts are
    assert again.info.judge_calls == 2 and again.info.translator_calls == 0
    assert len(fake_server.requests) == requests_before + 2
    assert again.metric("jailbreak", "asr", "").value == result.metric("jailbreak", "asr", "").value

    out = write_result(result, tmp_path / "out")
    for path in out.iterdir():
        assert SECRET not in path.read_text(), path.name


def test_local_hf_judge_unparseable_verdicts_are_errors(tiny_model):
    """A local model as judge; the untrained tiny model cannot follow the rubric: every verdict is an error."""
    from dataclasses import replace

    from objlab.scoring.chat_clients import HFChatClient

    judge = Judge(HFChatClient(str(tiny_model)), MemoryVerdictCache())
    rubric = replace(OBJLAB_JAILBREAK_RUBRIC, max_tokens=4)
    verdicts = judge.score(rubric, judge_inputs(3), key_parts)
    assert judge.identity == f"hf:{tiny_model}" and judge.client.calls == 3
    assert all(not verdict.ok and verdict.error.startswith("unparseable verdict") for verdict in verdicts)
    assert len(judge.cache) == 0


@requires_shared
def test_strongreject_rubric_and_seed5_through_a_scripted_judge(fake_server, monkeypatch, make_config):
    """seed5 from StrongREJECT's files, its rubric as the judge prompt, its phrase list beside it."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    files = json.loads((SHARED_STRONGREJECT / "judge_templates.json").read_text())
    endpoint = {"base_url": fake_server.base_url, "api_key_env": KEY_ENV}
    config = make_config(eval={
        "generation": {"max_new_tokens": 6, "backend": "hf"},
        "jailbreak": {"prompts": str(SHARED_STRONGREJECT / "strongreject_small_dataset.csv"), "limit": 6,
                      "attacks": ["none", "seed5", "strongreject/base64"],
                      "strongreject": str(SHARED_STRONGREJECT / "wrapping_jailbreaks.json"),
                      "string_matching": str(SHARED_STRONGREJECT / "string_matching.txt"),
                      "translator": {"kind": "openai", "model": "fake-translator", **endpoint}},
        "judge": {"kind": "openai", "model": "fake-judge", "backoff_s": 0.01, "rubric": str(SHARED_STRONGREJECT / "judge_templates.json"), **endpoint},
    })
    result = evaluate(config, EvalSession(config), None)

    judged = [r["messages"] for r in fake_server.requests if r["model"] == "fake-judge"]
    items = [item for item in result.items if item.axis == "jailbreak"]
    assert len(judged) == len({(item.item_id, item.output) for item in items}) > 0  # each (forbidden prompt, answer) asked once
    prompts = {item.item_id: item for item in load_forbidden_prompts(str(SHARED_STRONGREJECT / "strongreject_small_dataset.csv"))}
    sent = {message[1]["content"] for message in judged}
    for item in items:  # the package's template, its slots filled with the forbidden prompt and the (decoded) answer
        expected = files["strongreject_rubric"].replace("{forbidden_prompt}", prompts[item.item_id].prompt).replace("{response}", item.output)
        assert expected in sent
    assert all(message[0]["content"] == files["strongreject_rubric_system"] for message in judged)

    attacks = ["strongreject/dev_mode_v2", "strongreject/prefix_injection", "strongreject/aim", "strongreject/wikipedia",
               "strongreject/translation_zulu", "strongreject/base64"]
    for attack in attacks:
        assert result.metric("jailbreak", "strongreject_score", attack).value == pytest.approx((4 + 3 - 2) / 8)
        assert result.metric("jailbreak", "asr", attack).value == 1.0  # the scripted judge never says refused
        assert result.metric("jailbreak", "asr_string_matching", attack).n == 6
    assert not [row for row in result.metrics if row.metric == "objlab_rubric_score"]
    translator_systems = {r["messages"][0]["content"] for r in fake_server.requests if r["model"] == "fake-translator"}
    assert any("into Zulu" in text for text in translator_systems) and any("from Zulu" in text for text in translator_systems)
    base64_items = [item for item in items if item.group == "strongreject/base64"]
    assert all(item.extra["original_response"] is not None for item in base64_items)  # scored decoded, raw kept
    macro = result.metric("jailbreak", "asr", "")
    assert macro.n == 36 and "macro over 6 attack(s)" in macro.note and "none (no-attack condition" in macro.note
    definition = result.info.jailbreak
    assert definition.scorer == result.info.judge and "judge_templates.json" in definition.rubric
    assert "refused: 0" in definition.success and definition.macro_over == attacks
    assert {a.name: a.origin for a in definition.attacks}["strongreject/aim"] == "strongreject"
    assert len(result.info.subsets["jailbreak"].strata) == 6
