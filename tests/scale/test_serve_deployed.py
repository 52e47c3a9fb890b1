"""The many-users deployment as it runs: `assistant serve` started as a subprocess with the
environment deploy/compose.yaml gives the `strata` service (read from the file, so the two
cannot drift), on the scale tier's real vLLM server, real `chroma run` and real PostgreSQL,
driven by the official `openai` client (docs/scaling.md's Python example, run as written)
and, for chats, an upload and a training run, by `gradio_client` (the adapter trained in the
app is then answered by vLLM). Its traces go to an OTLP receiver as docs/scaling.md's
telemetry block says, and that block's `curl` line reads its `/metrics`. A second
`assistant serve` (a replica), started with the environment of the "by hand" block of
docs/scaling.md, answers from that upload through the shared Chroma server, and the two
share one PostgreSQL ledger: a chat begun on one is continued on the other, and
`assistant stats` and `assistant logs` count both replicas' answers.

The compose file names the other services by their hostnames (vllm:8000, chroma:8000,
postgres:5432) and the shared volume's folders (/data/...), the docs blocks their ports on
127.0.0.1 (8000, 8001, 5432, 4318, 7860): they are mapped to this test's servers and
folders, as the Dockerfile's CMD maps the data folders when /data is mounted. Each process
gets a data folder of its own. Both replicas take the same login (a visitor is the same on
either) and API key, as replicas behind one address must.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
import yaml

from tests.otlp_receiver import OtlpReceiver
from tests.scale.conftest import DEMO, ROOT
from tests.scale.docs_blocks import block_after, blocks, commands, environment, program
from tests.servers import free_port, wait_ready

pytestmark = pytest.mark.scale

READY_TIMEOUT_S = 300  # the embedder and the demo documents on 2 busy cores
MODELS = {"strata": None, "strata-prompt": "prompt", "strata-layered": "layered",
          "strata-base": "base", DEMO: "adapter"}
UPLOAD = ("# Brackenfold lido\n\n## Tickets\n\nA swim at the Brackenfold lido costs 3.40 "
          "pounds before nine in the morning.\n")
ALICE = ("alice", "wonderland")  # ASSISTANT_AUTH on every replica
KEY = "scale-test-key"  # ASSISTANT_API_KEYS: the docs' KEY
QUESTION = "When does the Kestle Top car park open?"
FOLLOW_UP = "And when does it close?"


@dataclass
class Replica:
    process: subprocess.Popen
    url: str
    log: Path
    env: dict[str, str]


def common_environment() -> dict[str, str]:
    """What both replicas get besides their documented settings: one login and one API key
    (replicas behind one address must agree on them), short answers (the test's budget)."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
            "ASSISTANT_AUTH": ":".join(ALICE), "ASSISTANT_API_KEYS": KEY,
            "ASSISTANT_MAX_NEW_TOKENS": "32"}


def on_test_database(documented: str, database_url: str) -> str:
    """A documented database URL moved to this test's database (host, port, name); its user
    and password stay (the throwaway cluster trusts 127.0.0.1)."""
    from sqlalchemy.engine import make_url

    real = make_url(database_url)
    return make_url(documented).set(host=real.host, port=real.port, database=real.database
                                    ).render_as_string(hide_password=False)


def by_hand_environment(vllm_url: str, chroma_url: str, database_url: str) -> dict[str, str]:
    """The ASSISTANT_* assignments of docs/scaling.md's by-hand `assistant serve` line, its
    127.0.0.1 ports (vLLM's 8000, Chroma's 8001, PostgreSQL's 5432) mapped to this test's."""
    command = commands(block_after("Without Docker, the same by hand").text)[-1]
    words = program(command)
    assert words[-1] == "serve" and words[-2].endswith("assistant"), command
    env = environment(command)
    ports = {"127.0.0.1:8000": urlparse(vllm_url).netloc,
             "127.0.0.1:8001": urlparse(chroma_url).netloc}
    for documented, real in ports.items():
        env = {key: value.replace(documented, real) for key, value in env.items()}
    env["ASSISTANT_DATABASE_URL"] = on_test_database(env["ASSISTANT_DATABASE_URL"],
                                                     database_url)
    assert env["ASSISTANT_BACKEND"] == "openai" and len(env) >= 5, env
    return env


def compose_environment(vllm_url: str, chroma_url: str, adapters: Path,
                        database_url: str) -> dict[str, str]:
    """The `strata` service's environment, its hostnames and /data folders mapped here."""
    services = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())["services"]
    env = {k: str(v) for k, v in services["strata"]["environment"].items()}
    hosts = {"vllm:8000": urlparse(vllm_url).netloc, "chroma:8000": urlparse(chroma_url).netloc}
    mapped = {}
    for key, value in env.items():
        for name, real in hosts.items():
            value = value.replace(f"//{name}", f"//{real}")
        mapped[key] = value.replace("/data/adapters", str(adapters))
    assert "@postgres:5432/" in mapped["ASSISTANT_DATABASE_URL"]  # compose's postgres service
    mapped["ASSISTANT_DATABASE_URL"] = on_test_database(mapped["ASSISTANT_DATABASE_URL"],
                                                        database_url)
    assert mapped["ASSISTANT_BACKEND"] == "openai"  # what this test is about
    return mapped


def telemetry_block() -> list[str]:
    """docs/scaling.md's telemetry commands: the serve line with its OTLP variable, the curl
    line that reads /metrics."""
    listed = commands(block_after("## Traces and metrics").text)
    assert len(listed) == 2 and listed[1].startswith("curl "), listed
    return listed


def start_serve(env: dict[str, str], log: Path) -> Replica:
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "assistant.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    replica = Replica(process, f"http://127.0.0.1:{port}", log, env)
    try:
        wait_ready(process, f"{replica.url}/v1/models", log, READY_TIMEOUT_S, "serve", 1,
                   headers={"Authorization": f"Bearer {KEY}"})
    except BaseException:
        stop(process)
        raise
    return replica


def stop(process: subprocess.Popen) -> int | None:
    """SIGTERM, as a container platform stops it; SIGKILL if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
            return None
    return process.returncode


def cli(args: list[str], env: dict[str, str]) -> dict:
    """`assistant ARGS --json` in a process of its own, as an operator runs it."""
    done = subprocess.run([sys.executable, "-m", "assistant.cli", *args, "--json"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def texts(history: list[dict]) -> list[str]:
    return [part["text"] for m in history for part in m["content"] if part.get("type") == "text"]


@pytest.fixture(scope="module")
def shared_database(postgres_server):
    """The replicas' one PostgreSQL database (a new one on the session's cluster)."""
    return postgres_server.new_database("replicas")


@pytest.fixture(scope="module")
def otlp():
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def deployed(vllm_server, chroma_server, shared_database, otlp, tmp_path_factory):
    """`assistant serve` as compose starts it, its traces sent as the docs' telemetry block
    says; stopped with SIGTERM, killed if it lingers."""
    data = tmp_path_factory.mktemp("strata-deployed")
    traces = environment(telemetry_block()[0])
    env = {**common_environment(),
           **compose_environment(vllm_server.url, chroma_server.url, vllm_server.adapters_dir,
                                 shared_database),
           **{k: v.replace("http://127.0.0.1:4318", otlp.endpoint) for k, v in traces.items()},
           # what the Dockerfile's CMD sets when /data is mounted
           "ASSISTANT_DATA_DIR": str(data / "strata"),
           "ASSISTANT_ADAPTERS_DIR": str(vllm_server.adapters_dir),
           "ASSISTANT_TRAIN_MAX_STEPS": "2"}  # an adapter trained in the app: in a minute
    replica = start_serve(env, data / "serve.log")
    try:
        yield replica
    finally:
        assert stop(replica.process) == 0, replica.log.read_text()[-3000:]


@pytest.fixture(scope="module")
def replica(vllm_server, chroma_server, shared_database, tmp_path_factory):
    """A second `assistant serve`, started with the by-hand block's settings."""
    data = tmp_path_factory.mktemp("strata-by-hand")
    env = {**common_environment(),
           **by_hand_environment(vllm_server.url, chroma_server.url, shared_database),
           "ASSISTANT_DATA_DIR": str(data / "data")}  # not the repository's ./data
    started = start_serve(env, data / "serve.log")
    try:
        yield started
    finally:
        assert stop(started.process) == 0, started.log.read_text()[-3000:]


def test_every_mode_answers_through_the_deployed_entry_point(deployed, otlp):
    from openai import OpenAI

    client = OpenAI(base_url=f"{deployed.url}/v1", api_key=KEY, max_retries=0)
    served = {m.id for m in client.models.list()}
    assert set(MODELS) <= served, served
    for model, mode in MODELS.items():
        reply = client.chat.completions.create(
            model=model, max_tokens=24, temperature=0,
            messages=[{"role": "user", "content": "How much is the new connection fee?"}])
        strata = reply.model_extra["strata"]
        assert reply.choices[0].message.content and reply.usage.completion_tokens > 0, model
        assert mode is None or strata["mode"] == mode, (model, strata)
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="strata-base", max_tokens=16, temperature=0, stream=True,
        messages=[{"role": "user", "content": "Say hello."}]) if c.choices]
    assert "".join(pieces).strip()
    assert "Traceback" not in deployed.log.read_text()
    spans = otlp.wait_for("strata.answer", count=len(MODELS) + 1, timeout_s=30)
    answers = [s for s in spans if s.name == "strata.answer"]
    assert len(answers) >= len(MODELS) + 1, [s.name for s in spans]
    assert {"prompt", "layered", "base", "adapter"} <= {
        s.attributes.get("strata.mode") for s in answers}, [s.attributes for s in answers]


def test_the_docs_python_example_and_metrics_line_run_as_written(deployed):
    (example,) = [b.text for b in blocks() if b.language == "python"]
    assert '"http://localhost:7860/v1"' in example and '"KEY"' in example
    code = (example.replace("http://localhost:7860/v1", f"{deployed.url}/v1")
            .replace('"KEY"', repr(KEY)))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip().endswith("prompt"), done
    curl = telemetry_block()[1]
    assert "Bearer KEY" in curl and "127.0.0.1:7860" in curl, curl
    curl = (curl.replace("Bearer KEY", f"Bearer {KEY}")
            .replace("127.0.0.1:7860", urlparse(deployed.url).netloc))
    done = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60)
    counters = [line for line in done.stdout.splitlines()
                if line.startswith("strata_answers_total{")]
    assert done.returncode == 0 and counters, (done.stdout, done.stderr)
    assert any('mode="prompt"' in line and float(line.split()[-1]) >= 1 for line in counters)


def test_an_adapter_trained_in_the_web_app_is_answered_by_vllm(deployed, vllm_server,
                                                               tmp_path):
    from gradio_client import Client, handle_file
    from openai import OpenAI

    pairs = tmp_path / "pairs.jsonl"
    lines = (ROOT / "knowledge" / DEMO / "qa" / "train.jsonl").read_text().splitlines()
    pairs.write_text("\n".join(lines[:16]) + "\n")
    job = Client(deployed.url, auth=ALICE, verbose=False).submit(
        "trained-in-app", handle_file(str(pairs)), 1, False, api_name="/train_adapter")
    status, _ = job.result(timeout=600)  # the last update: how the run ended
    assert "Trained **trained-in-app**" in status, (status, deployed.log.read_text()[-3000:])
    client = OpenAI(base_url=f"{deployed.url}/v1", api_key=KEY, max_retries=0)
    assert "trained-in-app" in {m.id for m in client.models.list()}
    reply = client.chat.completions.create(
        model="trained-in-app", max_tokens=16, temperature=0,
        messages=[{"role": "user", "content": "How much is the new connection fee?"}])
    assert reply.choices[0].message.content
    assert reply.model_extra["strata"]["adapter"] == "trained-in-app"
    served = httpx.get(f"{vllm_server.url}/models").json()["data"]
    assert "trained-in-app" in {m["id"] for m in served}  # loaded into vLLM at run time


def test_an_upload_through_the_web_app_is_answered_from_by_the_by_hand_process(
        deployed, replica, tmp_path):
    from gradio_client import Client, handle_file
    from openai import OpenAI

    doc = tmp_path / "brackenfold-lido.md"
    doc.write_text(UPLOAD)
    Client(deployed.url, auth=ALICE, verbose=False).predict(
        [handle_file(str(doc))], "leisure", api_name="/upload")
    client = OpenAI(base_url=f"{replica.url}/v1", api_key=KEY, max_retries=0)
    reply = client.chat.completions.create(
        model="strata-prompt", max_tokens=24, temperature=0,
        messages=[{"role": "user", "content": "How much is a swim at the Brackenfold "
                                              "lido before nine?"}])
    sources = [s["name"] for s in reply.model_extra["strata"]["sources"]]
    assert "brackenfold-lido.md" in sources, reply.model_extra["strata"]


def test_two_replicas_on_one_postgresql_share_chats_and_answers(deployed, replica,
                                                                shared_database, tmp_path):
    """A chat begun in one replica's web app is reopened and continued in the other's, and
    reopened again in the first; `assistant stats` and `assistant logs`, run apart from
    both, count every replica's answers."""
    from gradio_client import Client
    from openai import OpenAI

    operator = {**common_environment(), "ASSISTANT_DATABASE_URL": replica.env[
        "ASSISTANT_DATABASE_URL"], "ASSISTANT_DATA_DIR": str(tmp_path / "operator")}
    assert operator["ASSISTANT_DATABASE_URL"].endswith(shared_database.rsplit("/", 1)[1])
    before = cli(["stats"], operator)["overall"]["count"]
    on_a = Client(deployed.url, auth=ALICE, verbose=False)
    history, _, first = on_a.predict(QUESTION, [], "base", "", api_name="/chat")
    assert first["ledger_id"]
    chats = cli(["logs", "--owner", "alice"], operator)["conversations"]
    (chat,) = [c for c in chats if c["title"] == QUESTION]

    on_b = Client(replica.url, auth=ALICE, verbose=False)
    on_b.predict(api_name="/conversations")  # what the sidebar lists on page load
    reopened, title, _, _ = on_b.predict(chat["id"], api_name="/open_conversation")
    assert texts(reopened)[0] == QUESTION and title == QUESTION
    _, _, second = on_b.predict(FOLLOW_UP, reopened, "base", "", api_name="/chat")
    assert second["history_turns"] == 2 and second["ledger_id"]
    api_b = OpenAI(base_url=f"{replica.url}/v1", api_key=KEY, max_retries=0)
    reply = api_b.chat.completions.create(
        model="strata-base", max_tokens=8, temperature=0,
        messages=[{"role": "user", "content": "Say hello."}])
    third = reply.model_extra["strata"]["ledger_id"]

    on_a.predict(api_name="/conversations")  # a page loaded again on A
    again, _, _, _ = on_a.predict(chat["id"], api_name="/open_conversation")
    assert len(texts(again)) == 4 and texts(again)[2] == FOLLOW_UP  # continued on B

    stats = cli(["stats"], operator)
    assert stats["overall"]["count"] == before + 3, stats["overall"]
    assert stats["ledger"].startswith("postgresql") and "@127.0.0.1:" in stats["ledger"]
    answers = {a["id"] for a in cli(["logs", "-n", "20"], operator)["answers"]}
    assert {first["ledger_id"], second["ledger_id"], third} <= answers
