# syntax=docker/dockerfile:1
# The caprl-index CLI (ingest, search, status, ...). vLLM and Qdrant run from their own images:
# see docker-compose.yml and docs/deployment.md.   docker build -t caprl-index:0.1.0 .
FROM python:3.11-slim-bookworm

# libreoffice-impress: faithful slide rendering (one PDF page per slide). The fonts stand in for
# Office's (Liberation ~ Arial/Times New Roman, Carlito ~ Calibri) so slide text keeps its layout.
# libgl1, libglib2.0-0: opencv-python (pulled in by rapidocr-onnxruntime) links against them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libreoffice-impress fonts-liberation2 fonts-crosextra-carlito fonts-dejavu-core \
        libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY caprl_index ./caprl_index
# The README's install (`pip install -e ".[dev]"`) without the dev extras, from this checkout.
# pyproject.toml pins torch==2.13.0; PyTorch's CPU index serves it as 2.13.0+cpu, which satisfies
# the pin and keeps ~4 GB of CUDA libraries out of the image (the GPU work happens in vLLM).
# The index is reachable wherever images are built; the pip cache mount speeds up rebuilds.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --extra-index-url https://download.pytorch.org/whl/cpu . \
    && cd / && rm -rf /src

# Non-root. /data holds local state (caption cache, the embedded store when no Qdrant URL is set);
# a named volume mounted there inherits this ownership.
RUN useradd --create-home --uid 10001 --user-group caprl \
    && mkdir -p /data && chown caprl:caprl /data
ENV CAPRL_QDRANT_PATH=/data/qdrant \
    HF_HOME=/data/huggingface
USER caprl
WORKDIR /data

# Fail the build, not the first ingest, when LibreOffice or the entry point is broken.
RUN soffice --version && caprl-index --help > /dev/null

ENTRYPOINT ["caprl-index"]
CMD ["--help"]
