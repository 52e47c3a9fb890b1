# Strata as a Docker Space (README front matter: sdk: docker, app_port: 7860).
# The image is set up by .ci/setup.sh, the very script `make run`, `make test` and CI use;
# tests/unit/test_packaging.py fails if this file starts installing things on its own.
FROM python:3.11-slim

# g++ and cmake: setup compiles llama-cpp-python, the default serving engine, into the image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends make g++ cmake \
    && rm -rf /var/lib/apt/lists/*

# Spaces run containers as uid 1000; never run the app as root.
RUN useradd --create-home --uid 1000 user
USER user
WORKDIR /home/user/app
ENV HOME=/home/user \
    PYTHON=python3.11 \
    HF_HUB_OFFLINE=1 \
    ANONYMIZED_TELEMETRY=False \
    GRADIO_SERVER_NAME=0.0.0.0 \
    PORT=7860 \
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_OPENMP=OFF -DGGML_BLAS=OFF -DLLAMA_CURL=OFF"

COPY --chown=user . .
# The one setup, llama.cpp included (.ci/llamacpp.sh, as `make run` builds it), compiled for
# AVX2 (any x86 server of the last decade) rather than for this build machine's own CPU
# (CMAKE_ARGS above): the image runs elsewhere. Its logits check still runs at start.
RUN bash .ci/setup.sh

EXPOSE 7860
# Persistent storage on Spaces is mounted at /data: keep the knowledge base, the ledger,
# the converted model and the adapters there when it exists, so they survive restarts
# (bundled adapters are copied there when missing; ones trained in the app are never overwritten).
CMD ["sh", "-c", "if [ -d /data ] && [ -w /data ]; then export ASSISTANT_DATA_DIR=${ASSISTANT_DATA_DIR:-/data/strata} ASSISTANT_CACHE_DIR=${ASSISTANT_CACHE_DIR:-/data/cache} ASSISTANT_ADAPTERS_DIR=${ASSISTANT_ADAPTERS_DIR:-/data/adapters}; mkdir -p \"$ASSISTANT_ADAPTERS_DIR\" && cp -Rn adapters/. \"$ASSISTANT_ADAPTERS_DIR\"/; fi; exec .venv/bin/assistant serve"]
