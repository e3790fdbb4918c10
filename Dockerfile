# syntax=docker/dockerfile:1
#
# The ecsop daemon image.
#
#   docker build -t ecsop .
#   docker run --read-only --tmpfs /tmp -v "$PWD/specs:/specs:ro" \
#       -e AWS_REGION=us-east-1 -p 9100:9100 ecsop --specs /specs
#
# `build` makes wheels for ecsop and every dependency; `runtime` (the last stage,
# so the default target) installs them offline into a clean slim image. The
# final image holds no compiler, no wheel files, no pip cache and no pip.
# It runs as UID/GID 10001 and never writes outside /tmp, so it runs with a
# read-only root filesystem. git is installed because ecsop runs
# `git rev-parse HEAD` in the spec directory to report (and tag task
# definitions with) the spec commit. `--target sandbox` builds the local-trial
# image (with moto, for `ecsop run --sandbox`; see helm-free-deploy/compose).
#
# Supply chain: the base image is pinned by digest, and every Python dependency
# is installed from requirements/*.txt with `pip --require-hashes` (hashes of the
# files on PyPI; regenerate them with tools/lock). Only ecsop's own wheel, built
# here from this context, is installed without a hash.
#
# Tests: tests/deploy/test_dockerfile.py checks these properties and replays
# the build commands in a throwaway virtualenv.

# python:3.12-slim-bookworm (Python 3.12.13), its multi-platform index digest as
# docker-library/repo-info records it (repos/python/remote/3.12-slim-bookworm.md,
# commit 3effc3ea). Refresh: docker buildx imagetools inspect python:3.12-slim-bookworm
# (or crane digest python:3.12-slim-bookworm) and paste the index digest here.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm@sha256:4766d8b510c428e595d74b9cc5bbb2fae8e26316fffb4adc89908d79aacd58a2

# --- build: wheels for ecsop and its dependencies ---------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The dependencies first (a layer that changes only with the lock), each file
# checked against its hash; then ecsop itself, without dependencies.
COPY requirements ./requirements
RUN pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- build-sandbox: the same plus moto, for the local trial only --------------------
# Built only when asked for (`--target sandbox`, as helm-free-deploy/compose does).
FROM build AS build-sandbox
RUN pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels -r requirements/sandbox.txt

# --- base: what both images share ---------------------------------------------------
FROM ${PYTHON_IMAGE} AS base

ARG ECSOP_UID=10001
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    ECSOP_LOG_FORMAT=json \
    ECSOP_METRICS_PORT=9100

# git only (no recommends: no ssh, no perl extras), and no apt lists left behind.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/* /var/log/apt /var/log/dpkg.log \
    && groupadd --system --gid "${ECSOP_UID}" ecsop \
    && useradd --system --uid "${ECSOP_UID}" --gid "${ECSOP_UID}" \
        --home-dir /tmp --no-create-home --shell /usr/sbin/nologin ecsop

# --- sandbox: `ecsop run --sandbox` (moto in-process); never for production ----------
FROM base AS sandbox
RUN --mount=type=bind,from=build-sandbox,source=/wheels,target=/wheels \
    --mount=type=bind,from=build-sandbox,source=/src/requirements,target=/requirements \
    pip install --no-cache-dir --no-index --find-links=/wheels --require-hashes -r /requirements/sandbox.txt \
    && pip install --no-cache-dir --no-index --find-links=/wheels --no-deps ecsop \
    && pip uninstall --no-cache-dir -y pip \
    && rm -rf /root/.cache /tmp/*
USER 10001:10001
WORKDIR /tmp
EXPOSE 9100
ENTRYPOINT ["ecsop", "run"]
CMD ["--sandbox"]

# --- runtime: the production image (the default target: it is the last stage) -------
FROM base AS runtime

# Install from the wheels only (--no-index: nothing is fetched at this step): the
# dependencies checked once more against the lock's hashes, then ecsop alone.
# The wheels are bind-mounted from the build stage, so no layer keeps them; pip
# itself is removed afterwards, as nothing installs packages at run time.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    --mount=type=bind,from=build,source=/src/requirements,target=/requirements \
    pip install --no-cache-dir --no-index --find-links=/wheels --require-hashes -r /requirements/runtime.txt \
    && pip install --no-cache-dir --no-index --find-links=/wheels --no-deps ecsop \
    && pip uninstall --no-cache-dir -y pip \
    && rm -rf /root/.cache /tmp/*

USER 10001:10001
WORKDIR /tmp
EXPOSE 9100

# Liveness of the HTTP endpoint, without curl: the image's own python.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('ECSOP_METRICS_PORT', '9100') + '/healthz', timeout=4)"]

ENTRYPOINT ["ecsop", "run"]
