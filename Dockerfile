# The platform's own image: `spaces serve --backend docker`, driving the HOST's Docker Engine through its socket.
# The README's "The platform's own image" has the commands (tests/docker/test_platform_image.py runs them):
#
#   spaces base-image            # on the host, when no registry serves python:3.11-slim
#   docker build --build-arg BASE=spaces-runtime/base:bookworm-py3.11 \
#       --secret id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt -t spaces-runtime .
#   docker run -d --name spaces --network host \
#       -v /var/run/docker.sock:/var/run/docker.sock -v spaces-data:/data \
#       -v /etc/ssl/certs/ca-certificates.crt:/etc/spaces/ca.crt:ro -e SPACES_CA_BUNDLE=/etc/spaces/ca.crt \
#       spaces-runtime
#
# --network host: the gateway reaches app containers at their addresses on the private bridge network, which
# only the host's network namespace routes to (apps publish no ports). Only this container gets the Docker
# socket; the app containers it starts never do. Images it builds and the base image live in the host's engine,
# so bootstrap the base image on the host (`spaces base-image`; debootstrap needs privileges a container lacks).
# The engine resolves bind mounts on the host: the platform mounts the runner's socket directory and the appkit
# into apps from the host's view of /data (found by inspecting this container), so the data dir stays on the
# /data volume (VOLUME below; name it with -v to keep it across containers). The CA bundle: the build secret reaches pip here only; at run time
# SPACES_CA_BUNDLE hands it to the app builds as their secret (behind a TLS-intercepting proxy; else leave both out).
# No torch here, so no model runner (apps run without it): the README shows the image with torch added.
ARG BASE=python:3.11-slim
FROM ${BASE}

USER root
# docker.io for its BuildKit-capable client (the engine is the host's; dockerd is never started in here)
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io ca-certificates tar \
 && rm -rf /var/lib/apt/lists/*

# the CA bundle is a build secret: it reaches pip here and stays out of every layer
RUN --mount=type=secret,id=ca_bundle \
    --mount=type=bind,target=/src,rw \
    export PIP_CERT=/run/secrets/ca_bundle SSL_CERT_FILE=/run/secrets/ca_bundle; \
    [ -f /run/secrets/ca_bundle ] || unset PIP_CERT SSL_CERT_FILE; \
    python3 -m venv /opt/spaces \
 && /opt/spaces/bin/pip install --no-cache-dir --disable-pip-version-check uv \
 && VIRTUAL_ENV=/opt/spaces /opt/spaces/bin/uv pip install --no-cache /src

ENV PATH=/opt/spaces/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    SPACES_BACKEND=docker \
    SPACES_HOST=0.0.0.0 \
    SPACES_PORT=7000 \
    SPACES_DATA_DIR=/data
VOLUME /data
EXPOSE 7000
CMD ["spaces", "serve", "--backend", "docker"]
