# spaces-runtime SDK image: gradio 4.44.0 on Python 3.9.
# Built once per machine and shared by every app that uses this SDK version, so an app build adds only its
# own packages, requirements and code.
FROM spaces-runtime/base:bookworm-py3.11

USER root
# Hugging Face runs Spaces as uid 1000 named "user" with the app in /home/user/app and storage at /data
RUN (getent passwd 1000 >/dev/null || useradd --create-home --uid 1000 --user-group --shell /bin/bash user) \
 && mkdir -p /home/user/app /data \
 && chown -R 1000:1000 /home/user /data

# Python 3.9 is not the base image's: the host's Python 3.9.18, copied from the build
# context (nothing can download an interpreter in here); its shared libpython is found through ld.so's cache
COPY python/ /opt/python/3.9.18/
RUN echo /opt/python/3.9.18/lib > /etc/ld.so.conf.d/spaces-python.conf && ldconfig

# the base image must carry the Python the app asks for: nothing can download another one in here
RUN found="$(/opt/python/3.9.18/bin/python3.9 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
 && if [ "$found" != "3.9" ]; then \
      echo "the base image spaces-runtime/base:bookworm-py3.11 has Python $found but the app asks for Python 3.9;" \
           "set SPACES_BASE_IMAGE to an image with Python 3.9" >&2; exit 1; fi

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
    GRADIO_ALLOW_FLAGGING=never

USER 1000:1000
WORKDIR /home/user/app

# pip only bootstraps uv; the build's index and CA settings come in as BuildKit secrets that no layer keeps
RUN --mount=type=secret,id=build_env,uid=1000 --mount=type=secret,id=ca_bundle,uid=1000 \
    set -a && . /run/secrets/build_env && set +a \
 && /opt/python/3.9.18/bin/python3.9 -m venv "$VIRTUAL_ENV" \
 && pip install --no-cache-dir --disable-pip-version-check uv==0.13.9

RUN --mount=type=secret,id=build_env,uid=1000 --mount=type=secret,id=ca_bundle,uid=1000 \
    --mount=type=cache,id=spaces-runtime-uv,target=/home/user/.cache/uv,uid=1000,gid=1000 \
    set -a && . /run/secrets/build_env && set +a \
 && UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 uv pip install --exclude-newer 2024-09-06T00:00:00Z "gradio==4.44.0"

EXPOSE 7860
