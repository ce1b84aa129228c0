# spaces-runtime SDK image: gradio 6.31.0 on Python 3.11.
# Built once per machine and shared by every app that uses this SDK version, so an app build adds only its
# own packages, requirements and code.
FROM python:3.11-slim

USER root
# Hugging Face runs Spaces as uid 1000 named "user" with the app in /home/user/app and storage at /data
RUN (getent passwd 1000 >/dev/null || useradd --create-home --uid 1000 --user-group --shell /bin/bash user) \
 && mkdir -p /home/user/app /data \
 && chown -R 1000:1000 /home/user /data

# the base image must carry the Python the app asks for: nothing can download another one in here
RUN found="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
 && if [ "$found" != "3.11" ]; then \
      echo "the base image python:3.11-slim has Python $found but the app asks for Python 3.11;" \
           "set SPACES_BASE_IMAGE to an image with Python 3.11" >&2; exit 1; fi

ENV HOME=/home/user \
    VIRTUAL_ENV=/home/user/.venv \
    PATH=/home/user/.venv/bin:/home/user/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/home/user/app \
    PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8

# what this SDK version reads (spaces_runtime/sdk_eras.py): it serves on 0.0.0.0:7860 like a Space
ENV GRADIO_NUM_PORTS=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    GRADIO_FLAGGING_MODE=never \
    GRADIO_SSR_MODE=false

USER 1000:1000
WORKDIR /home/user/app

# pip only bootstraps uv; the build's index and CA settings come in as BuildKit secrets that no layer keeps
RUN --mount=type=secret,id=build_env,uid=1000 --mount=type=secret,id=ca_bundle,uid=1000 \
    set -a && . /run/secrets/build_env && set +a \
 && python3 -m venv "$VIRTUAL_ENV" \
 && pip install --no-cache-dir --disable-pip-version-check uv==0.13.9

RUN --mount=type=secret,id=build_env,uid=1000 --mount=type=secret,id=ca_bundle,uid=1000 \
    --mount=type=cache,id=spaces-runtime-uv,target=/home/user/.cache/uv,uid=1000,gid=1000 \
    set -a && . /run/secrets/build_env && set +a \
 && UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 uv pip install "gradio==6.31.0"

EXPOSE 7860
