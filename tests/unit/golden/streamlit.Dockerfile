# spaces-runtime app image for sdk streamlit. Layers go from the costliest and least changed to the cheapest:
# the shared SDK image, Debian packages, pre-requirements, requirements, and the app's code last, so a
# code-only change rebuilds one thin layer.
FROM spaces-runtime/sdk:streamlit-1.67.0-py3.11-0123456789ab

RUN --mount=type=secret,id=build_env,uid=1000 --mount=type=secret,id=ca_bundle,uid=1000 \
    --mount=type=cache,id=spaces-runtime-uv,target=/home/user/.cache/uv,uid=1000,gid=1000 \
    --mount=type=bind,source=.spaces/requirements.txt,target=/tmp/requirements.txt \
    set -a && . /run/secrets/build_env && set +a \
 && UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 uv pip install -r /tmp/requirements.txt

# the code, last; compiled now because the running container's root filesystem is read-only
COPY --chown=1000:1000 app/ /home/user/app/
RUN python3 -m compileall -q /home/user/app >/dev/null || true

EXPOSE 7860
CMD ["streamlit", "run", "src/main app.py"]
