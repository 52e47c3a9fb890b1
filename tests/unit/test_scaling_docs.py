"""Every code block of docs/scaling.md is one a test runs, or (Docker, which these machines
cannot run) one checked against what the tests run: a block nobody claims here fails, so
a command added to the page comes with its test.

Runs them: tests/scale/test_serve_deployed.py (the Python example, the by-hand
`assistant serve` line's settings, the telemetry block's serve and curl lines),
tests/scale/test_scaling_docs.py (the by-hand PostgreSQL commands), the scale fixtures
(vLLM through .ci/vllm.sh, `chroma run`: the same commands, compared below).
"""

from __future__ import annotations

import shlex

import yaml

from tests.scale.docs_blocks import ROOT, Block, blocks, commands, environment, program


def by_hand(block: Block) -> bool:
    listed = commands(block.text)
    for command in listed[:-1]:
        words = shlex.split(command)
        if words[:3] == ["bash", ".ci/vllm.sh", "install"]:
            continue  # .ci/setup.sh --test runs it before the scale tier
        if words[:3] == ["bash", ".ci/vllm.sh", "serve"]:  # the vllm_server fixture's command
            assert len(words) == 6 and words[4].isdigit() and "=" in words[5], words
            continue
        if words[0].endswith("bin/chroma"):  # the chroma_server fixture's flags
            assert words[1:] == ["run", "--path", words[3], "--host", "127.0.0.1", "--port",
                                 words[7]], words
            continue
        # tests/scale/test_scaling_docs.py runs these as written
        assert "/usr/lib/postgresql/15/bin/" in command, f"no test runs: {command}"
    env = environment(listed[-1])
    assert program(listed[-1])[-2:] == [".venv/bin/assistant", "serve"], listed[-1]
    assert {"ASSISTANT_BACKEND", "ASSISTANT_CHROMA_URL", "ASSISTANT_DATABASE_URL"} <= set(env)
    return True


def compose(block: Block) -> bool:
    (command,) = commands(block.text)
    assert shlex.split(command) == ["docker", "compose", "-f", "deploy/compose.yaml", "up",
                                    "--build"]
    services = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())["services"]
    assert {"strata", "vllm", "chroma", "postgres"} <= set(services)
    db = services["postgres"]["environment"]
    url = services["strata"]["environment"]["ASSISTANT_DATABASE_URL"]
    assert url == (f"postgresql://{db['POSTGRES_USER']}:{db['POSTGRES_PASSWORD']}@postgres:5432/"
                   f"{db['POSTGRES_DB']}")
    assert "postgres" in services["strata"]["depends_on"]
    return True


def telemetry(block: Block) -> bool:
    serve, curl = commands(block.text)
    assert set(environment(serve)) == {"OTEL_EXPORTER_OTLP_ENDPOINT"}
    assert curl.startswith("curl ") and "/metrics" in curl
    return True


def llamacpp(block: Block) -> bool:
    """Checked, not run here (it compiles llama-cpp-python for minutes): the Makefile target
    and the `assistant` subcommands exist, and the backend is a setting's value
    (tests/e2e/test_llamacpp_api.py serves the app on backend=llamacpp)."""
    from assistant.cli import COMMAND_MODULES
    from assistant.settings import Settings

    listed = commands(block.text)
    assert listed[0] == "make llamacpp" and "\nllamacpp:" in (ROOT / "Makefile").read_text()
    for command in listed[1:]:
        words = program(command)
        assert words[0] == ".venv/bin/assistant" and words[1] in COMMAND_MODULES, command
        for name, value in environment(command).items():
            Settings(_env_file=None, **{name.removeprefix("ASSISTANT_").lower(): value})
    return True


def claim(block: Block) -> str | None:
    """Which test runs ``block`` (after checking it), or None."""
    if block.language == "":
        assert all(word in block.text for word in ("PostgreSQL", "OTLP", "/metrics",
                                                   "vLLM", "Chroma")), block.text
        return "the picture"
    if block.language == "python":
        assert '"http://localhost:7860/v1"' in block.text and '"KEY"' in block.text
        return "test_serve_deployed: the Python example"
    first = commands(block.text)[0]
    if first.startswith("docker compose"):
        return compose(block) and "checked against deploy/compose.yaml"
    if "Without Docker, the same by hand" in block.after:
        return by_hand(block) and "test_serve_deployed and test_scaling_docs"
    if block.heading == "Traces and metrics":
        return telemetry(block) and "test_serve_deployed: telemetry"
    if first == "make llamacpp":
        return llamacpp(block) and "checked"
    return None


def test_every_block_of_the_scaling_page_is_one_a_test_runs():
    found = blocks()
    assert len(found) >= 6
    unclaimed = [b.text for b in found if claim(b) is None]
    assert not unclaimed, unclaimed


def test_an_unknown_block_is_not_claimed():
    assert claim(Block("bash", "kubectl apply -f strata.yaml\n", "Kubernetes", "")) is None
