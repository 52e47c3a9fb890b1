"""Setup builds llama-cpp-python, the default serving engine, once, and says how long it
takes; a failed build stops the test setup but not the app's. The scripts run for real,
with a stand-in interpreter whose `pip wheel` "compiles" in no time (the real build takes
minutes: .ci/llamacpp.sh)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/../calls"
if [[ "$*" == *"pip wheel"* ]]; then
  [[ -n "${FAIL:-}" ]] && { echo "error: no C++ compiler" >&2; exit 1; }
  dir=""; prev=""
  for a in "$@"; do [[ $prev == --wheel-dir ]] && dir=$a; prev=$a; done
  touch "$dir/llama_cpp_python-0.3.16-cp311-cp311-linux_x86_64.whl"; exit 0
fi
if [[ "$*" == *"import llama_cpp; print"* ]]; then echo "llamacpp: ready 0.3.16"; exit 0; fi
if [[ "$*" == *"import llama_cpp"* ]]; then  # importable once installed (its stamp)
  [[ -n "$(ls "$(dirname "$0")"/../.strata-llamacpp-* 2>/dev/null)" ]]; exit
fi
exit 0
"""


def fake_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(PYTHON)
    python.chmod(0o755)
    return venv


def run(script: str, venv: Path, tmp_path: Path, *args: str, **env: str):
    return subprocess.run(["bash", str(ROOT / ".ci" / script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "VENV": str(venv),
                               "STRATA_WHEELS": str(tmp_path / "wheels"), **env})


def test_the_build_runs_once_says_how_long_it_took_and_is_then_cached(tmp_path):
    venv = fake_venv(tmp_path)
    first = run("llamacpp.sh", venv, tmp_path, "install")
    assert first.returncode == 0, first.stderr
    assert re.search(r"compiling llama-cpp-python 0\.3\.16 once \(about \d+-\d+ minutes",
                     first.stdout)
    assert re.search(r"llamacpp: compiled in \d+ min \d+ s", first.stdout)
    assert "llamacpp: ready" in first.stdout
    again = run("llamacpp.sh", venv, tmp_path, "install")
    assert again.returncode == 0 and again.stdout == ""  # installed: nothing to do
    (venv / "calls").unlink()
    for stamp in venv.glob(".strata-llamacpp-*"):
        stamp.unlink()  # a fresh virtualenv on the same machine: the cached wheel
    fresh = run("llamacpp.sh", venv, tmp_path, "install")
    assert "compiling" not in fresh.stdout and "llamacpp: ready" in fresh.stdout
    assert "pip wheel" not in (venv / "calls").read_text()


def test_a_failed_build_says_why_and_stops_the_test_setup_but_not_the_apps(tmp_path):
    venv = fake_venv(tmp_path)
    failed = run("llamacpp.sh", venv, tmp_path, "install", FAIL="1")
    assert failed.returncode == 1 and "no C++ compiler" in failed.stderr
    assert "the build failed after" in failed.stderr
    # the rest of the setup is done (its stamps): what is left is llama.cpp
    files = ["requirements.lock", "requirements-test.lock", "pyproject.toml", ".ci/setup.sh"]
    key = hashlib.sha256(b"".join((ROOT / f).read_bytes() for f in files)).hexdigest()[:16]
    (venv / f".strata-setup-{key}").touch()
    (venv / f".strata-setup-{key}-test").touch()
    app = run("setup.sh", venv, tmp_path, FAIL="1")
    assert app.returncode == 0, app.stderr
    assert "answers with the local generator" in app.stderr
    tests = run("setup.sh", venv, tmp_path, "--test", FAIL="1", PATH=_without_vllm(tmp_path))
    assert tests.returncode != 0 and "the build failed after" in tests.stderr


def _without_vllm(tmp_path: Path) -> str:
    """PATH with a `bash` that skips .ci/vllm.sh (the test setup checks vLLM's own
    virtualenv first; not what is tested here)."""
    shim = tmp_path / "shim"
    shim.mkdir()
    real = subprocess.run(["bash", "-c", "command -v bash"], capture_output=True,
                          text=True).stdout.strip()
    (shim / "bash").write_text(f'#!{real}\n[[ "$1" == .ci/vllm.sh ]] && exit 0\n'
                               f'exec {real} "$@"\n')
    (shim / "bash").chmod(0o755)
    return f"{shim}:{os.environ['PATH']}"


def test_the_image_builds_llama_cpp_for_any_avx2_cpu_with_the_scripts_other_flags():
    docker = (ROOT / "Dockerfile").read_text()
    assert re.search(r"apt-get install .*\bg\+\+ cmake\b", docker)
    image = set(re.search(r'CMAKE_ARGS="([^"]+)"', docker).group(1).split())
    script = re.search(r"CMAKE_ARGS=\$\{CMAKE_ARGS:-([^}]+)\}",
                       (ROOT / ".ci" / "llamacpp.sh").read_text()).group(1).split()
    assert {f for f in script if "NATIVE" not in f} <= image  # OpenMP off, as tested here
    assert "-DGGML_NATIVE=OFF" in image and "-DGGML_AVX2=ON" in image
