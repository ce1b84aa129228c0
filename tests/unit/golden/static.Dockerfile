# spaces-runtime app image for sdk static. Layers go from the costliest and least changed to the cheapest:
# the shared SDK image, Debian packages, pre-requirements, requirements, and the app's code last, so a
# code-only change rebuilds one thin layer.
FROM spaces-runtime/sdk:gradio-6.31.0-py3.11-0123456789ab

# the code, last; compiled now because the running container's root filesystem is read-only
COPY --chown=1000:1000 app/ /home/user/app/
RUN python3 -m compileall -q /home/user/app >/dev/null || true

# Python's own file server: a static site needs nothing installed
EXPOSE 7860
CMD ["python3", "-m", "http.server", "7860", "--bind", "0.0.0.0", "--directory", "/home/user/app/site"]
